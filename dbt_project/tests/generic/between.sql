{#- Column-level range check; NULL passes (a rate without a denominator is NULL by design). -#}
{% test between(model, column_name, min_value, max_value) %}
select {{ column_name }}
from {{ model }}
where {{ column_name }} is not null
  and not ({{ column_name }} between {{ min_value }} and {{ max_value }})
{% endtest %}
