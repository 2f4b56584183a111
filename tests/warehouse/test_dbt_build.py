"""`dbt build` (models, contracts, data tests, unit tests) passes on the hand-made CRM."""


def test_dbt_build_passes(warehouse):
    assert warehouse.dbt_exit_code == 0, warehouse.dbt_output[-5000:]
    assert "ERROR=0" in warehouse.dbt_output


def test_every_mart_has_rows(warehouse):
    from orchestration.defs.warehouse.build import MARTS

    client = warehouse.client()
    for mart in MARTS:
        count = client.query(f"select count() from `{warehouse.schema('marts')}`.`{mart}`").result_rows[0][0]
        assert count > 0, mart
