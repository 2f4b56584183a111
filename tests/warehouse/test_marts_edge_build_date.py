"""A rebuild as of an earlier day (var as_of_date) on the hand-made CRM: rows stamped after that day
decide nothing, and no day count is negative (the rule in dbt_project/macros/as_of_date.sql). The
dbt unit tests check each column's rule; this checks the chain of models on real replicated data."""

import datetime as dt

from ingestion.replication.connections import clickhouse_client
from orchestration.defs.warehouse.build import marts_schema, run_dbt
from orchestration.defs.warehouse.dbt_environment import dbt_env
from tests.fixtures.clock import days_ago

AS_OF_DAYS_AGO = 30  # fixture_crm.sql: Zhang entered Action 30 days ago and Subscribe 25 days ago


def test_a_rebuild_as_of_an_earlier_day_sees_the_crm_as_it_was_then(built_warehouse):
    as_of = days_ago(AS_OF_DAYS_AGO)
    output: list[str] = []
    selected = "fct_stage_transitions+ int_customers__money_summary+ int_customers__conversation_summary+"
    # the build date through dbt's environment: as --vars it would re-parse the project, twice (here
    # and in the next test's dbt)
    environment = {**dbt_env(), "FUNNELHOUSE_AS_OF_DATE": as_of.isoformat()}
    assert run_dbt(["run", "--select", selected], log=output.append, env=environment) == 0, "\n".join(
        output[-40:]
    )

    client = clickhouse_client()
    marts, core = marts_schema(), marts_schema().removesuffix("marts") + "core"
    [(last_entry, negative_stays, current_of_zhang)] = client.query(
        f"select max(entered_date), countIf(days_in_stage < 0), anyIf((stage, days_in_stage), customer_id = 1 and is_current)"
        f" from `{core}`.fct_stage_transitions"
    ).result_rows
    assert last_entry <= as_of and negative_stays == 0
    assert current_of_zhang == ("Action", 0)  # Subscribe, 25 days ago, had not been entered yet

    rows = client.query(
        "select customer_code, days_in_current_stage, days_since_last_contact, first_deposit_date,"
        f" days_to_first_deposit from `{marts}`.mart_customer_overview order by customer_code"
    ).result_rows
    assert rows == [
        # in Subscribe (the CRM's stage) only after the build date; last contact and first deposit after it
        ("CUST_001", None, None, None, None),
        # in Attention only after the build date; contacted 10 days before it
        ("CUST_002", None, 10, None, None),
        # in Growth for 60 - 30 days; contacted yesterday, after the build date; deposited 80 days ago,
        # 20 days after first contact
        ("CUST_003", AS_OF_DAYS_AGO, None, as_of - dt.timedelta(days=50), 20),
        # created 5 days ago, after the build date
        ("CUST_004", None, None, None, None),
    ]
    [(last_funnel_day,)] = client.query(
        f"select max(entry_date) from `{marts}`.mart_funnel_daily"
    ).result_rows
    assert last_funnel_day <= as_of
