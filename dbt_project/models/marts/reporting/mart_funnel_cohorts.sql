-- Customers grouped by the month of their first contact (earliest funnel_tofu contact_date, else
-- the day the customer was created) and source channel, with the share that opened an account
-- and made a first confirmed deposit within 7, 30 and 90 days of that first contact.
-- A within-N-days share is over the customers whose N days are over by the build date (first contact
-- more than N days before it): a customer contacted 3 days ago may still open an account on day 7,
-- so counting it as "not within 7 days" would bias the newest cohorts low. The account is the
-- customer's first opened on any funnel_mofu row (int_customers__latest_funnel), as the employee
-- marts count accounts, not only the newest row's. As of the build date (macros/as_of_date.sql): a
-- customer first contacted after it is in no cohort yet, and an account opened or a first deposit made
-- after it is not reached yet (an account opening the CRM did not date counts as opened).
{%- set windows = [7, 30, 90] %}
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
        {{ month_of('customers.first_contact_date') }} as cohort_month,
        customers.source_channel as source_channel,
        dateDiff('day', customers.first_contact_date, {{ as_of_date() }}) as days_observed,
        ifNull(funnel.has_any_account_opened, false)
            and ifNull({{ by_build_date(day_of('funnel.first_account_opened_at')) }}, true) as has_account,
        dateDiff('day', customers.first_contact_date, {{ day_of('funnel.first_account_opened_at') }})
            as days_to_account,
        dateDiff('day', customers.first_contact_date, {{ day_of('money.first_deposit_at') }}) as days_to_first_deposit
    from customers
    left join funnel on customers.customer_id = funnel.customer_id
    left join money on customers.customer_id = money.customer_id
    where {{ by_build_date('customers.first_contact_date') }}
),

final as (
    select
        cohort_month,
        source_channel,
        toUInt64(count()) as cohort_customers,
        {%- for days in windows %}
        toUInt64(countIf(days_observed > {{ days }})) as customers_observed_{{ days }}_days,
        {%- endfor %}
        {%- for days in windows %}
        {{ safe_ratio('countIf(days_observed > ' ~ days ~ ' and days_to_account <= ' ~ days ~ ')',
                      'countIf(days_observed > ' ~ days ~ ')') }} as account_opened_within_{{ days }}_days_share,
        {{ safe_ratio('countIf(days_observed > ' ~ days ~ ' and days_to_first_deposit <= ' ~ days ~ ')',
                      'countIf(days_observed > ' ~ days ~ ')') }} as first_deposit_within_{{ days }}_days_share,
        {%- endfor %}
        toFloat64(countIf(has_account)) / count() as account_opened_ever_share,
        toFloat64(countIf(days_to_first_deposit is not null)) / count() as first_deposit_ever_share
    from milestones
    group by cohort_month, source_channel
)

select * from final
