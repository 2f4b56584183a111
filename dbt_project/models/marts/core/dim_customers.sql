with customers as (
    select * from {{ ref('stg_crm__customers') }}
),

customer_tags as (
    select * from {{ ref('stg_crm__customer_tags') }}
),

tags as (
    select * from {{ ref('stg_crm__tags') }}
),

tofu as (
    select * from {{ ref('stg_crm__funnel_tofu') }}
),

tag_lists as (
    select
        customer_tags.customer_id as customer_id,
        arraySort(groupArray(tags.tag_name)) as tag_names
    from customer_tags
    inner join tags on customer_tags.tag_id = tags.tag_id
    group by customer_tags.customer_id
),

first_contacts as (
    select customer_id, min(contact_date) as first_contact_date
    from tofu
    group by customer_id
),

final as (
    select
        customers.customer_id as customer_id,
        customers.customer_code as customer_code,
        customers.gender as gender,
        customers.age_band as age_band,
        customers.country as country,
        customers.city as city,
        customers.timezone as timezone,
        customers.occupation as occupation,
        customers.industry as industry,
        customers.income_range as income_range,
        customers.investment_experience as investment_experience,
        customers.risk_preference as risk_preference,
        customers.capital_range as capital_range,
        customers.trading_platform as trading_platform,
        customers.decision_style as decision_style,
        customers.tier as tier,
        customers.persona_type as persona_type,
        customers.intention_score as intention_score,
        customers.engagement_score as engagement_score,
        customers.ltv_prediction as ltv_prediction,
        customers.current_stage as current_stage,
        {{ stage_order('customers.current_stage') }} as current_stage_order,
        ifNull(customers.source_channel, 'unknown') as source_channel,
        customers.referrer_customer_id as referrer_customer_id,
        customers.assigned_employee_id as assigned_employee_id,
        customers.assigned_at as assigned_at,
        customers.customer_status as customer_status,
        customers.has_wechat as has_wechat,
        customers.has_whatsapp as has_whatsapp,
        customers.has_telegram as has_telegram,
        customers.has_email as has_email,
        customers.has_phone as has_phone,
        customers.has_blacklist_reason as has_blacklist_reason,
        customers.interests_json as interests_json,
        customers.risk_flags_json as risk_flags_json,
        ifNull(tag_lists.tag_names, []) as tag_names,
        coalesce(first_contacts.first_contact_date, {{ day_of('customers.created_at') }}) as first_contact_date,
        customers.created_at as created_at,
        customers.updated_at as updated_at,
        customers.last_contact_at as last_contact_at
    from customers
    left join tag_lists on customers.customer_id = tag_lists.customer_id
    left join first_contacts on customers.customer_id = first_contacts.customer_id
)

select * from final
