{#- The reporting periods of the performance marts, relative to the build date (server time zone):
    name -> condition on a Date expression. -#}
{% macro reporting_periods() -%}
    {{ return({
        'this_month': "toStartOfMonth({col}) = toStartOfMonth(today())",
        'this_quarter': "toStartOfQuarter({col}) = toStartOfQuarter(today())",
        'all_time': "1 = 1",
    }) }}
{%- endmacro %}

{% macro in_period(period, date_column) -%}
    {{ reporting_periods()[period].replace('{col}', date_column) }}
{%- endmacro %}
