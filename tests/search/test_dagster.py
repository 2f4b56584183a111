import dagster as dg
import psycopg
import pytest

from orchestration.defs.search.assets import conversations_search_index
from orchestration.defs.search.checks import counts_per_day_match
from orchestration.defs.search.definitions import defs
from orchestration.defs.search.resources import SearchResource
from orchestration.defs.search.sensors import search_changes_sensor
from tests.search.crm import insert_conversation, seed_people, seed_samples


@pytest.fixture
def search_resource(pg_dsn, search_engine, search_alias, monkeypatch):
    monkeypatch.setenv("FUNNELHOUSE_SEARCH_URL", search_engine["url"])
    monkeypatch.setenv("FUNNELHOUSE_SEARCH_FLAVOUR", search_engine["flavour"])
    return SearchResource(alias=search_alias, lag_seconds=0)


def _tick(resource):
    with dg.build_sensor_context(resources={"search_index": resource}) as context:
        return search_changes_sensor(context)


def _materialize(resource):
    result = dg.materialize(
        [conversations_search_index],
        resources={"search_index": resource},
        selection=[conversations_search_index],
    )
    assert result.success
    return result.asset_materializations_for_node("search__conversations_index")[0].metadata


def test_definitions_load():
    dg.Definitions.validate_loadable(defs)
    assert search_changes_sensor.minimum_interval_seconds == 300


def test_sensor_asset_and_check(pg_dsn, search_client, search_resource):
    with psycopg.connect(pg_dsn) as conn:
        people = seed_people(conn)
        seed_samples(conn, people)
    assert isinstance(_tick(search_resource), dg.RunRequest)  # never built yet

    first = _materialize(search_resource)
    assert first["mode"].value == "full rebuild" and first["documents"].value == 8
    assert first["lag_seconds"].value == 0.0  # up to date, however old the last change is
    assert isinstance(_tick(search_resource), dg.SkipReason)

    with psycopg.connect(pg_dsn) as conn:
        insert_conversation(conn, people, "sensor path")
    request = _tick(search_resource)
    assert isinstance(request, dg.RunRequest)
    assert _tick(search_resource).run_key == request.run_key  # same pending state, same run

    second = _materialize(search_resource)
    assert second["mode"].value == "incremental" and second["indexed"].value == 1
    search_client.refresh(search_resource.alias)
    check = counts_per_day_match(search_index=search_resource)
    assert check.passed, check.metadata

    with psycopg.connect(pg_dsn) as conn:  # an index that silently lost documents fails the check
        conn.execute("SET funnelhouse.moving_rows = 'on'")  # delete without a tombstone
        conn.execute("DELETE FROM conversations WHERE content = 'sensor path'")
    assert not counts_per_day_match(search_index=search_resource).passed
