-- Script usage as seen in conversations next to the counters the CRM keeps on the script.
-- A use is "successful" when the conversation was a quality conversation. Uses up to the build date: a
-- message stamped after it has not been sent yet (macros/as_of_date.sql); the CRM's counters are as kept.
with scripts as (
    select * from {{ ref('stg_crm__scripts') }}
),

uses as (
    select
        script_id,
        count() as conversation_uses,
        countIf(is_quality_conversation) as quality_uses,
        countIf(sentiment = 'positive') as positive_uses,
        uniqExact(employee_id) as employees_using,
        uniqExact(customer_id) as customers_reached,
        max(sent_at) as last_used_at
    from {{ ref('fct_conversations') }}
    where script_id is not null and {{ by_build_date('sent_date') }}
    group by script_id
),

final as (
    select
        scripts.script_id as script_id,
        scripts.script_code as script_code,
        scripts.script_category as script_category,
        scripts.script_subcategory as script_subcategory,
        scripts.script_level as script_level,
        scripts.is_active as is_active,
        toUInt64(ifNull(uses.conversation_uses, 0)) as conversation_uses,
        toUInt64(ifNull(uses.quality_uses, 0)) as quality_uses,
        {{ safe_ratio('uses.quality_uses', 'uses.conversation_uses') }} as quality_use_rate,
        {{ safe_ratio('uses.positive_uses', 'uses.conversation_uses') }} as positive_use_rate,
        toUInt64(ifNull(uses.employees_using, 0)) as employees_using,
        toUInt64(ifNull(uses.customers_reached, 0)) as customers_reached,
        uses.last_used_at as last_used_at,
        scripts.recorded_usage_count as recorded_usage_count,
        scripts.recorded_success_count as recorded_success_count,
        toFloat64(scripts.recorded_success_rate_percent) / 100 as recorded_success_rate,
        scripts.avg_rating as avg_rating
    from scripts
    left join uses on scripts.script_id = uses.script_id
)

select * from final
