{#- Months (YYYYMM) of mart_kpi_employee_daily (`mart`, the existing table) that no longer agree with
    what their inputs give now, found by comparing state rather than raw versions: the old month of an
    updated row is among raw's versions only until ReplacingMergeTree merges the older one away
    (incremental_changes.sql), so a deposit moved to another month, merged before the next build, would
    stay counted in its old month too. The new month of a changed row is found by changed_months (the
    current version is never merged away); these queries find the months a row has left. -#}

{#- Months whose per-employee totals in the mart differ from the inputs': counts and sums over the
    spine's days and dim_employees' employees (what the mart holds), for every metric whose rows can move
    to another day (funnel_tofu contacts, accounts opened, confirmed deposits and withdrawals, reported
    employee_kpis rows). A row that leaves a month takes its count (or its amount) with it, so the month
    differs unless a change in the same month makes up for it exactly, and such a change puts the month
    among changed_months anyway. Conversations are left out (the costliest input to read): a message
    cannot move, its sent_at is in raw's key and its deletion keeps it. One pass over each input's date,
    employee and measure columns: no join, the mart's totals subtracted from the inputs' (as
    Decimal128(2), the mart's money type). -#}
{% macro kpi_months_out_of_step(mart) -%}
    {%- set spine = ref('int_dates__spine') -%}
    {%- set in_spine = "{day} between (select min(date_day) from " ~ spine ~ ") and (select max(date_day) from "
        ~ spine ~ ") and {employee} in (select employee_id from " ~ ref('dim_employees') ~ ")" -%}
    {%- set inputs = [
        ('contact_date', 'employee_id', ref('stg_crm__funnel_tofu'), 'true',
            [('tofu_contacts', 'count()'), ('tofu_retained', 'countIf(has_stayed_in_group)')]),
        (day_of('first_account_opened_at'), 'first_account_opened_employee_id', ref('int_customers__latest_funnel'),
            'first_account_opened_at is not null', [('mofu_accounts_opened', 'count()')]),
        ('deposit_date', 'employee_id', ref('fct_deposits'), 'is_confirmed',
            [('bofu_deposits_count', 'count()'), ('bofu_deposit_amount', 'sum(amount_usd)')]),
        ('requested_date', 'employee_id', ref('fct_withdrawals'), 'is_confirmed',
            [('bofu_withdrawal_amount', 'sum(amount_usd)')]),
        ('kpi_date', 'employee_id', ref('stg_crm__employee_kpis'), 'true', [('has_reported_kpis', 'count()')]),
    ] -%}
    {%- set totals = [] -%}
    {%- set mart_totals = [] -%}
    {%- for day, employee, relation, condition, metrics in inputs -%}
        {%- set pairs = [] -%}
        {%- for metric, aggregate in metrics -%}
            {%- do pairs.append("('" ~ metric ~ "', toDecimal128(ifNull(" ~ aggregate ~ ", 0), 2))") -%}
            {%- do mart_totals.append("('" ~ metric ~ "', -toDecimal128(sum(" ~ metric ~ "), 2))") -%}
        {%- endfor -%}
        {%- do totals.append(
            "select toYYYYMM(" ~ day ~ ") as month, toInt64(" ~ employee ~ ") as employee_id, arrayJoin(["
            ~ pairs | join(', ') ~ "]) as total from " ~ relation ~ " where " ~ condition ~ " and "
            ~ in_spine.replace('{day}', day).replace('{employee}', employee) ~ " group by month, employee_id"
        ) -%}
    {%- endfor -%}
    {%- do totals.append(
        "select toYYYYMM(kpi_date) as month, toInt64(employee_id) as employee_id, arrayJoin(["
        ~ mart_totals | join(', ') ~ "]) as total from " ~ mart ~ " where "
        ~ in_spine.replace('{day}', 'kpi_date').replace('{employee}', 'employee_id') ~ " group by month, employee_id"
    ) -%}
    select distinct month from (
        select month, employee_id, total.1 as metric, sum(total.2) as difference
        from ({{ totals | join(' union all ') }})
        group by month, employee_id, metric
        having difference != 0
    )
{%- endmacro %}

{#- Months of `mart` whose employees (the dim_employees columns it shows: id, code, name, department,
    hire date) are not dim_employees' now: an employee added, deleted or renamed, moved to another
    department, or whose hire date was corrected (is_employed follows it) puts every month here. A change
    of a column the mart does not show (employees.last_login_at moves on every login) puts none: the raw
    versions replicated since the last build would say only that some employee row changed. -#}
{% macro kpi_months_with_other_employees(mart) -%}
    {%- set shown = 'employee_id, employee_code, employee_name, department, hired_date' -%}
    select month from (
        select toYYYYMM(kpi_date) as month, arraySort(groupUniqArray(({{ shown }}))) as employees
        from {{ mart }}
        group by month
    )
    where employees != (select arraySort(groupArray(({{ shown }}))) from {{ ref('dim_employees') }})
{%- endmacro %}
