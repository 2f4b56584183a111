{#- "Today" for day counts: the build date, or var as_of_date (reproducible rebuilds, unit tests). -#}
{% macro as_of_date() -%}
    {%- if var('as_of_date', '') -%} toDate('{{ var('as_of_date') }}') {%- else -%} today() {%- endif -%}
{%- endmacro %}
