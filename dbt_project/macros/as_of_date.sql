{#- "Today" for every day count and period of the models: the build date as a UTC day, or var
    as_of_date (reproducible rebuilds, unit tests). UTC, not the server's date: the CRM's
    timestamps are UTC wall-clock times and the KPI days are UTC days, so on a server in another
    time zone the server's date would end the date spine a day early or late, and put "this month" and the
    7/30-day windows off by the offset. -#}
{% macro as_of_date() -%}
    {%- if var('as_of_date', '') -%} toDate('{{ var('as_of_date') }}') {%- else -%} toDate(now('UTC')) {%- endif -%}
{%- endmacro %}
