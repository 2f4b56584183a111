{#- The reporting periods of the performance marts, relative to the build date (as_of_date: a UTC day):
    name -> condition on a Date expression. -#}
{% macro reporting_periods() -%}
    {{ return({
        'this_month': "toStartOfMonth({col}) = toStartOfMonth(" ~ as_of_date() ~ ")",
        'this_quarter': "toStartOfQuarter({col}) = toStartOfQuarter(" ~ as_of_date() ~ ")",
        'all_time': "1 = 1",
    }) }}
{%- endmacro %}

{% macro in_period(period, date_column) -%}
    {{ reporting_periods()[period].replace('{col}', date_column) }}
{%- endmacro %}
