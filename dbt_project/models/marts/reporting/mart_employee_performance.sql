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
        countIf(customers.current_stage_order >= {{ stage_order("'Subscribe'") }}) as customers_reached_subscribe
    from customers
    left join funnel on customers.customer_id = funnel.customer_id
    where customers.assigned_employee_id is not null
    group by customers.assigned_employee_id
),

deposit_periods as (
    select
        employee_id,
        {%- for period in periods %}
        sumIf(amount_usd, {{ in_period(period, 'deposit_date') }}) as deposit_amount_{{ period }},
        countIf({{ in_period(period, 'deposit_date') }}) as deposit_count_{{ period }}{{ ',' if not loop.last }}
        {%- endfor %}
    from deposits
    group by employee_id
),

withdrawal_periods as (
    select
        employee_id,
        {%- for period in periods %}
        sumIf(amount_usd, {{ in_period(period, 'requested_date') }}) as withdrawal_amount_{{ period }},
        countIf({{ in_period(period, 'requested_date') }}) as withdrawal_count_{{ period }}{{ ',' if not loop.last }}
        {%- endfor %}
    from withdrawals
    group by employee_id
),

-- A customer's account is credited to the employee of the funnel_mofu row that recorded its first
-- opening (an account opened on any row counts, as in accounts_opened: a newer row of a re-contact
-- that says none does not undo it), first deposits to the employee of the customer's first confirmed
-- deposit. The average days to an account (to a first deposit) of a period, all time included, are over
-- the accounts opened (first deposits made) in it, credited the same way, so that this month's, this
-- quarter's and the all-time average describe the same employee's work (customers are assigned to their
-- MoFu advisor while their deposits are credited to the BoFu broker); days count from the customer's first
-- contact.
account_periods as (
    select
        funnel.first_account_opened_employee_id as employee_id,
        {%- for period in periods %}
        {%- set opened_in_period = in_period(period, day_of('funnel.first_account_opened_at')) %}
        countIf({{ opened_in_period }}) as accounts_opened_{{ period }},
        avgIf(
            toNullable({{ days_between('customers.first_contact_date', day_of('funnel.first_account_opened_at')) }}),
            {{ opened_in_period }}
        ) as avg_days_contact_to_account_{{ period }}{{ ',' if not loop.last }}
        {%- endfor %}
    from funnel
    inner join customers on funnel.customer_id = customers.customer_id
    where funnel.first_account_opened_employee_id is not null
    group by funnel.first_account_opened_employee_id
),

first_deposit_periods as (
    select
        money.first_deposit_employee_id as employee_id,
        {%- for period in periods %}
        {%- set deposited_in_period = in_period(period, day_of('money.first_deposit_at')) %}
        countIf({{ deposited_in_period }}) as first_deposits_{{ period }},
        -- (an account opened after the build date has not been opened yet: no days from it)
        avgIf(
            toNullable({{ days_between(day_of('funnel.first_account_opened_at'), day_of('money.first_deposit_at')) }}),
            {{ deposited_in_period }} and {{ by_build_date(day_of('funnel.first_account_opened_at')) }}
        ) as avg_days_account_to_first_deposit_{{ period }},
        avgIf(
            toNullable({{ days_between('customers.first_contact_date', day_of('money.first_deposit_at')) }}),
            {{ deposited_in_period }}
        ) as avg_days_contact_to_first_deposit_{{ period }}{{ ',' if not loop.last }}
        {%- endfor %}
    from money
    left join funnel on money.customer_id = funnel.customer_id
    left join customers on money.customer_id = customers.customer_id
    where money.first_deposit_at is not null
    group by money.first_deposit_employee_id
),

-- Stage conversion in a period: of the employee's customers (assigned now), how many entered Trust,
-- Action and Subscribe in it (customer_journey), and the share of entries into one that a period
-- saw into the next, capped at 1 (the entries into the later stage may come from earlier entrants).
stage_periods as (
    select
        customers.assigned_employee_id as employee_id,
        {%- for period in periods %}
        {%- set entered_in_period = in_period(period, day_of('transitions.entered_at')) %}
        {%- set last_period = loop.last %}
        {%- for stage in ('Trust', 'Action', 'Subscribe') %}
        uniqExactIf(transitions.customer_id, transitions.stage = '{{ stage }}' and {{ entered_in_period }})
            as entered_{{ stage | lower }}_{{ period }}{{ ',' if not (loop.last and last_period) }}
        {%- endfor %}
        {%- endfor %}
    from {{ ref('fct_stage_transitions') }} as transitions
    inner join customers on transitions.customer_id = customers.customer_id
    where customers.assigned_employee_id is not null
    group by customers.assigned_employee_id
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
        {{ capped_ratio('ifNull(withdrawal_periods.withdrawal_amount_' ~ period ~ ', 0)',
                        'deposit_periods.deposit_amount_' ~ period) }}
            as withdrawal_rate_{{ period }},
        ifNull(account_periods.accounts_opened_{{ period }}, 0) as accounts_opened_{{ period }},
        ifNull(first_deposit_periods.first_deposits_{{ period }}, 0) as first_deposits_{{ period }},
        ifNull(conversation_periods.conversations_{{ period }}, 0) as conversations_{{ period }},
        ifNull(conversation_periods.quality_conversations_{{ period }}, 0) as quality_conversations_{{ period }},
        ifNull(conversation_periods.counter_questions_{{ period }}, 0) as counter_questions_{{ period }},
        {%- endfor %}
        account_periods.avg_days_contact_to_account_all_time as avg_days_contact_to_account,
        first_deposit_periods.avg_days_account_to_first_deposit_all_time as avg_days_account_to_first_deposit,
        first_deposit_periods.avg_days_contact_to_first_deposit_all_time as avg_days_contact_to_first_deposit,
        {{ safe_ratio('portfolio.customers_reached_trust', 'portfolio.total_customers') }} as reached_trust_rate,
        {{ safe_ratio('portfolio.customers_reached_action', 'portfolio.total_customers') }} as reached_action_rate,
        {{ safe_ratio('portfolio.customers_reached_subscribe', 'portfolio.total_customers') }}
            as reached_subscribe_rate,
        {{ safe_ratio('portfolio.accounts_opened', 'portfolio.total_customers') }} as account_opening_rate,
        {{ capped_ratio('portfolio.first_deposits', 'portfolio.accounts_opened') }}
            as account_to_first_deposit_rate,
        {#- The averages of this month and quarter (all time: the columns above), and the stage conversion
            of every period, all time included. #}
        {%- for period in periods %}
        {%- if period != 'all_time' %}
        account_periods.avg_days_contact_to_account_{{ period }} as avg_days_contact_to_account_{{ period }},
        first_deposit_periods.avg_days_account_to_first_deposit_{{ period }}
            as avg_days_account_to_first_deposit_{{ period }},
        first_deposit_periods.avg_days_contact_to_first_deposit_{{ period }}
            as avg_days_contact_to_first_deposit_{{ period }},
        {%- endif %}
        {%- for stage in ('trust', 'action', 'subscribe') %}
        ifNull(stage_periods.entered_{{ stage }}_{{ period }}, 0) as customers_entered_{{ stage }}_{{ period }},
        {%- endfor %}
        {{ capped_ratio('ifNull(stage_periods.entered_action_' ~ period ~ ', 0)',
                        'stage_periods.entered_trust_' ~ period) }}
            as trust_to_action_rate_{{ period }},
        {{ capped_ratio('ifNull(stage_periods.entered_subscribe_' ~ period ~ ', 0)',
                        'stage_periods.entered_action_' ~ period) }}
            as action_to_subscribe_rate_{{ period }}{{ ',' if not loop.last }}
        {%- endfor %}
    from employees
    left join portfolio on employees.employee_id = portfolio.employee_id
    left join deposit_periods on employees.employee_id = deposit_periods.employee_id
    left join withdrawal_periods on employees.employee_id = withdrawal_periods.employee_id
    left join account_periods on employees.employee_id = account_periods.employee_id
    left join first_deposit_periods on employees.employee_id = first_deposit_periods.employee_id
    left join conversation_periods on employees.employee_id = conversation_periods.employee_id
    left join stage_periods on employees.employee_id = stage_periods.employee_id
)

select * from final
