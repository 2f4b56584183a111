with source as (
    select * from {{ source('crm', 'funnel_bofu') }} final
),

renamed as (
    select
        id as bofu_id,
        source_key,
        customer_id,
        employee_id,
        total_deposits,
        total_withdrawals,
        net_deposit,
        deposit_count,
        withdrawal_count,
        first_deposit_amount,
        first_deposit_at,
        days_to_first_deposit,
        max_deposit_amount,
        -- The seed stores a percentage (0..100).
        withdrawal_rate as withdrawal_rate_percent,
        cast(is_vip as Nullable(Bool)) as is_vip,
        vip_since,
        created_at,
        updated_at
    from source
)

select * from renamed
