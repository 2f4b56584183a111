-- Incremental: each run deletes the conversations with a raw version stamped after the fact's watermark and
-- at or before the committed one (new, updated or deleted in PostgreSQL) and appends their live
-- versions, so only changed rows are read and written; the post-hook then records the committed
-- watermark as the fact's (macros/incremental_changes.sql, watermarks.sql). --full-refresh rebuilds it.
-- `funnelhouse backfill` replaces whole months of it, keeping its watermark (macros/fact_backfill.sql).
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    partition_by='toYYYYMM(sent_date)',
    order_by='(employee_id, sent_date, conversation_id)',
    pre_hook="{{ delete_replicated_ids('conversations', 'conversation_id', 'sent_date') }}",
    post_hook=["{{ delete_moved_rows('conversation_id', 'sent_date') }}", "{{ record_watermarks() }}"],
) }}

with conversations as (
    select * from {{ ref('stg_crm__conversations') }}
    {% if is_incremental() %}
    where {{ fact_rows_to_read('conversations', 'conversation_id', day_of('sent_at')) }}
    {% endif %}
),

final as (
    select
        conversation_id,
        customer_id,
        employee_id,
        message_type,
        direction,
        sentiment,
        script_id,
        is_counter_question,
        quality_score,
        ifNull(quality_score >= {{ var('quality_score_threshold') }}, false) as is_quality_conversation,
        platform,
        content_length,
        has_media,
        sent_at,
        {{ day_of('sent_at') }} as sent_date,
        replicated_at
    from conversations
)

select * from final
