-- The test reads two models; dagster-dbt attaches a test with several parents to the asset named
-- in meta.dagster.ref (dagster_dbt.asset_utils.get_asset_check_key_for_test), else to none.
{{ config(meta={'dagster': {'ref': {'name': 'mart_kpi_employee_daily'}}}) }}

-- Date-spine integrity of mart_kpi_employee_daily: every spine day is present, no day outside the
-- spine exists, and every present day carries one row per employee (full builds and incremental
-- month rebuilds alike; an employee added later appears on rebuilt months only, so the per-day
-- check compares each day with the most common employee count of its month). With no employees
-- yet (a new installation before its first load) the mart rightly has no rows at all. An empty spine
-- fails too (it always holds the build date): on an empty spine the mart is empty as well, and the
-- checks above would pass on the two empty tables (a build selecting the mart alone runs this test,
-- not the spine's own date_spine_has_every_day_up_to_the_build_date).
with spine as (
    select date_day from {{ ref('int_dates__spine') }}
),

kpi_days as (
    select kpi_date, count() as employee_rows
    from {{ ref('mart_kpi_employee_daily') }}
    group by kpi_date
),

missing_days as (
    select date_day as problem_date, 'spine day missing from the KPI mart' as problem
    from spine
    where date_day not in (select kpi_date from kpi_days)
        and (select count() from {{ ref('dim_employees') }}) > 0
),

extra_days as (
    select kpi_date as problem_date, 'KPI day outside the date spine' as problem
    from kpi_days
    where kpi_date not in (select date_day from spine)
),

empty_spine as (
    select {{ as_of_date() }} as problem_date, 'the date spine is empty' as problem
    where (select count() from spine) = 0
),

months as (
    select toStartOfMonth(kpi_date) as month_start, topK(1)(employee_rows)[1] as usual_rows
    from kpi_days
    group by month_start
),

uneven_days as (
    select kpi_date as problem_date, 'day with a different employee count than its month' as problem
    from kpi_days
    inner join months on toStartOfMonth(kpi_days.kpi_date) = months.month_start
    where kpi_days.employee_rows != months.usual_rows
)

select * from empty_spine
union all
select * from missing_days
union all
select * from extra_days
union all
select * from uneven_days
