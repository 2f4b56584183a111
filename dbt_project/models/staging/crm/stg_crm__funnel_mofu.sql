with source as (
    select * from {{ source('crm', 'funnel_mofu') }} final
),

renamed as (
    select
        id as mofu_id,
        source_key,
        customer_id,
        employee_id,
        total_conversations,
        high_quality_conversations,
        `total_反问_count` as total_counter_question_count,
        toBool(ifNull(followed_recommendations, 0)) as has_followed_recommendations,
        follow_count,
        cast(account_opened as Nullable(Bool)) as is_account_opened,
        account_platform,
        opened_at as account_opened_at,
        days_to_open,
        intention_score,
        engagement_score,
        created_at,
        updated_at
    from source
)

select * from renamed
