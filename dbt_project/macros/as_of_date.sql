{#- "Today" for every day count and period of the models: the build date as a UTC day, or var
    as_of_date (reproducible rebuilds, unit tests), or FUNNELHOUSE_AS_OF_DATE in dbt's environment.
    Every dbt command funnelhouse starts (the CLI's, Dagster's dbt steps) has FUNNELHOUSE_AS_OF_DATE
    pinned to the UTC day its build started on unless given (build_date.pinned_build_date, in
    orchestration/defs/warehouse): with the now('UTC') below, evaluated by each model as it runs, a
    build crossing midnight UTC would build some models, and test them, as of the next day.
    The fallback is for dbt started by hand.
    The environment is read at execution time only, as kpi_window reads its dates: --vars, and
    environment variables read while parsing, make dbt re-parse the whole project (several seconds).
    UTC, not the server's date: the CRM's
    timestamps are UTC wall-clock times and the KPI days are UTC days, so on a server in another
    time zone the server's date would end the date spine a day early or late, and put "this month" and the
    7/30-day windows off by the offset.

    Rows stamped after the build date. A row whose day is after the build date (a rebuild as of an
    earlier day; a CRM server whose clock runs ahead past midnight) has not happened yet as of the
    build date, so every model shows the warehouse as it was on that day as far as the data allows:
    * an event stamped after it (journey row, deposit, withdrawal, message, account opening, first
      contact) is in no window, period or total, does not end, start or decide a stage, and is no first
      deposit; it counts once its day has come (by_build_date below, periods.sql);
    * the replicated records keep every row (dim_*, fct_conversations/deposits/withdrawals: they are
      the CRM's data, not measures relative to the build date), and so do the columns the seed views
      show (mart_customer_overview / mart_employee_performance reconcile with them, and the CRM keeps
      only the current state of a customer: current_stage, last_contact_at, its funnel rows);
    * a day count up to the build date from a stamp after it (days in the current stage, days since the
      last contact) is NULL, not negative: the state before that stamp is not kept; a same-day stamp
      ahead of the clock counts 0 days.
    Day counts between two events are never negative either: see the columns' descriptions. With the
    build date today and no row stamped after it, every result is as without this rule. -#}
{% macro as_of_date() -%}
    {%- set day = var('as_of_date', '') or (env_var('FUNNELHOUSE_AS_OF_DATE', '') if execute else '') -%}
    {%- if day -%} toDate('{{ day }}') {%- else -%} toDate(now('UTC')) {%- endif -%}
{%- endmacro %}

{#- Condition: the Date expression `date_column` is on or before the build date (has happened as of it). -#}
{% macro by_build_date(date_column) -%}
    ({{ date_column }} <= {{ as_of_date() }})
{%- endmacro %}

{#- Calendar days from the Date expression `date_column` to the build date; NULL when it is after the
    build date (a stamp that has not happened yet as of the build date), never negative. -#}
{% macro days_to_build_date(date_column) -%}
    if({{ by_build_date(date_column) }}, toInt32(dateDiff('day', {{ date_column }}, {{ as_of_date() }})), null)
{%- endmacro %}

{#- Calendar days from the Date expression `from_date` to `to_date`, 0 when `to_date` is the earlier one
    (a first deposit dated before the first recorded contact: the CRM's dates disagree, the deposit did
    not come before the customer was contacted); NULL when either is NULL. -#}
{% macro days_between(from_date, to_date) -%}
    toInt32(if(dateDiff('day', {{ from_date }}, {{ to_date }}) < 0, 0, dateDiff('day', {{ from_date }}, {{ to_date }})))
{%- endmacro %}
