-- Incremental: each run deletes the deposits with a raw version stamped after the fact's watermark and
-- at or before the committed one (new, updated or deleted in PostgreSQL) and appends their live
-- versions, so only changed rows are read and written; the post-hook then records the committed
-- watermark as the fact's (macros/incremental_changes.sql, watermarks.sql). --full-refresh rebuilds it.
-- `funnelhouse backfill` replaces whole months of it, keeping its watermark (macros/fact_backfill.sql).
-- amount_usd: amount at the seed fx_rates_to_usd's rate of its currency on deposit_date, NULL without a
-- rate; a confirmed deposit without one fails the model, naming the currency (macros/usd_amounts.sql).
-- An appended row takes the seed as it is then: a changed seed rebuilds this fact whole in
-- `funnelhouse build` and Dagster (dbt_plan.py); a hand-run dbt after `dbt seed` needs --full-refresh.
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    partition_by='toYYYYMM(deposit_date)',
    order_by='(employee_id, deposit_date, deposit_id)',
    pre_hook="{{ delete_replicated_ids('deposits', 'deposit_id', 'deposit_date') }}",
    post_hook=[
        "{{ delete_moved_rows('deposit_id', 'deposit_date') }}",
        "{{ assert_confirmed_amounts_in_usd('deposits') }}",
        "{{ record_watermarks() }}",
    ],
) }}

with deposits as (
    select * from {{ ref('stg_crm__deposits') }}
    {% if is_incremental() %}
    where {{ fact_rows_to_read('deposits', 'deposit_id', day_of('deposited_at')) }}
    {% endif %}
),

final as (
    select
        deposit_id,
        deposit_code,
        customer_id,
        employee_id,
        amount,
        currency,
        {{ amount_in_usd('amount') }} as amount_usd,
        deposit_type,
        deposit_type = '首金' as is_first_deposit_type,
        platform,
        deposit_status,
        deposit_status = 'confirmed' as is_confirmed,
        deposited_at,
        {{ day_of('deposited_at') }} as deposit_date,
        confirmed_at,
        created_at,
        replicated_at
    from deposits
    {{ join_usd_rate('deposits.currency', day_of('deposits.deposited_at')) }}
)

select * from final
