{#- A share in 0..1 as Float64, NULL when the denominator is zero or NULL (never a division error
    or an infinity in a report). -#}
{% macro safe_ratio(numerator, denominator) -%}
    if(ifNull(toFloat64({{ denominator }}), 0) = 0, null, toFloat64({{ numerator }}) / toFloat64({{ denominator }}))
{%- endmacro %}

{#- safe_ratio capped at 1, for rates whose numerator can exceed the denominator within a period
    (withdrawals of older deposits, likes without recorded views). A NULL numerator gives NULL, as
    in safe_ratio: not least(NULL, 1), which ClickHouse answers with 1 (least() skips NULLs), and
    which made "no withdrawal row" read as a withdrawal rate of 100 %. A caller for whom a missing
    numerator means none passes ifNull(numerator, 0). -#}
{% macro capped_ratio(numerator, denominator) -%}
    if(ifNull(toFloat64({{ denominator }}), 0) = 0, null,
       if(toFloat64({{ numerator }}) / toFloat64({{ denominator }}) > 1, 1, toFloat64({{ numerator }}) / toFloat64({{ denominator }})))
{%- endmacro %}
