{#- Per-model watermarks: what an incremental model has already read of each raw table.

    Every raw version carries _replicated_at, its load time. Replication records per table the
    committed watermark `replicated_through_ms` (ingestion/replication/replicate.py): every row
    stamped at or before it is visible, while rows stamped later may belong to a load that is still
    committing part by part. A build reads those values once, before dbt starts, and passes them as
    FUNNELHOUSE_REPLICATED_THROUGH (orchestration/defs/warehouse/refresh_state.py), so every statement
    of every model of the run uses the same upper bounds.

    An incremental model processes the rows of each of its raw inputs stamped in
    (its own watermark, committed watermark] and, once its insert succeeded, records the committed
    watermark as its own (post-hook record_watermarks) in <raw>._model_watermarks. Rows being
    committed while it ran are above the bound and are taken by the next build; rows it read beyond
    the bound are read again then (delete + insert is idempotent). A model never records more than
    the incremental models it reads from have recorded, so one run without its upstream models (a
    Dagster subset) does not skip what they have not yet written.

    Without the variable (a bare `dbt run`) the live replication state is read instead: exact when
    nothing replicates at the same time. -#}

{% macro watermark_relation() -%}
    `{{ source('crm', 'employees').schema }}`._model_watermarks
{%- endmacro %}

{% macro model_key() -%}
    {{- return(this.schema ~ '.' ~ this.identifier) -}}
{%- endmacro %}

{#- The crm tables a node reads, directly or through other models: {'sources': [...], 'incremental': [...]},
    incremental being the keys of the incremental models on the way. -#}
{% macro upstream_inputs(unique_id) -%}
    {%- set tables, incremental, seen = [], [], [] -%}
    {%- set pending = [unique_id] -%}
    {%- for _ in range(1000) if pending -%}
        {%- set node_id = pending.pop() -%}
        {%- if node_id not in seen -%}
            {%- do seen.append(node_id) -%}
            {%- if node_id in graph.sources -%}
                {%- set source_node = graph.sources[node_id] -%}
                {%- if source_node.source_name == 'crm' and source_node.name not in tables -%}
                    {%- do tables.append(source_node.name) -%}
                {%- endif -%}
            {%- elif node_id in graph.nodes -%}
                {%- set node = graph.nodes[node_id] -%}
                {%- if node_id != unique_id and node.config.materialized == 'incremental' -%}
                    {%- do incremental.append(node.schema ~ '.' ~ node.alias) -%}
                {%- endif -%}
                {%- do pending.extend(node.depends_on.nodes) -%}
            {%- endif -%}
        {%- endif -%}
    {%- endfor -%}
    {{- return({'sources': tables | sort, 'incremental': incremental}) -}}
{%- endmacro %}

{#- Committed watermark of raw table `table` in Unix ms, or none if nothing was replicated yet. -#}
{% macro committed_through(table) -%}
    {%- set passed = env_var('FUNNELHOUSE_REPLICATED_THROUGH', '') -%}
    {%- if passed -%}
        {{- return(fromjson(passed).get(table)) -}}
    {%- endif -%}
    {%- set state = source('crm', 'employees').schema -%}
    {%- set rows = first_column_values(
        "select replicated_through_ms from `" ~ state ~ "`._replication_state final "
        ~ "where table_name = '" ~ table ~ "' and replicated_through_ms is not null"
    ) -%}
    {{- return(rows[0] if rows else none) -}}
{%- endmacro %}

{#- This model's recorded watermarks: {table: {'ms': ...}} (empty when never recorded). -#}
{% macro stored_watermarks() -%}
    {%- do run_query(
        "create table if not exists " ~ watermark_relation() ~ " (model String, table_name String, "
        ~ "watermark_ms Int64, recorded_at DateTime64(6, 'UTC') default now64(6)) "
        ~ "engine = ReplacingMergeTree(recorded_at) order by (model, table_name)"
    ) -%}
    {%- set rows = run_query(
        "select table_name, watermark_ms from " ~ watermark_relation()
        ~ " final where model = '" ~ model_key() ~ "'"
    ) -%}
    {%- set stored = {} -%}
    {%- for row in rows -%}
        {%- do stored.update({row[0]: {'ms': row[1]}}) -%}
    {%- endfor -%}
    {{- return(stored) -}}
{%- endmacro %}

{#- SQL condition on _replicated_at: stamped after `since_ms` (none: no lower bound) and at or before
    `through_ms` (none: no upper bound). -#}
{% macro replicated_between(since_ms, through_ms) -%}
    {%- set conditions = ['1'] -%}
    {%- if since_ms is not none -%}
        {%- do conditions.append('_replicated_at > fromUnixTimestamp64Milli(toInt64(' ~ since_ms ~ '))') -%}
    {%- endif -%}
    {%- if through_ms is not none -%}
        {%- do conditions.append('_replicated_at <= fromUnixTimestamp64Milli(toInt64(' ~ through_ms ~ '))') -%}
    {%- endif -%}
    {{- return(conditions | join(' and ')) -}}
{%- endmacro %}

{#- Post-hook of every watermarked model: record the committed watermark of each input as read,
    capped by what the incremental models it reads from have recorded for the same table. A backfill
    (macros/fact_backfill.sql) records nothing: it read whole months, not the rows changed since the
    watermark, and those changes (in any month) are left to the next ordinary run. -#}
{% macro record_watermarks() -%}
    {%- if execute and backfill_months() is none -%}
        {%- set inputs = upstream_inputs(model.unique_id) -%}
        {%- set upstream = "'" ~ (inputs.incremental | join("', '")) ~ "'" -%}
        {%- set selects = [] -%}
        {%- for table in inputs.sources -%}
            {%- set through = committed_through(table) -%}
            {%- if through is not none -%}
                {%- do selects.append(
                    "select '" ~ model_key() ~ "', '" ~ table ~ "', least(toInt64(" ~ through ~ "), ifNull(("
                    ~ "select minOrNull(watermark_ms) from " ~ watermark_relation() ~ " final where model in ("
                    ~ upstream ~ ") and table_name = '" ~ table ~ "'), toInt64(" ~ through ~ ")))"
                ) -%}
            {%- endif -%}
        {%- endfor -%}
        {%- if selects -%}
            {%- do stored_watermarks() -%}{#- creates the table on a first build -#}
            insert into {{ watermark_relation() }} (model, table_name, watermark_ms) {{ selects | join(' union all ') }}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}
