{#- The days a Dagster KPI partition run (or a backfill) asks mart_kpi_employee_daily to rebuild:
    {'start': 'YYYY-MM-DD', 'end': 'YYYY-MM-DD'}, both empty when none were given.

    Dagster passes them as FUNNELHOUSE_KPI_START_DATE / FUNNELHOUSE_KPI_END_DATE in dbt's environment
    (orchestration/defs/warehouse/dbt_assets.py); a hand-run dbt may pass the vars kpi_start_date /
    kpi_end_date instead. The environment is read at execution time only (call this under
    is_incremental() or `execute`): dbt keys its partial parse on --vars and on environment variables
    read while parsing, so either would re-parse the whole project (several seconds) on every
    partition run; read here, a partition run parses nothing. -#}
{% macro kpi_window() -%}
    {%- set start = env_var('FUNNELHOUSE_KPI_START_DATE', '') or var('kpi_start_date') -%}
    {%- set end = env_var('FUNNELHOUSE_KPI_END_DATE', '') or var('kpi_end_date') -%}
    {{- return({'start': start, 'end': end or start}) -}}
{%- endmacro %}
