with source as (
    select * from {{ source('crm', 'customers') }} final
),

renamed as (
    select
        id as customer_id,
        customer_code,
        gender,
        age_band,
        country,
        city,
        timezone,
        language as languages_json,
        occupation,
        industry,
        income_range,
        investment_experience,
        risk_preference,
        capital_range,
        trading_platform,
        interests as interests_json,
        decision_style,
        tier,
        persona_type,
        intention_score,
        engagement_score,
        ltv_prediction,
        current_stage,
        source_channel,
        referrer_id as referrer_customer_id,
        assigned_employee_id,
        assigned_at,
        status as customer_status,
        risk_flags as risk_flags_json,
        toBool(has_wechat) as has_wechat,
        toBool(has_whatsapp) as has_whatsapp,
        toBool(has_telegram) as has_telegram,
        toBool(has_email) as has_email,
        toBool(has_phone) as has_phone,
        toBool(has_blacklist_reason) as has_blacklist_reason,
        created_at,
        updated_at,
        last_contact_at
    from source
)

select * from renamed
