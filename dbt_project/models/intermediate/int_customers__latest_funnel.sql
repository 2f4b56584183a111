-- One row per customer with its funnel rows. A customer may have several funnel_tofu/mofu/bofu
-- rows (re-contact, re-assignment); the seed's v_customer_overview then repeats the customer.
-- Rule, used by every mart: keep the row created last (greatest created_at, then greatest id).
-- The *_row_count columns say how many rows the rule chose from. Two facts are about any of the rows,
-- not the chosen one, as the seed's v_employee_performance counts them (COUNT DISTINCT over the joined
-- rows): a customer whose account was opened, or first deposit recorded, on any row has one, whatever
-- a newer row (a re-contact) says; first_account_opened_at is the earliest such opening and
-- first_account_opened_employee_id the employee of its row.
with customers as (
    select * from {{ ref('stg_crm__customers') }}
),

tofu as (
    select *, count() over (partition by customer_id) as tofu_row_count
    from {{ ref('stg_crm__funnel_tofu') }}
    order by customer_id asc, created_at desc, tofu_id desc
    limit 1 by customer_id
),

mofu as (
    select
        *,
        count() over (partition by customer_id) as mofu_row_count,
        max(ifNull(is_account_opened, false)) over (partition by customer_id) as any_account_opened,
        minIf(account_opened_at, ifNull(is_account_opened, false)) over (partition by customer_id)
            as first_account_opened_at,
        -- (an opening without a date sorts last)
        argMinIf(
            employee_id,
            (ifNull(account_opened_at, toDateTime64('2299-12-31 00:00:00', 6, 'UTC')), mofu_id),
            ifNull(is_account_opened, false)
        ) over (partition by customer_id) as first_account_opened_employee_id
    from {{ ref('stg_crm__funnel_mofu') }}
    order by customer_id asc, created_at desc, mofu_id desc
    limit 1 by customer_id
),

bofu as (
    select
        *,
        count() over (partition by customer_id) as bofu_row_count,
        max(toBool(first_deposit_at is not null)) over (partition by customer_id) as any_first_deposit_recorded
    from {{ ref('stg_crm__funnel_bofu') }}
    order by customer_id asc, created_at desc, bofu_id desc
    limit 1 by customer_id
),

final as (
    select
        customers.customer_id as customer_id,
        tofu.tofu_id as tofu_id,
        tofu.employee_id as tofu_employee_id,
        tofu.source_channel as tofu_source_channel,
        tofu.has_stayed_in_group as has_stayed_in_group,
        mofu.mofu_id as mofu_id,
        mofu.employee_id as mofu_employee_id,
        mofu.total_conversations as total_conversations,
        mofu.high_quality_conversations as high_quality_conversations,
        mofu.total_counter_question_count as total_counter_question_count,
        mofu.is_account_opened as is_account_opened,
        mofu.account_opened_at as account_opened_at,
        bofu.bofu_id as bofu_id,
        bofu.employee_id as bofu_employee_id,
        bofu.total_deposits as total_deposits,
        bofu.total_withdrawals as total_withdrawals,
        bofu.net_deposit as net_deposit,
        bofu.withdrawal_rate_percent as withdrawal_rate_percent,
        bofu.first_deposit_at as recorded_first_deposit_at,
        bofu.is_vip as is_vip,
        ifNull(tofu.tofu_row_count, 0) as tofu_row_count,
        ifNull(mofu.mofu_row_count, 0) as mofu_row_count,
        ifNull(bofu.bofu_row_count, 0) as bofu_row_count,
        ifNull(mofu.any_account_opened, false) as has_any_account_opened,
        mofu.first_account_opened_at as first_account_opened_at,
        mofu.first_account_opened_employee_id as first_account_opened_employee_id,
        ifNull(bofu.any_first_deposit_recorded, false) as has_any_first_deposit_recorded
    from customers
    left join tofu on customers.customer_id = tofu.customer_id
    left join mofu on customers.customer_id = mofu.customer_id
    left join bofu on customers.customer_id = bofu.customer_id
)

select * from final
