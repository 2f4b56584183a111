-- Incremental like fct_deposits: each run deletes the withdrawals with a raw version stamped after the
-- fact's watermark and at or before the committed one, and appends their live versions
-- (macros/incremental_changes.sql, watermarks.sql). --full-refresh rebuilds it.
-- `funnelhouse backfill` replaces whole months of it, keeping its watermark (macros/fact_backfill.sql).
-- amount_usd as in fct_deposits, at the rate of requested_date (the day the marts count a withdrawal on,
-- not the day it was processed).
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    order_by='(employee_id, requested_date, withdrawal_id)',
    pre_hook="{{ delete_replicated_ids('withdrawals', 'withdrawal_id', 'requested_date') }}",
    post_hook=[
        "{{ delete_moved_rows('withdrawal_id', 'requested_date') }}",
        "{{ assert_confirmed_amounts_in_usd('withdrawals') }}",
        "{{ record_watermarks() }}",
    ],
) }}

with withdrawals as (
    select * from {{ ref('stg_crm__withdrawals') }}
    {% if is_incremental() %}
    where {{ fact_rows_to_read('withdrawals', 'withdrawal_id', day_of('requested_at')) }}
    {% endif %}
),

final as (
    select
        withdrawal_id,
        withdrawal_code,
        customer_id,
        employee_id,
        amount,
        currency,
        {{ amount_in_usd('amount') }} as amount_usd,
        withdrawal_reason,
        risk_level,
        is_retention_success,
        has_retention_action,
        withdrawal_status,
        withdrawal_status = 'confirmed' as is_confirmed,
        requested_at,
        {{ day_of('requested_at') }} as requested_date,
        processed_at,
        created_at,
        replicated_at
    from withdrawals
    {{ join_usd_rate('withdrawals.currency', day_of('withdrawals.requested_at')) }}
)

select * from final
