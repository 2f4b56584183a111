{%- set periods = reporting_periods().keys() | list -%}
with employees as (
    select * from {{ ref('dim_employees') }}
),

customers as (
    select * from {{ ref('dim_customers') }}
),

funnel as (
    select * from {{ ref('int_customers__latest_funnel') }}
),

money as (
    select * from {{ ref('int_customers__money_summary') }}
),

deposits as (
    select * from {{ ref('fct_deposits') }} where is_confirmed
),

withdrawals as (
    select * from {{ ref('fct_withdrawals') }} where is_confirmed
),

conversations as (
    select * from {{ ref('fct_conversations') }}
),

-- The seed view's measures, one funnel row per customer (int_customers__latest_funnel's rule); accounts opened
-- and first deposits count a customer whose any row has one, as the view's COUNT DISTINCT does.
portfolio as (
    select
        customers.assigned_employee_id as employee_id,
        count() as total_customers,
        countIf(customers.customer_status = 'active') as active_customers,
        sum(funnel.net_deposit) as total_net_deposit,
        avg(funnel.withdrawal_rate_percent) as avg_withdrawal_rate_percent,
        countIf(funnel.has_any_account_opened) as accounts_opened,
        countIf(funnel.has_any_first_deposit_recorded) as first_deposits,
        countIf(customers.current_stage_order >= {{ stage_order("'Trust'") }}) as customers_reached_trust,
        countIf(customers.current_stage_order >= {{ stage_order("'Action'") }}) as customers_reached_action,
        countIf(customers.current_stage_order >= {{ stage_order("'Subscribe'") }}) as customers_reached_subscribe,
        avg(dateDiff('day', customers.first_contact_date, toDate(funnel.account_opened_at)))
            as avg_days_contact_to_account,
        avg(dateDiff('day', toDate(funnel.account_opened_at), toDate(money.first_deposit_at)))
            as avg_days_account_to_first_deposit,
        avg(dateDiff('day', customers.first_contact_date, toDate(money.first_deposit_at)))
            as avg_days_contact_to_first_deposit
    from customers
    left join funnel on customers.customer_id = funnel.customer_id
    left join money on customers.customer_id = money.customer_id
    where customers.assigned_employee_id is not null
    group by customers.assigned_employee_id
),

deposit_periods as (
    select
        employee_id,
        {%- for period in periods %}
        sumIf(amount, {{ in_period(period, 'deposit_date') }}) as deposit_amount_{{ period }},
        countIf({{ in_period(period, 'deposit_date') }}) as deposit_count_{{ period }}{{ ',' if not loop.last }}
        {%- endfor %}
    from deposits
    group by employee_id
),

withdrawal_periods as (
    select
        employee_id,
        {%- for period in periods %}
        sumIf(amount, {{ in_period(period, 'requested_date') }}) as withdrawal_amount_{{ period }},
        countIf({{ in_period(period, 'requested_date') }}) as withdrawal_count_{{ period }}{{ ',' if not loop.last }}
        {%- endfor %}
    from withdrawals
    group by employee_id
),

-- Accounts opened are credited to the employee on the funnel_mofu row, first deposits to the
-- employee of the customer's first confirmed deposit.
account_periods as (
    select
        mofu_employee_id as employee_id,
        {%- for period in periods %}
        countIf(is_account_opened and {{ in_period(period, 'toDate(account_opened_at)') }})
            as accounts_opened_{{ period }}{{ ',' if not loop.last }}
        {%- endfor %}
    from funnel
    where mofu_employee_id is not null
    group by mofu_employee_id
),

first_deposit_periods as (
    select
        first_deposit_employee_id as employee_id,
        {%- for period in periods %}
        countIf({{ in_period(period, 'toDate(first_deposit_at)') }}) as first_deposits_{{ period }}{{ ',' if not loop.last }}
        {%- endfor %}
    from money
    where first_deposit_at is not null
    group by first_deposit_employee_id
),

conversation_periods as (
    select
        employee_id,
        {%- for period in periods %}
        countIf({{ in_period(period, 'sent_date') }}) as conversations_{{ period }},
        countIf(is_quality_conversation and {{ in_period(period, 'sent_date') }})
            as quality_conversations_{{ period }},
        countIf(is_counter_question and {{ in_period(period, 'sent_date') }})
            as counter_questions_{{ period }}{{ ',' if not loop.last }}
        {%- endfor %}
    from conversations
    group by employee_id
),

final as (
    select
        employees.employee_id as employee_id,
        employees.employee_code as employee_code,
        employees.employee_name as employee_name,
        employees.employee_level as employee_level,
        employees.department as department,
        ifNull(portfolio.total_customers, 0) as total_customers,
        ifNull(portfolio.active_customers, 0) as active_customers,
        portfolio.total_net_deposit as total_net_deposit,
        portfolio.avg_withdrawal_rate_percent as avg_withdrawal_rate_percent,
        ifNull(portfolio.accounts_opened, 0) as accounts_opened,
        ifNull(portfolio.first_deposits, 0) as first_deposits,
        employees.created_at as hired_at,

        employees.role as role,
        employees.employee_status as employee_status,
        employees.hired_date as hired_date,
        {%- for period in periods %}
        ifNull(deposit_periods.deposit_amount_{{ period }}, 0) as deposit_amount_{{ period }},
        ifNull(withdrawal_periods.withdrawal_amount_{{ period }}, 0) as withdrawal_amount_{{ period }},
        ifNull(deposit_periods.deposit_amount_{{ period }}, 0)
            - ifNull(withdrawal_periods.withdrawal_amount_{{ period }}, 0) as net_deposit_{{ period }},
        ifNull(deposit_periods.deposit_count_{{ period }}, 0) as deposit_count_{{ period }},
        ifNull(withdrawal_periods.withdrawal_count_{{ period }}, 0) as withdrawal_count_{{ period }},
        {{ capped_ratio('withdrawal_periods.withdrawal_amount_' ~ period, 'deposit_periods.deposit_amount_' ~ period) }}
            as withdrawal_rate_{{ period }},
        ifNull(account_periods.accounts_opened_{{ period }}, 0) as accounts_opened_{{ period }},
        ifNull(first_deposit_periods.first_deposits_{{ period }}, 0) as first_deposits_{{ period }},
        ifNull(conversation_periods.conversations_{{ period }}, 0) as conversations_{{ period }},
        ifNull(conversation_periods.quality_conversations_{{ period }}, 0) as quality_conversations_{{ period }},
        ifNull(conversation_periods.counter_questions_{{ period }}, 0) as counter_questions_{{ period }},
        {%- endfor %}
        portfolio.avg_days_contact_to_account as avg_days_contact_to_account,
        portfolio.avg_days_account_to_first_deposit as avg_days_account_to_first_deposit,
        portfolio.avg_days_contact_to_first_deposit as avg_days_contact_to_first_deposit,
        {{ safe_ratio('portfolio.customers_reached_trust', 'portfolio.total_customers') }} as reached_trust_rate,
        {{ safe_ratio('portfolio.customers_reached_action', 'portfolio.total_customers') }} as reached_action_rate,
        {{ safe_ratio('portfolio.customers_reached_subscribe', 'portfolio.total_customers') }}
            as reached_subscribe_rate,
        {{ safe_ratio('portfolio.accounts_opened', 'portfolio.total_customers') }} as account_opening_rate,
        {{ capped_ratio('portfolio.first_deposits', 'portfolio.accounts_opened') }}
            as account_to_first_deposit_rate
    from employees
    left join portfolio on employees.employee_id = portfolio.employee_id
    left join deposit_periods on employees.employee_id = deposit_periods.employee_id
    left join withdrawal_periods on employees.employee_id = withdrawal_periods.employee_id
    left join account_periods on employees.employee_id = account_periods.employee_id
    left join first_deposit_periods on employees.employee_id = first_deposit_periods.employee_id
    left join conversation_periods on employees.employee_id = conversation_periods.employee_id
)

select * from final
