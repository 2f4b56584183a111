{#- Daily partitions for Dagster, monthly partitions in ClickHouse: a run rebuilds whole months
    (insert_overwrite) and reads its inputs for those months only.
    * Dagster partition run / backfill: the months holding its days (macros/kpi_window.sql), plus the
      table's first and last months and any beyond them, so that a run leaves the whole spine built
      (a new spine day after the last build, a spine grown backwards), plus every month holding a score
      other than the CRM's weights give now (kpi_months_scored_otherwise, below): in Dagster this mart
      never runs incrementally (its job is partition runs and the nightly full refresh), so changed
      weights reach past months at the next partition run. On a fresh warehouse (no table
      yet) the first run builds every month: a mart of only the requested months would fail the
      date-spine test, and no other job builds this mart.
    * Incremental run: the months holding the last kpi_lookback_days (days roll over with the build
      date), plus every month an input row replicated since the last successful build was or is in
      (new, updated and deleted rows: changed_months below), plus the table's first month and any
      before it (the spine grew backwards: the new days before the first day share its month, whose
      partition is overwritten whole). "Since" is this mart's own refresh mark (refresh_state.py: in
      Dagster it is built apart from the facts). Besides, every month whose per-employee totals no
      longer match its inputs' (kpi_months_out_of_step: a row moved out of a month, whose old version
      ReplacingMergeTree may have merged away before this run), and every month whose employees (id,
      code, name, department, hire date) are not dim_employees' (kpi_months_with_other_employees: an
      employee added, deleted, renamed or with a corrected hire date, which moves is_employed, touches
      every month; a login, which only moves last_login_at, none). And every month holding a score other
      than the CRM's weights give now (kpi_months_scored_otherwise: the setting kpi.overall_score_weights
      changed, came or went, macros/kpi_score_weights.sql). The rule for changed weights: rebuild the
      months whose stored scores they move (in practice all), found by recomputing each stored row's
      score from its own counts; no record of the old weights is needed. These three checks read
      every input whole, so they run only when the months named so far leave some month of the table
      out: after changes spread over the year (a backdated import) every month is rebuilt anyway.
      Without a recorded build (a bare `dbt run`) every month is rebuilt.
      Accounts opened count a customer's first opening (int_customers__latest_funnel), which depends on
      all of the customer's funnel_mofu rows, not on a changed row alone: correcting one row can move
      the first opening from another, unchanged row's month to its own (or back). So funnel_mofu's
      months are those of every opening recorded by any version of any row of a customer with a changed
      funnel_mofu row (in any version: a row moved to another customer changes both) or customers row:
      the old first opening (an unchanged row or an earlier version) and the new one are among them.
    * Full refresh: everything.
    overall_score: the CRM's formula with its own weights (system_settings kpi.overall_score_weights)
    when that setting is valid (its value is replicated: tables.py WAREHOUSE_SETTING_KEYS), else the
    documented default formula (macro overall_score); an invalid setting makes every run warn (the
    pre-hook kpi_score_weights_warning: `funnelhouse build` runs no tests) and fails the warning test
    kpi_score_weights_setting_is_valid (macros/kpi_score_weights.sql). -#}
{{ config(
    materialized='incremental',
    incremental_strategy='insert_overwrite',
    partition_by='toYYYYMM(kpi_date)',
    order_by='(kpi_date, employee_id)',
    on_schema_change='fail',
    pre_hook="{{ kpi_score_weights_warning() }}",
) }}

{#- The raw inputs of this mart and their day column (as in raw); funnel_mofu and customers (accounts
    opened) are found by customer below. -#}
{%- set dated_inputs = {
    'funnel_tofu': 'contact_date',
    'conversations': 'sent_at',
    'deposits': 'deposited_at',
    'withdrawals': 'requested_at',
    'employee_kpis': 'date',
} -%}

{#- in_window: a condition on a Date expression ({col}) selecting the days this run rebuilds. -#}
{%- set in_window = '1 = 1' -%}
{%- set requested = kpi_window() if is_incremental() else {'start': ''} -%}
{%- if requested.start %}
    {#- the months scored with other weights than the CRM's setting gives now (it changed; usually
        none); 0, no month, keeps the list non-empty -#}
    {%- set rescored = first_column_values(kpi_months_scored_otherwise(this)) | map('int') | list -%}
    {%- set in_window = "({col} between toStartOfMonth(toDate('" ~ requested.start ~ "')) and toLastDayOfMonth(toDate('"
        ~ requested.end ~ "')) or toYYYYMM({col}) in (" ~ (rescored + [0]) | join(', ')
        ~ ") or toYYYYMM({col}) <= (select toYYYYMM(min(kpi_date)) from "
        ~ this ~ ") or toYYYYMM({col}) >= (select toYYYYMM(max(kpi_date)) from " ~ this ~ "))" -%}
{%- elif is_incremental() %}
    {%- set since = last_refresh_mark(this.schema ~ '.' ~ this.identifier) -%}
    {%- if since is not none %}
        {%- set month_queries = ["select toYYYYMM(" ~ as_of_date() ~ " - " ~ var('kpi_lookback_days') ~ " + number) from numbers("
            ~ (var('kpi_lookback_days') + 1) ~ ")"] -%}
        {%- for table, column in dated_inputs.items() %}
            {%- do month_queries.append(changed_months(source('crm', table), column, since)) -%}
        {%- endfor %}
        {#- accounts opened: every opening of the customers whose first opening may have moved -#}
        {%- set mofu = source('crm', 'funnel_mofu') -%}
        {%- set changed_customers = 'select customer_id from ' ~ mofu ~ ' where id in ('
            ~ ids_replicated_since(mofu, since) ~ ') union all '
            ~ ids_replicated_since(source('crm', 'customers'), since) -%}
        {%- do month_queries.append('select distinct toYYYYMM(opened_at) from ' ~ mofu
            ~ ' where account_opened and opened_at is not null and customer_id in (' ~ changed_customers ~ ')') -%}
        {#- The months the changes name, and whether they are every month the mart holds (rows spread
            over the year, as a backdated import brings them): then the checks of the table's state
            below, which read every input whole, could add none and are not run. -#}
        {%- set found = run_query("select month, toUInt8(hasAll(groupArray(month) over (), (select "
            ~ "groupUniqArray(toUInt32(toYYYYMM(kpi_date))) from " ~ this ~ "))) from (select distinct "
            ~ "toUInt32(month) as month from (" ~ month_queries | join(' union all ') ~ ") as changes(month)) order by month") -%}
        {%- set months = found.columns[0].values() | map('int') | list -%}
        {%- if found.columns[1].values()[0] | int == 0 -%}
            {#- the months a row left (its old version may be merged away) and those showing other
                employees, and the months scored with other weights than the CRM's setting gives now -#}
            {%- set state_checks = [
                kpi_months_out_of_step(this), kpi_months_with_other_employees(this), kpi_months_scored_otherwise(this)
            ] -%}
            {%- set months = (months + first_column_values('select distinct toUInt32(month) from ('
                ~ state_checks | join(' union all ') ~ ') as checks(month)') | map('int') | list) | unique | sort -%}
        {%- endif -%}
        {%- set in_window = "(toYYYYMM({col}) in (" ~ months | join(', ') ~ ") or toYYYYMM({col}) <= (select "
            ~ "toYYYYMM(min(kpi_date)) from " ~ this ~ "))" -%}
    {%- endif %}
{%- endif %}

with spine as (
    select * from {{ ref('int_dates__spine') }}
    where {{ in_window.replace('{col}', 'date_day') }}
),

employees as (
    select * from {{ ref('dim_employees') }}
),

tofu as (
    select
        employee_id,
        contact_date as activity_date,
        count() as tofu_contacts,
        countIf(has_stayed_in_group) as tofu_retained
    from {{ ref('stg_crm__funnel_tofu') }}
    where {{ in_window.replace('{col}', 'contact_date') }}
    group by employee_id, contact_date
),

conversations as (
    select
        employee_id,
        sent_date as activity_date,
        countIf(is_quality_conversation) as quality_conversations,
        countIf(is_counter_question) as counter_questions
    from {{ ref('fct_conversations') }}
    where {{ in_window.replace('{col}', 'sent_date') }}
    group by employee_id, sent_date
),

-- A customer's account counts once, on the day of its first opening on any of its funnel_mofu rows,
-- for the employee of that row (int_customers__latest_funnel's rule, as mart_employee_performance
-- counts accounts_opened_*): a re-contact's later opening is not a new account. An opening without a
-- date has no day.
accounts as (
    select
        first_account_opened_employee_id as employee_id,
        {{ day_of('first_account_opened_at') }} as activity_date,
        count() as accounts_opened
    from {{ ref('int_customers__latest_funnel') }}
    where first_account_opened_at is not null
        and {{ in_window.replace('{col}', day_of('first_account_opened_at')) }}
    group by employee_id, activity_date
),

deposits as (
    select employee_id, deposit_date as activity_date, count() as deposits_count, sum(amount_usd) as deposit_amount
    from {{ ref('fct_deposits') }}
    where is_confirmed and {{ in_window.replace('{col}', 'deposit_date') }}
    group by employee_id, deposit_date
),

withdrawals as (
    select employee_id, requested_date as activity_date, sum(amount_usd) as withdrawal_amount
    from {{ ref('fct_withdrawals') }}
    where is_confirmed and {{ in_window.replace('{col}', 'requested_date') }}
    group by employee_id, requested_date
),

reported as (
    select * from {{ ref('stg_crm__employee_kpis') }}
    where {{ in_window.replace('{col}', 'kpi_date') }}
),

daily as (
    select
        spine.date_day as kpi_date,
        employees.employee_id as employee_id,
        employees.employee_code as employee_code,
        employees.employee_name as employee_name,
        employees.department as department,
        employees.hired_date as hired_date,
        -- Every employee keeps a row on every spine day (the spine's grain); the days before their hire
        -- are marked instead, so that a mean over days (the reports' leaderboard score) can leave them out.
        -- An unknown hire date counts every day.
        toUInt8(ifNull(spine.date_day >= employees.hired_date, true)) as is_employed,
        toInt64(ifNull(tofu.tofu_contacts, 0)) as tofu_contacts,
        toInt64(ifNull(tofu.tofu_retained, 0)) as tofu_retained,
        toInt64(ifNull(conversations.quality_conversations, 0)) as mofu_quality_conversations,
        toInt64(ifNull(conversations.counter_questions, 0)) as mofu_counter_question_count,
        toInt64(ifNull(accounts.accounts_opened, 0)) as mofu_accounts_opened,
        toInt64(ifNull(deposits.deposits_count, 0)) as bofu_deposits_count,
        toDecimal128(ifNull(deposits.deposit_amount, 0), 2) as bofu_deposit_amount,
        toDecimal128(ifNull(withdrawals.withdrawal_amount, 0), 2) as bofu_withdrawal_amount
    from spine
    cross join employees
    left join tofu on employees.employee_id = tofu.employee_id and spine.date_day = tofu.activity_date
    left join conversations
        on employees.employee_id = conversations.employee_id and spine.date_day = conversations.activity_date
    left join accounts on employees.employee_id = accounts.employee_id and spine.date_day = accounts.activity_date
    left join deposits on employees.employee_id = deposits.employee_id and spine.date_day = deposits.activity_date
    left join withdrawals
        on employees.employee_id = withdrawals.employee_id and spine.date_day = withdrawals.activity_date
),

scored as (
    select
        *,
        {{ safe_ratio('tofu_retained', 'tofu_contacts') }} as tofu_retention_rate,
        bofu_deposit_amount - bofu_withdrawal_amount as bofu_net_deposit,
        {{ capped_ratio('bofu_withdrawal_amount', 'bofu_deposit_amount') }} as bofu_withdrawal_rate
    from daily
),

-- The CRM's weights of the overall score (one row; macros/kpi_score_weights.sql).
weights as (
    {{ kpi_score_weights() }}
),

weighted as (
    select
        scored.*,
        {{ kpi_overall_score(
            'weights',
            contacts='scored.tofu_contacts',
            retained='scored.tofu_retained',
            retention_rate='scored.tofu_retention_rate',
            quality_conversations='scored.mofu_quality_conversations',
            counter_questions='scored.mofu_counter_question_count',
            accounts_opened='scored.mofu_accounts_opened',
            deposits_count='scored.bofu_deposits_count',
            net_deposit='scored.bofu_net_deposit',
        ) }} as overall_score
    from scored
    cross join weights
),

final as (
    select
        scored.*,
        reported.employee_kpi_id is not null as has_reported_kpis,
        reported.tofu_contacts as reported_tofu_contacts,
        reported.mofu_quality_conversations as reported_quality_conversations,
        reported.mofu_accounts_opened as reported_accounts_opened,
        reported.bofu_deposits_count as reported_deposits_count,
        reported.bofu_net_deposit as reported_net_deposit,
        reported.overall_score as reported_overall_score,
        reported.tofu_retained as reported_tofu_retained,
        reported.mofu_counter_question_count as reported_counter_question_count,
        reported.bofu_deposit_amount as reported_deposit_amount,
        reported.bofu_withdrawal_amount as reported_withdrawal_amount,
        {#- Every counted or summed metric; the rates follow from them (and the operational table keeps
            them as percentages), the score is the CRM's own formula. -#}
        if(
            reported.employee_kpi_id is null,
            null,
            ifNull(reported.tofu_contacts, 0) = scored.tofu_contacts
            and ifNull(reported.tofu_retained, 0) = scored.tofu_retained
            and ifNull(reported.mofu_quality_conversations, 0) = scored.mofu_quality_conversations
            and ifNull(reported.mofu_counter_question_count, 0) = scored.mofu_counter_question_count
            and ifNull(reported.mofu_accounts_opened, 0) = scored.mofu_accounts_opened
            and ifNull(reported.bofu_deposits_count, 0) = scored.bofu_deposits_count
            and ifNull(reported.bofu_deposit_amount, 0) = scored.bofu_deposit_amount
            and ifNull(reported.bofu_withdrawal_amount, 0) = scored.bofu_withdrawal_amount
            and ifNull(reported.bofu_net_deposit, 0) = scored.bofu_net_deposit
        ) as is_matching_reported
    from weighted as scored
    left join reported on scored.employee_id = reported.employee_id and scored.kpi_date = reported.kpi_date
)

select * from final
