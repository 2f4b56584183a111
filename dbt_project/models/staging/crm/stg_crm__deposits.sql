with source as (
    select * from {{ source('crm', 'deposits') }} final
),

renamed as (
    select
        id as deposit_id,
        deposit_code,
        customer_id,
        employee_id,
        amount,
        currency,
        deposit_type,
        platform,
        status as deposit_status,
        toBool(ifNull(has_notes, 0)) as has_notes,
        deposited_at,
        confirmed_at,
        created_at,
        updated_at,
        _replicated_at as replicated_at
    from source
)

select * from renamed
