{#- A share in 0..1 as Float64, NULL when the denominator is zero or NULL (never a division error
    or an infinity in a report). -#}
{% macro safe_ratio(numerator, denominator) -%}
    if(ifNull(toFloat64({{ denominator }}), 0) = 0, null, toFloat64({{ numerator }}) / toFloat64({{ denominator }}))
{%- endmacro %}

{#- safe_ratio capped at 1, for rates whose numerator can exceed the denominator within a period
    (withdrawals of older deposits, likes without recorded views). ClickHouse's least() returns
    the non-NULL argument, so the cap is applied only to a non-NULL ratio. -#}
{% macro capped_ratio(numerator, denominator) -%}
    if(ifNull(toFloat64({{ denominator }}), 0) = 0, null, least(toFloat64({{ numerator }}) / toFloat64({{ denominator }}), 1))
{%- endmacro %}
