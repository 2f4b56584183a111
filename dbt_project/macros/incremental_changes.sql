{#- What changed in raw since an incremental model was last built.

    Raw tables are ReplacingMergeTree copies of PostgreSQL: an insert, an update and a deletion all
    arrive as a new version of the row's id with a fresh _replicated_at (a deletion as a tombstone
    flagged _is_deleted, keeping only the row's key, partition key and the columns readers of deleted
    rows need: ingestion/replication/tombstones.py, _READ_FROM_TOMBSTONES). So the rows changed since a
    moment are the ids with a version replicated after it, and the values an updated or deleted row had
    before are among the versions of those ids (until ReplacingMergeTree merges an older version away). -#}

{#- Ids of `source_relation` (a crm source) with a version replicated after `since` (SQL). -#}
{% macro ids_replicated_since(source_relation, since) -%}
    select id from {{ source_relation }} where _replicated_at > {{ since }}
{%- endmacro %}

{#- Ids of the raw table `table` an incremental fact replaces this run: those with a version stamped
    after the fact's own watermark and at or before the table's committed watermark (watermarks.sql).
    The pre-hook and the model's query render it separately but read the same values (nothing is
    recorded before the insert succeeded, and the committed watermark is fixed for the run). A fact
    built before watermarks were recorded starts from the newest replicated_at it holds. A table with
    no committed watermark yet (a bare `dbt run` while its first load is still being replicated) has
    nothing committed to read: the run reads none of it, and the first run after the load committed
    reads the load whole (reading part of it would move the fact past the rest: its rows share one
    stamp). -#}
{% macro fact_changed_ids(table) -%}
    {%- set stored = stored_watermarks().get(table) -%}
    {%- if stored is not none -%}
        {%- set since = stored.ms -%}
    {%- else -%}
        {%- set since = run_query('select toUnixTimestamp64Milli(max(replicated_at)) from ' ~ this).columns[0].values()[0] -%}
    {%- endif -%}
    {%- set through = committed_through(table) -%}
    select id from {{ source('crm', table) }} where {{ replicated_between(since, since if through is none else through) }}
{%- endmacro %}

{#- Pre-hook of an incremental fact (one row per `key_column`, the id of raw `table`): delete the ids
    fact_changed_ids returns (new, updated or deleted in PostgreSQL); the model's incremental query
    then inserts the live version of those ids (incremental_strategy append) and the post-hook
    record_watermarks moves the fact's watermark. Nothing is run when none of them is in the fact yet
    (the usual case: new rows only), so no mutation is started. A fact built before the raw
    timestamps were declared in UTC gets its timestamp columns declared so first.
    In a backfill (macros/fact_backfill.sql) it deletes instead the rows whose `day_column` (the fact's
    Date column, whose month partitions the partitioned facts) is in the backfill's months, in one
    lightweight DELETE as above: not DROP PARTITION, which takes a statement per month and a fact
    partitioned by month (fct_withdrawals is not). Until the model's insert has run those months are
    missing, as the changed ids are in an ordinary run; the writer lock keeps every build (and so every
    mart reading the fact) out meanwhile, and a backfill that failed in between is run again (no
    ordinary run restores the months). With the backfill variables set, a fact built whole (its first
    build, --full-refresh) is an error rather than a run that ignores them. -#}
{% macro delete_replicated_ids(table, key_column, day_column) -%}
    {%- if execute and is_incremental() -%}
        {%- do declare_timestamps_in_utc(this) -%}
        {%- set months = backfill_months() -%}
        {%- if months is not none -%}
            delete from {{ this }} where {{ in_backfill_months(day_column, months) }}
        {%- else -%}
            {%- set condition = key_column ~ ' in (' ~ fact_changed_ids(table) ~ ')' -%}
            {%- set present = run_query('select count() from ' ~ this ~ ' where ' ~ condition).columns[0].values()[0] -%}
            {%- if present > 0 -%}
                delete from {{ this }} where {{ condition }}
            {%- endif -%}
        {%- endif -%}
    {%- elif execute and backfill_months() is not none -%}
        {%- do exceptions.raise_compiler_error(
            'FUNNELHOUSE_BACKFILL_FROM_MONTH is set, but ' ~ this ~ ' is built whole in this run (not built yet, '
            ~ 'or --full-refresh): a backfill replaces months of a built fact; unset the backfill variables'
        ) -%}
    {%- endif -%}
{%- endmacro %}

{#- The incremental query's filter on the staging rows of an incremental fact: the ids
    fact_changed_ids returns, or in a backfill every live row whose Date expression `day` (on staging's
    columns) is in the backfill's months. Call it under is_incremental() only (the variables are read
    at execution). -#}
{% macro fact_rows_to_read(table, key_column, day) -%}
    {%- set months = backfill_months() -%}
    {%- if months is none -%}
        {{ key_column }} in ({{ fact_changed_ids(table) }})
    {%- else -%}
        {{ in_backfill_months(day, months) }}
    {%- endif -%}
{%- endmacro %}

{#- Declare in UTC each timestamp column of the existing table `relation` declared without a zone
    (DateTime64(6) -> DateTime64(6, 'UTC'), also inside Nullable), as raw's are
    (ingestion/replication/schema.py, declared_type). Incremental models keep the column types they
    were first built with; a zone-less one would read in the server's zone after a restart (ClickHouse
    issue 93613) and pass that type on (max(sent_at) in a mart whose contract says UTC). Only metadata
    changes: the stored instants stay. -#}
{% macro declare_timestamps_in_utc(relation) -%}
    {%- set declared -%}
        replaceRegexpAll(replaceRegexpAll(type, 'DateTime64\\((\\d+)\\)', 'DateTime64(\\1, \'UTC\')'),
                         'DateTime(\\)|,|$)', 'DateTime(\'UTC\')\\1')
    {%- endset -%}
    {%- set changes = run_query(
        "select name, " ~ declared ~ " as declared from system.columns where database = '" ~ relation.schema
        ~ "' and table = '" ~ relation.identifier ~ "' and declared != type order by position"
    ) -%}
    {%- if changes | length > 0 -%}
        {%- set modified = [] -%}
        {%- for change in changes -%}
            {%- do modified.append('modify column `' ~ change[0] ~ '` ' ~ change[1]) -%}
        {%- endfor -%}
        {%- do run_query('alter table ' ~ relation ~ ' ' ~ modified | join(', ')) -%}
    {%- endif -%}
{%- endmacro %}

{#- The start of the last successful build of the models of a marts schema (`mark_key`: its name; the
    KPI mart's own: `<marts schema>.mart_kpi_employee_daily`), as a SQL DateTime64, or none when no
    build was recorded. funnelhouse build and Dagster record it in <raw>._model_refreshes
    (orchestration/defs/warehouse/refresh_state.py) in a column declared in UTC, so its text is the
    UTC wall clock on a server in any time zone, also after a restart (a zone-less column would then
    follow the server's zone); re-read as UTC, it compares correctly with _replicated_at. -#}
{% macro last_refresh_mark(mark_key) -%}
    {%- set raw_schema = source('crm', 'employees').schema -%}
    {%- set found = run_query(
        "select count() from system.tables where database = '" ~ raw_schema ~ "' and name = '_model_refreshes'"
    ).columns[0].values()[0] -%}
    {%- if found == 0 -%}{{ return(none) }}{%- endif -%}
    {%- set rows = first_column_values(
        "select toString(refreshed_through) from `" ~ raw_schema ~ "`._model_refreshes final "
        ~ "where marts_schema = '" ~ mark_key ~ "'"
    ) -%}
    {{- return(("toDateTime64('" ~ rows[0] ~ "', 6, 'UTC')") if rows else none) -}}
{%- endmacro %}

{#- Months (YYYYMM) of `date_column` over every version of the rows of `source_relation` replicated
    since `since`: the months such a change can have added a row to or removed one from, the old ones
    only while the row's older version is not merged away (mart_kpi_employee_daily finds those by its
    totals: kpi_months_out_of_step.sql). -#}
{% macro changed_months(source_relation, date_column, since) -%}
    select distinct toYYYYMM({{ date_column }}) from {{ source_relation }}
    where {{ date_column }} is not null and id in ({{ ids_replicated_since(source_relation, since) }})
{%- endmacro %}
