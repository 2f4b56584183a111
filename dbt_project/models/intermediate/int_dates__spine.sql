-- One row per day from the first day with any CRM activity to the build date (min over Nullable
-- values: an empty table yields NULL, not 1970-01-01). Conversations and deposits are read from their
-- facts (plain MergeTree, same rows) rather than from staging, whose FINAL over millions of raw
-- conversation versions would cost more than the rest of the model.
-- Only activity dated from 1970-01-01 (the first day a Date, the spine's and the KPI mart's day type,
-- holds) to the build date sets the start: raw keeps funnel dates such as 1899 as the CRM has them
-- (Date32), and toDate() of an earlier day wraps around (1925-01-01 -> 2104-06-07), which would put the
-- start after the build date and leave the spine, and the KPI mart on it, empty. Activity dated after
-- the build date has not happened yet (as_of_date.sql). Every bound is compared as Date32, before any
-- toDate().
{%- set in_spine_range = "toDate32({day}) between toDate32('1970-01-01') and " ~ as_of_date() %}

with activity_bounds as (
    select coalesce(toDate(min(first_day)), {{ as_of_date() }}) as first_day
    from (
        select min(toNullable(toDate32(contact_date))) as first_day from {{ ref('stg_crm__funnel_tofu') }}
        where {{ in_spine_range.replace('{day}', 'contact_date') }}
        union all
        select min(toNullable(toDate32(sent_date))) from {{ ref('fct_conversations') }}
        where {{ in_spine_range.replace('{day}', 'sent_date') }}
        union all
        select min(toNullable(toDate32(deposit_date))) from {{ ref('fct_deposits') }}
        where {{ in_spine_range.replace('{day}', 'deposit_date') }}
        union all
        select min(toNullable(toDate32(requested_date))) from {{ ref('fct_withdrawals') }}
        where {{ in_spine_range.replace('{day}', 'requested_date') }}
        union all
        select min(toNullable(toDate32(kpi_date))) from {{ ref('stg_crm__employee_kpis') }}
        where {{ in_spine_range.replace('{day}', 'kpi_date') }}
        union all
        -- an account opening is a KPI (mofu_accounts_opened) too, and may precede every other activity
        select min(toNullable(toDate32(account_opened_at))) from {{ ref('stg_crm__funnel_mofu') }}
        where is_account_opened and {{ in_spine_range.replace('{day}', 'account_opened_at') }}
    )
),

spine as (
    {{ date_spine('assumeNotNull(first_day)', as_of_date(), 'activity_bounds') }}
)

select * from spine
