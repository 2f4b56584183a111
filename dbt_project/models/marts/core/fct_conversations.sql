{{ config(
    materialized='incremental',
    incremental_strategy='insert_overwrite',
    partition_by='toYYYYMM(sent_date)',
    order_by='(employee_id, sent_date, conversation_id)',
) }}

with conversations as (
    select * from {{ ref('stg_crm__conversations') }}
    {% if is_incremental() %}
    where toYYYYMM(sent_at) in (
        {{ changed_months(source('crm', 'conversations'), 'sent_at', 'select max(replicated_at) from ' ~ this) }}
    )
    {% endif %}
),

final as (
    select
        conversation_id,
        source_message_id,
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
        toDate(sent_at) as sent_date,
        replicated_at
    from conversations
)

select * from final
