{#- One row per day from `start_date` to `end_date` inclusive (Date expressions over `from_relation`,
    a one-row CTE or table), as column date_day. arrayJoin instead of numbers(): numbers() takes
    constants only, and the bounds come from the data. -#}
{% macro date_spine(start_date, end_date, from_relation) -%}
    select arrayJoin(arrayMap(
        day_offset -> toDate({{ start_date }}) + day_offset,
        range(toUInt32(greatest(dateDiff('day', toDate({{ start_date }}), toDate({{ end_date }})) + 1, 0)))
    )) as date_day
    from {{ from_relation }}
{%- endmacro %}
