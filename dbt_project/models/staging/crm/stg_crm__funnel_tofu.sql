with source as (
    select * from {{ source('crm', 'funnel_tofu') }} final
),

renamed as (
    select
        id as tofu_id,
        source_key,
        customer_id,
        employee_id,
        contact_date,
        source_channel,
        toBool(ifNull(joined_group, 0)) as has_joined_group,
        joined_at,
        cast(stayed_in_group as Nullable(Bool)) as has_stayed_in_group,
        left_group_at,
        toBool(ifNull(has_leave_reason, 0)) as has_leave_reason,
        screening_result,
        toBool(ifNull(has_screening_reason, 0)) as has_screening_reason,
        created_at,
        updated_at
    from source
)

select * from renamed
