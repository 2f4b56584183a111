{#- The reporting periods of the performance marts, relative to the build date (as_of_date: a UTC day):
    name -> condition on a Date expression. This month and this quarter run up to the build date
    included, never past it, like the KPI mart's date spine: a rebuild as of an earlier day (var
    as_of_date) counts what had happened by then, and a row stamped after the build date (a clock
    ahead) counts once its day has come, as in the KPI mart. All time is every row up to the build date
    (macros/as_of_date.sql states the rule), and a row without a date (an account opening the CRM did
    not date): nothing places it after the build date. -#}
{% macro reporting_periods() -%}
    {{ return({
        'this_month': "({col} between toStartOfMonth(" ~ as_of_date() ~ ") and " ~ as_of_date() ~ ")",
        'this_quarter': "({col} between toStartOfQuarter(" ~ as_of_date() ~ ") and " ~ as_of_date() ~ ")",
        'all_time': "ifNull(" ~ by_build_date('{col}') ~ ", 1)",
    }) }}
{%- endmacro %}

{% macro in_period(period, date_column) -%}
    {{ reporting_periods()[period].replace('{col}', date_column) }}
{%- endmacro %}

{#- Condition: the Date expression `date_column` is one of the `days` days ending on the build date,
    the build date included (days = 7: the build date and the 6 days before it). -#}
{% macro in_last_days(date_column, days) -%}
    ({{ date_column }} between {{ as_of_date() }} - {{ days - 1 }} and {{ as_of_date() }})
{%- endmacro %}
