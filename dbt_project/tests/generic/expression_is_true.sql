{#- Fails on every row where `expression` is false. A NULL result passes (`where not (NULL)` selects
    nothing): an expression that must hold for NULLs too says so (ifNull, `is not null and ...`).
    Model-level: `data_tests: [{expression_is_true: {expression: ...}}]`. -#}
{% test expression_is_true(model, expression, where_clause=none) %}
select *
from {{ model }}
where not ({{ expression }})
{%- if where_clause %} and ({{ where_clause }}){% endif %}
{% endtest %}
