{#- Partition-aware incremental refresh: the months (toYYYYMM of `time_column`) holding any row of
    the raw `source_relation` replicated since `watermark_sql`. Every version of a changed id counts,
    including tombstones and the version before an update, so a month that lost or gained a row
    is rebuilt whole by insert_overwrite, and deletions disappear from the facts. -#}
{% macro changed_months(source_relation, time_column, watermark_sql) -%}
    select distinct toYYYYMM({{ time_column }})
    from {{ source_relation }}
    where id in (
        select id from {{ source_relation }}
        where _replicated_at > ({{ watermark_sql }})
    )
{%- endmacro %}
