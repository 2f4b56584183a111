with source as (
    select * from {{ source('crm', 'withdrawals') }} final
),

renamed as (
    select
        id as withdrawal_id,
        withdrawal_code,
        customer_id,
        employee_id,
        amount,
        currency,
        reason as withdrawal_reason,
        risk_level,
        cast(retention_success as Nullable(Bool)) as is_retention_success,
        toBool(ifNull(has_retention_action, 0)) as has_retention_action,
        status as withdrawal_status,
        requested_at,
        processed_at,
        created_at,
        updated_at,
        _replicated_at as replicated_at
    from source
)

select * from renamed
