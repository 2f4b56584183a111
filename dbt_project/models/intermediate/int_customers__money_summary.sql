-- One row per customer with confirmed money movements (pending and failed ones never count) up to
-- the build date: a movement stamped after it has not happened yet, so it is in no count or sum and
-- is no first deposit (macros/as_of_date.sql). Amounts are in USD (the facts' amount_usd, at the rate of the
-- movement's day); a confirmed movement without a rate fails its fact before this model runs.
with deposits as (
    select * from {{ ref('fct_deposits') }} where is_confirmed and {{ by_build_date('deposit_date') }}
),

withdrawals as (
    select * from {{ ref('fct_withdrawals') }} where is_confirmed and {{ by_build_date('requested_date') }}
),

deposit_totals as (
    select
        customer_id,
        count() as deposit_count,
        sum(amount_usd) as deposit_amount,
        min(deposited_at) as first_deposit_at,
        argMin(employee_id, (deposited_at, deposit_id)) as first_deposit_employee_id,
        argMin(amount_usd, (deposited_at, deposit_id)) as first_deposit_amount
    from deposits
    group by customer_id
),

withdrawal_totals as (
    select customer_id, count() as withdrawal_count, sum(amount_usd) as withdrawal_amount
    from withdrawals
    group by customer_id
),

final as (
    select
        coalesce(deposit_totals.customer_id, withdrawal_totals.customer_id) as customer_id,
        ifNull(deposit_totals.deposit_count, 0) as deposit_count,
        ifNull(deposit_totals.deposit_amount, 0) as deposit_amount,
        ifNull(withdrawal_totals.withdrawal_count, 0) as withdrawal_count,
        ifNull(withdrawal_totals.withdrawal_amount, 0) as withdrawal_amount,
        deposit_totals.first_deposit_at as first_deposit_at,
        deposit_totals.first_deposit_employee_id as first_deposit_employee_id,
        deposit_totals.first_deposit_amount as first_deposit_amount
    from deposit_totals
    full outer join withdrawal_totals on deposit_totals.customer_id = withdrawal_totals.customer_id
)

select * from final
