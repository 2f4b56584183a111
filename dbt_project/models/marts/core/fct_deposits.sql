-- Incremental: each run deletes the deposits replicated since the fact's watermark (new, updated or
-- deleted in PostgreSQL) and appends their live versions, so only changed rows are read and written
-- (macros/incremental_changes.sql). --full-refresh rebuilds it from raw.
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    partition_by='toYYYYMM(deposit_date)',
    order_by='(employee_id, deposit_date, deposit_id)',
    pre_hook="{{ delete_replicated_ids(source('crm', 'deposits'), 'deposit_id') }}",
) }}

with deposits as (
    select * from {{ ref('stg_crm__deposits') }}
    {% if is_incremental() %}
    where deposit_id in ({{ ids_replicated_since(source('crm', 'deposits'), fact_watermark()) }})
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
        deposit_type,
        deposit_type = '首金' as is_first_deposit_type,
        platform,
        deposit_status,
        deposit_status = 'confirmed' as is_confirmed,
        deposited_at,
        toDate(deposited_at) as deposit_date,
        confirmed_at,
        created_at,
        replicated_at
    from deposits
)

select * from final
