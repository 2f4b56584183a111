with source as (
    select * from {{ source('crm', 'employees') }} final
),

renamed as (
    select
        id as employee_id,
        employee_code,
        name as employee_name,
        role,
        department,
        level as employee_level,
        status as employee_status,
        total_customers as recorded_total_customers,
        active_customers as recorded_active_customers,
        total_net_deposit as recorded_total_net_deposit,
        hired_at as hired_date,
        created_at,
        updated_at,
        last_login_at
    from source
)

select * from renamed
