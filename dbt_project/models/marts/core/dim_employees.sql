with employees as (
    select * from {{ ref('stg_crm__employees') }}
),

final as (
    select
        employee_id,
        employee_code,
        employee_name,
        role,
        ifNull(department, 'unassigned') as department,
        employee_level,
        employee_status,
        role = 'manager' as is_manager,
        employee_status = 'active' as is_active,
        hired_date,
        created_at,
        updated_at,
        last_login_at,
        recorded_total_customers,
        recorded_active_customers,
        recorded_total_net_deposit
    from employees
)

select * from final
