{#- One row per day from `start_date` to `end_date` inclusive (Date expressions over `from_relation`,
    a one-row CTE or table), as column date_day. arrayJoin instead of numbers(): numbers() takes
    constants only, and the bounds come from the data. Both bounds must be days a Date holds (1970-01-01 on):
    toDate() of an earlier Date32 or DateTime64 wraps around to a later day (1925-01-01 -> 2104-06-07),
    and a start after the end yields no day at all; the caller bounds them (int_dates__spine). -#}
{% macro date_spine(start_date, end_date, from_relation) -%}
    select arrayJoin(arrayMap(
        day_offset -> toDate({{ start_date }}) + day_offset,
        range(toUInt32(greatest(dateDiff('day', toDate({{ start_date }}), toDate({{ end_date }})) + 1, 0)))
    )) as date_day
    from {{ from_relation }}
{%- endmacro %}
