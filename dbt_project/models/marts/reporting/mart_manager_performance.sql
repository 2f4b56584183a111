-- The seed has no reporting line (employees has no manager column), so a department is the team:
-- its manager is the department's employee with role 'manager', an active one first (a manager who
-- left stays in employees with status inactive, and his lower id must not hide his successor): the
-- lowest id among the active ones, or of all when none is active. The direct reports are the
-- department's other employees.
{%- set periods = reporting_periods().keys() | list %}
with employee_performance as (
    select * from {{ ref('mart_employee_performance') }}
),

employees as (
    select * from {{ ref('dim_employees') }}
),

managers as (
    select
        department,
        argMin(employee_id, (not ifNull(is_active, false), employee_id)) as manager_employee_id,
        argMin(employee_name, (not ifNull(is_active, false), employee_id)) as manager_name,
        count() as manager_count
    from employees
    where is_manager
    group by department
),

teams as (
    select
        employee_performance.department as department,
        countIf(employees.is_manager = 0) as direct_report_count,
        countIf(employees.is_manager = 0 and employees.is_active) as active_direct_report_count,
        sum(employee_performance.total_customers) as total_customers,
        sum(employee_performance.active_customers) as active_customers,
        sum(employee_performance.accounts_opened) as accounts_opened,
        sum(employee_performance.first_deposits) as first_deposits,
        {%- for period in periods %}
        sum(employee_performance.deposit_amount_{{ period }}) as deposit_amount_{{ period }},
        sum(employee_performance.withdrawal_amount_{{ period }}) as withdrawal_amount_{{ period }},
        sum(employee_performance.net_deposit_{{ period }}) as net_deposit_{{ period }},
        sum(employee_performance.accounts_opened_{{ period }}) as accounts_opened_{{ period }},
        sum(employee_performance.first_deposits_{{ period }}) as first_deposits_{{ period }},
        sum(employee_performance.quality_conversations_{{ period }}) as quality_conversations_{{ period }},
        sum(employee_performance.counter_questions_{{ period }}) as counter_questions_{{ period }},
        {%- endfor %}
        count() as employee_count
    from employee_performance
    inner join employees on employee_performance.employee_id = employees.employee_id
    group by employee_performance.department
),

final as (
    select
        teams.department as department,
        managers.manager_employee_id as manager_employee_id,
        managers.manager_name as manager_name,
        ifNull(managers.manager_count, 0) as manager_count,
        teams.employee_count as employee_count,
        teams.direct_report_count as direct_report_count,
        teams.active_direct_report_count as active_direct_report_count,
        teams.total_customers as total_customers,
        teams.active_customers as active_customers,
        teams.accounts_opened as accounts_opened,
        teams.first_deposits as first_deposits,
        {%- for period in periods %}
        teams.deposit_amount_{{ period }} as deposit_amount_{{ period }},
        teams.withdrawal_amount_{{ period }} as withdrawal_amount_{{ period }},
        teams.net_deposit_{{ period }} as net_deposit_{{ period }},
        {{ capped_ratio('teams.withdrawal_amount_' ~ period, 'teams.deposit_amount_' ~ period) }}
            as withdrawal_rate_{{ period }},
        teams.accounts_opened_{{ period }} as accounts_opened_{{ period }},
        teams.first_deposits_{{ period }} as first_deposits_{{ period }},
        teams.quality_conversations_{{ period }} as quality_conversations_{{ period }},
        teams.counter_questions_{{ period }} as counter_questions_{{ period }},
        {%- endfor %}
        {{ safe_ratio('teams.accounts_opened', 'teams.total_customers') }} as account_opening_rate
    from teams
    left join managers on teams.department = managers.department
)

select * from final
