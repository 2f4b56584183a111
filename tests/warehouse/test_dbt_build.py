"""`dbt build` (models, contracts, data tests, unit tests) passes on the hand-made CRM."""

import os


def test_dbt_build_passes(warehouse):
    assert warehouse.dbt_exit_code == 0, warehouse.dbt_output[-5000:]
    assert "ERROR=0" in warehouse.dbt_output


def test_every_mart_has_rows(warehouse):
    from orchestration.defs.warehouse.build import MARTS

    client = warehouse.client()
    for mart in MARTS:
        count = client.query(f"select count() from `{warehouse.schema('marts')}`.`{mart}`").result_rows[0][0]
        assert count > 0, mart


def test_the_warehouse_settings_stay_with_the_tests_that_use_it(request):
    """Built (here, if no test before needed it) but not used by this test: none of its settings are
    left in the environment, for this or any later test of the process."""
    shared = request.getfixturevalue("warehouse")  # in the body: not one of the test's own fixtures
    its_own = {
        "FUNNELHOUSE_PG_DSN": shared.pg_dsn,
        "FUNNELHOUSE_RAW_DATABASE": shared.raw_database,
        "FUNNELHOUSE_SCHEMA_PREFIX": shared.schema_prefix,
    }
    left = [name for name, value in its_own.items() if os.environ.get(name) == value]
    assert not left, f"the shared warehouse's settings outlived the tests using it: {left}"
