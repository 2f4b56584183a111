-- One row per day from the first day with any CRM activity to the build date (min over Nullable
-- values: an empty table yields NULL, not 1970-01-01).
with activity_bounds as (
    select coalesce(min(first_day), today()) as first_day
    from (
        select min(toNullable(contact_date)) as first_day from {{ ref('stg_crm__funnel_tofu') }}
        union all
        select min(toNullable(toDate(sent_at))) from {{ ref('stg_crm__conversations') }}
        union all
        select min(toNullable(toDate(deposited_at))) from {{ ref('stg_crm__deposits') }}
        union all
        select min(toNullable(toDate(requested_at))) from {{ ref('stg_crm__withdrawals') }}
        union all
        select min(toNullable(kpi_date)) from {{ ref('stg_crm__employee_kpis') }}
    )
),

spine as (
    {{ date_spine('assumeNotNull(first_day)', 'today()', 'activity_bounds') }}
)

select * from spine
