{#- Fails on every row where `expression` is not true (NULL counts as failing unless the
    expression handles it). Model-level: `data_tests: [{expression_is_true: {expression: ...}}]`. -#}
{% test expression_is_true(model, expression, where_clause=none) %}
select *
from {{ model }}
where not ({{ expression }})
{%- if where_clause %} and ({{ where_clause }}){% endif %}
{% endtest %}
