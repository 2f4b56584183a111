-- Customers grouped by the month of their first contact (earliest funnel_tofu contact_date, else
-- the day the customer was created) and source channel, with the share that opened an account
-- and made a first confirmed deposit within 7, 30 and 90 days of that first contact.
with customers as (
    select * from {{ ref('dim_customers') }}
),

funnel as (
    select * from {{ ref('int_customers__latest_funnel') }}
),

money as (
    select * from {{ ref('int_customers__money_summary') }}
),

milestones as (
    select
        customers.customer_id as customer_id,
        toStartOfMonth(customers.first_contact_date) as cohort_month,
        customers.source_channel as source_channel,
        if(funnel.is_account_opened, dateDiff('day', customers.first_contact_date, toDate(funnel.account_opened_at)), null)
            as days_to_account,
        dateDiff('day', customers.first_contact_date, toDate(money.first_deposit_at)) as days_to_first_deposit
    from customers
    left join funnel on customers.customer_id = funnel.customer_id
    left join money on customers.customer_id = money.customer_id
),

final as (
    select
        cohort_month,
        source_channel,
        toUInt64(count()) as cohort_customers,
        {%- for days in [7, 30, 90] %}
        toFloat64(countIf(days_to_account <= {{ days }})) / count() as account_opened_within_{{ days }}_days_share,
        toFloat64(countIf(days_to_first_deposit <= {{ days }})) / count()
            as first_deposit_within_{{ days }}_days_share,
        {%- endfor %}
        toFloat64(countIf(days_to_account is not null)) / count() as account_opened_ever_share,
        toFloat64(countIf(days_to_first_deposit is not null)) / count() as first_deposit_ever_share
    from milestones
    group by cohort_month, source_channel
)

select * from final
