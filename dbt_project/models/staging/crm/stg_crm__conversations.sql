with source as (
    select * from {{ source('crm', 'conversations') }} final
),

renamed as (
    select
        id as conversation_id,
        customer_id,
        employee_id,
        message_type,
        direction,
        sentiment,
        keywords as keywords_json,
        intention_signals as intention_signals_json,
        risk_keywords as risk_keywords_json,
        script_used_id as script_id,
        toBool(ifNull(`is_反问`, 0)) as is_counter_question,
        quality_score,
        platform,
        content_length,
        toBool(ifNull(has_media, 0)) as has_media,
        sent_at,
        created_at,
        updated_at,
        _replicated_at as replicated_at
    from source
)

select * from renamed
