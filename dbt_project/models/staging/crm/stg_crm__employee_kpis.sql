with source as (
    select * from {{ source('crm', 'employee_kpis') }} final
),

renamed as (
    select
        id as employee_kpi_id,
        employee_id,
        -- Date32 as in raw: toDate() would wrap a day before 1970 around to one after 2100
        date as kpi_date,
        tofu_contacts,
        tofu_retained,
        -- Rates in the operational table are percentages (0..100).
        tofu_retention_rate as tofu_retention_rate_percent,
        mofu_quality_conversations,
        `mofu_反问_count` as mofu_counter_question_count,
        mofu_accounts_opened,
        bofu_deposits_count,
        bofu_deposit_amount,
        bofu_withdrawal_amount,
        bofu_net_deposit,
        bofu_withdrawal_rate as bofu_withdrawal_rate_percent,
        overall_score,
        created_at,
        updated_at
    from source
)

select * from renamed
