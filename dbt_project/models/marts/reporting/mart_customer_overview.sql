with customers as (
    select * from {{ ref('dim_customers') }}
),

funnel as (
    select * from {{ ref('int_customers__latest_funnel') }}
),

money as (
    select * from {{ ref('int_customers__money_summary') }}
),

conversations as (
    select * from {{ ref('int_customers__conversation_summary') }}
),

employees as (
    select * from {{ ref('dim_employees') }}
),

current_stages as (
    select customer_id, stage, entered_at
    from {{ ref('fct_stage_transitions') }}
    where is_current
),

-- Customers with a journey row after the build date (fct_stage_transitions stops at it): the stage the
-- CRM shows now was entered after the build date, and the one before it is not kept in customers.
customers_moved_after_build_date as (
    select distinct customer_id
    from {{ ref('stg_crm__customer_journey') }}
    where not {{ by_build_date(day_of('transitioned_at')) }}
),

final as (
    select
        customers.customer_id as customer_id,
        customers.customer_code as customer_code,
        customers.tier as tier,
        customers.current_stage as current_stage,
        customers.intention_score as intention_score,
        customers.engagement_score as engagement_score,
        funnel.tofu_source_channel as source_channel,
        funnel.has_stayed_in_group as has_stayed_in_group,
        funnel.total_conversations as total_conversations,
        funnel.high_quality_conversations as high_quality_conversations,
        funnel.is_account_opened as is_account_opened,
        funnel.total_deposits as total_deposits,
        funnel.total_withdrawals as total_withdrawals,
        funnel.net_deposit as net_deposit,
        funnel.withdrawal_rate_percent as withdrawal_rate_percent,
        funnel.is_vip as is_vip,
        employees.employee_name as employee_name,
        employees.employee_code as employee_code,
        customers.created_at as created_at,
        customers.last_contact_at as last_contact_at,

        customers.customer_status as customer_status,
        customers.assigned_employee_id as assigned_employee_id,
        customers.source_channel as customer_source_channel,
        customers.country as country,
        customers.age_band as age_band,
        if(
            customers.customer_id in (select customer_id from customers_moved_after_build_date),
            null,
            {{ days_to_build_date(
                day_of('if(current_stages.stage = customers.current_stage, current_stages.entered_at, customers.created_at)')
            ) }}
        ) as days_in_current_stage,
        customers.first_contact_date as first_contact_date,
        {{ day_of('money.first_deposit_at') }} as first_deposit_date,
        {{ days_between('customers.first_contact_date', day_of('money.first_deposit_at')) }} as days_to_first_deposit,
        -- who took the first deposit, not who has the customer now (a customer moves on to another
        -- department after it): the reports credit the first deposit to this employee, as
        -- mart_employee_performance does
        first_deposit_employees.employee_code as first_deposit_employee_code,
        ifNull(money.deposit_count, 0) as deposit_count,
        ifNull(money.withdrawal_count, 0) as withdrawal_count,
        ifNull(money.deposit_amount, 0) as confirmed_deposit_amount,
        ifNull(money.withdrawal_amount, 0) as confirmed_withdrawal_amount,
        ifNull(conversations.conversations_last_7_days, 0) as conversations_last_7_days,
        ifNull(conversations.conversations_last_30_days, 0) as conversations_last_30_days,
        ifNull(conversations.quality_conversations_last_7_days, 0) as quality_conversations_last_7_days,
        ifNull(conversations.quality_conversations_last_30_days, 0) as quality_conversations_last_30_days,
        ifNull(conversations.positive_conversation_count, 0) as positive_conversation_count,
        ifNull(conversations.neutral_conversation_count, 0) as neutral_conversation_count,
        ifNull(conversations.negative_conversation_count, 0) as negative_conversation_count,
        {{ safe_ratio('conversations.positive_conversation_count', 'conversations.conversation_count') }}
            as positive_conversation_share,
        {{ safe_ratio('conversations.negative_conversation_count', 'conversations.conversation_count') }}
            as negative_conversation_share,
        customers.tag_names as tag_names,
        toUInt32(length(customers.tag_names)) as tag_count,
        {{ days_to_build_date(day_of('customers.last_contact_at')) }} as days_since_last_contact,
        greatest(funnel.tofu_row_count, funnel.mofu_row_count, funnel.bofu_row_count) > 1
            as has_multiple_funnel_rows,
        -- the day every day count and 7/30-day window above is measured to, on every row: the reports (and BI
        -- users) read it from this mart, as other marts, built in other Dagster jobs, can be as of another day
        {{ as_of_date() }} as as_of_date
    from customers
    left join funnel on customers.customer_id = funnel.customer_id
    left join money on customers.customer_id = money.customer_id
    left join conversations on customers.customer_id = conversations.customer_id
    left join employees on customers.assigned_employee_id = employees.employee_id
    left join employees as first_deposit_employees
        on money.first_deposit_employee_id = first_deposit_employees.employee_id
    left join current_stages on customers.customer_id = current_stages.customer_id
)

select * from final
