{#- A backfill of the incremental facts (fct_conversations, fct_deposits, fct_withdrawals): an
    incremental run that replaces whole months instead of the ids changed since the fact's watermark,
    after a logic fix or a repaired raw month, without a full refresh (`funnelhouse backfill`,
    orchestration/commands/backfill.py; docs/warehouse.md).

    The months are FUNNELHOUSE_BACKFILL_FROM_MONTH..FUNNELHOUSE_BACKFILL_TO_MONTH in dbt's environment
    (YYYY-MM; the end defaults to the start). As for the KPI window (macros/kpi_window.sql) they are read
    at execution only (under is_incremental() or `execute`), so a backfill invalidates no partial parse.

    Such a run deletes the fact's rows of those months (pre-hook delete_replicated_ids), appends the live
    rows of those months from staging (fact_rows_to_read), deletes the other months' older versions of the
    rows it appended (post-hook delete_moved_rows) and records no watermark (record_watermarks): the
    changes replicated since the watermark, in any month, are still the next ordinary run's. -#}

{#- The months to backfill, {'first': YYYYMM, 'last': YYYYMM}, or none when no backfill was asked for;
    a malformed or reversed range fails the run before anything is written. -#}
{% macro backfill_months() -%}
    {%- set from_month = env_var('FUNNELHOUSE_BACKFILL_FROM_MONTH', '') -%}
    {%- set to_month = env_var('FUNNELHOUSE_BACKFILL_TO_MONTH', '') or from_month -%}
    {%- if not to_month -%}{{ return(none) }}{%- endif -%}
    {%- for name, value in [('FUNNELHOUSE_BACKFILL_FROM_MONTH', from_month), ('FUNNELHOUSE_BACKFILL_TO_MONTH', to_month)] -%}
        {%- if not modules.re.fullmatch('[0-9]{4}-(0[1-9]|1[0-2])', value) -%}
            {%- do exceptions.raise_compiler_error(
                name ~ " must be a month as YYYY-MM (e.g. 2025-01), not '" ~ value ~ "'"
            ) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if to_month < from_month -%}
        {%- do exceptions.raise_compiler_error(
            'FUNNELHOUSE_BACKFILL_TO_MONTH ' ~ to_month ~ ' is before FUNNELHOUSE_BACKFILL_FROM_MONTH ' ~ from_month
        ) -%}
    {%- endif -%}
    {{- return({'first': from_month | replace('-', '') | int, 'last': to_month | replace('-', '') | int}) -}}
{%- endmacro %}

{#- SQL condition: the Date expression `day` falls in the backfill's months (`months`: backfill_months());
    on a fact's Date column, a condition on its partition key (toYYYYMM). -#}
{% macro in_backfill_months(day, months) -%}
    toYYYYMM({{ day }}) between {{ months.first }} and {{ months.last }}
{%- endmacro %}

{#- Post-hook of an incremental fact (`key_column` its id, `day_column` its Date column), in a backfill
    only: delete the rows outside the backfill's months whose id the backfill has just appended inside
    them. Each is the older version of a row that a change newer than the fact's watermark moved into
    those months; left there, the fact would hold the id twice until the next ordinary run. That run
    still takes the change (no watermark moved), and deletes and appends the same row again. Nothing
    runs when no such row exists, so no mutation is started. A change moving a row out of those months
    leaves it in neither until that run: its live version is outside the months a backfill reads. -#}
{% macro delete_moved_rows(key_column, day_column) -%}
    {%- set months = backfill_months() if execute else none -%}
    {%- if months is not none -%}
        {%- set condition -%}
            not ({{ in_backfill_months(day_column, months) }}) and {{ key_column }} in (
                select {{ key_column }} from {{ this }} where {{ in_backfill_months(day_column, months) }}
            )
        {%- endset -%}
        {%- if run_query('select count() from ' ~ this ~ ' where ' ~ condition).columns[0].values()[0] > 0 -%}
            delete from {{ this }} where {{ condition }}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}
