"""The search sensor while the engine does not answer: one run when the outage starts (its failure is
the alert), then skips that say since when, and runs again only after a doubling back-off; the tick
that finds the engine answering again syncs what is pending.

"Down" is an address nothing listens at (port 1), so only the last test needs a running engine.
"""

import json
import time
import uuid

import dagster as dg
import psycopg
import pytest

from ingestion.search import rebuild
from orchestration.defs.search.assets import search_sync_job
from orchestration.defs.search.resources import SearchResource
from orchestration.defs.search.sensors import REASON_TAG, search_changes_sensor
from tests.search.crm import insert_conversation, seed_people
from tests.search.helpers import NO_LAG

# The user and password must never reach a skip reason, a run tag or the cursor (all shown in the UI).
DOWN_URL = "http://funnel:s3cret-pw@127.0.0.1:1"
DOWN_ADDRESS = "http://127.0.0.1:1"
MINUTE = 60
LONGEST_BACKOFF = 3 * 3600  # the cap the sensor's docstring promises: alerted at least every 3 h


def _tick(resource: SearchResource, instance: dg.DagsterInstance, cursor: str | None = None):
    """The tick's result and the cursor it leaves."""
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"search_index": resource}
    ) as context:
        return search_changes_sensor(context), context.cursor


def _outage(since_ago: float, last_request_ago: float, requests: int, address: str = DOWN_ADDRESS) -> str:
    """The cursor an outage that began ``since_ago`` seconds ago would have left."""
    now = time.time()
    return json.dumps(
        {
            "address": address,
            "since": now - since_ago,
            "last_request": now - last_request_ago,
            "requests": requests,
        }
    )


def _no_credentials(*texts: str | None) -> None:
    for text in texts:
        assert "s3cret-pw" not in (text or "") and "funnel:" not in (text or ""), text


@pytest.fixture
def engine_down(pg_dsn, monkeypatch):
    """A change the index has not seen (the old sensor requested a run for it every tick), and an
    engine configured where nothing answers."""
    with psycopg.connect(pg_dsn) as conn:
        insert_conversation(conn, seed_people(conn), "written while the engine is down")
    monkeypatch.setenv("FUNNELHOUSE_SEARCH_URL", DOWN_URL)
    monkeypatch.setenv("FUNNELHOUSE_SEARCH_FLAVOUR", "elasticsearch")
    return SearchResource(alias="conversations_engine_down", lag_seconds=0)


def test_an_outage_requests_one_run_then_skips_saying_since_when(engine_down):
    instance = dg.DagsterInstance.ephemeral()
    first, cursor = _tick(engine_down, instance)
    assert isinstance(first, dg.RunRequest), first
    assert f"search engine at {DOWN_ADDRESS} not answering since" in first.tags[REASON_TAG]
    assert "run 1 of the outage" in first.tags[REASON_TAG]
    outage = json.loads(cursor)
    assert outage["address"] == DOWN_ADDRESS and outage["requests"] == 1
    assert abs(outage["since"] - time.time()) < MINUTE and outage["last_request"] == outage["since"]
    _no_credentials(*first.tags.values(), cursor)

    # the run failed (and was alerted); the next tick, one interval later, asks for no other
    instance.add_run(
        dg.DagsterRun(
            job_name=search_sync_job.name, run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.FAILURE
        )
    )
    second, kept = _tick(engine_down, instance, cursor)
    assert isinstance(second, dg.SkipReason), second
    assert kept == cursor
    message = second.skip_message
    assert message.startswith(f"search engine at {DOWN_ADDRESS} has not answered for 0 min"), message
    assert "1 sync run(s) requested for the outage" in message and "the next in 10 min" in message
    _no_credentials(message)

    # hours into the night: still one skip per tick, saying how long
    night, _ = _tick(
        engine_down, instance, _outage(since_ago=125 * MINUTE, last_request_ago=60 * MINUTE, requests=5)
    )
    assert isinstance(night, dg.SkipReason), night
    assert (
        "has not answered for 2 h 05 min" in night.skip_message
        and "the next in 1 h 40 min" in night.skip_message
    )


@pytest.mark.parametrize(
    ("requests", "backoff"),
    [(1, 10 * MINUTE), (3, 40 * MINUTE), (20, LONGEST_BACKOFF)],
    ids=["after the first run", "doubled", "at most the cap"],
)
def test_runs_during_an_outage_wait_a_doubling_back_off(engine_down, requests, backoff):
    instance = dg.DagsterInstance.ephemeral()
    early, _ = _tick(engine_down, instance, _outage(5 * 3600, backoff - MINUTE, requests))
    assert isinstance(early, dg.SkipReason), early
    due, cursor = _tick(engine_down, instance, _outage(5 * 3600, backoff + MINUTE, requests))
    assert isinstance(due, dg.RunRequest), due
    assert f"run {requests + 1} of the outage" in due.tags[REASON_TAG]
    outage = json.loads(cursor)
    assert outage["requests"] == requests + 1 and abs(outage["last_request"] - time.time()) < MINUTE
    assert abs(time.time() - outage["since"] - 5 * 3600) < MINUTE  # still the same outage


def test_a_cursor_of_another_address_or_unreadable_starts_a_new_outage(engine_down):
    instance = dg.DagsterInstance.ephemeral()
    for cursor in [_outage(3600, MINUTE, 4, address="http://old-search:9200"), "not json"]:
        request, left = _tick(engine_down, instance, cursor)
        assert isinstance(request, dg.RunRequest) and "run 1 of the outage" in request.tags[REASON_TAG]
        assert json.loads(left)["address"] == DOWN_ADDRESS


@pytest.mark.parametrize("search_engine", ["elasticsearch"], indirect=True)
def test_when_the_engine_answers_again_pending_changes_are_synced_at_once(
    pg_dsn, search_engine, search_client, search_alias, monkeypatch
):
    monkeypatch.setenv("FUNNELHOUSE_SEARCH_FLAVOUR", search_engine["flavour"])
    resource = SearchResource(alias=search_alias, lag_seconds=0)
    with psycopg.connect(pg_dsn) as conn:
        people = seed_people(conn)
        insert_conversation(conn, people, "indexed before the outage")
    rebuild.full_rebuild(pg_dsn, search_client, search_alias, lag=NO_LAG)
    with psycopg.connect(pg_dsn) as conn:
        insert_conversation(conn, people, "written during the outage")
    instance = dg.DagsterInstance.ephemeral()

    monkeypatch.setenv("FUNNELHOUSE_SEARCH_URL", DOWN_URL)
    first, cursor = _tick(resource, instance)
    assert isinstance(first, dg.RunRequest) and "not answering" in first.tags[REASON_TAG]
    assert isinstance(_tick(resource, instance, cursor)[0], dg.SkipReason)

    # back within the back-off: no waiting for it to run out, and the outage is over
    monkeypatch.setenv("FUNNELHOUSE_SEARCH_URL", search_engine["url"])
    back, left = _tick(resource, instance, cursor)
    assert isinstance(back, dg.RunRequest), back
    assert back.tags[REASON_TAG] == "pending changes"
    assert left is None
