-- One row per day from the first day with any CRM activity to the build date (min over Nullable
-- values: an empty table yields NULL, not 1970-01-01). Conversations and deposits are read from their
-- facts (plain MergeTree, same rows) rather than from staging, whose FINAL over millions of raw
-- conversation versions would cost more than the rest of the model.
with activity_bounds as (
    select coalesce(min(first_day), {{ as_of_date() }}) as first_day
    from (
        select min(toNullable(contact_date)) as first_day from {{ ref('stg_crm__funnel_tofu') }}
        union all
        select min(toNullable(sent_date)) from {{ ref('fct_conversations') }}
        union all
        select min(toNullable(deposit_date)) from {{ ref('fct_deposits') }}
        union all
        select min(toNullable(requested_date)) from {{ ref('fct_withdrawals') }}
        union all
        select min(toNullable(kpi_date)) from {{ ref('stg_crm__employee_kpis') }}
        union all
        -- an account opening is a KPI (mofu_accounts_opened) too, and may precede every other activity
        select min(toNullable(toDate(account_opened_at))) from {{ ref('stg_crm__funnel_mofu') }}
        where is_account_opened
    )
),

spine as (
    {{ date_spine('assumeNotNull(first_day)', as_of_date(), 'activity_bounds') }}
)

select * from spine
