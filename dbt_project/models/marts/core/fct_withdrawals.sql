with withdrawals as (
    select * from {{ ref('stg_crm__withdrawals') }}
),

final as (
    select
        withdrawal_id,
        withdrawal_code,
        customer_id,
        employee_id,
        amount,
        currency,
        withdrawal_reason,
        risk_level,
        is_retention_success,
        has_retention_action,
        withdrawal_status,
        withdrawal_status = 'confirmed' as is_confirmed,
        requested_at,
        toDate(requested_at) as requested_date,
        processed_at,
        created_at
    from withdrawals
)

select * from final
