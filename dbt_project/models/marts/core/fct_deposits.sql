{{ config(
    materialized='incremental',
    incremental_strategy='insert_overwrite',
    partition_by='toYYYYMM(deposit_date)',
    order_by='(employee_id, deposit_date, deposit_id)',
) }}

with deposits as (
    select * from {{ ref('stg_crm__deposits') }}
    {% if is_incremental() %}
    where toYYYYMM(deposited_at) in (
        {{ changed_months(source('crm', 'deposits'), 'deposited_at', 'select max(replicated_at) from ' ~ this) }}
    )
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
