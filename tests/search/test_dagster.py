import os
import subprocess
import sys
import uuid

import dagster as dg
import psycopg
import pytest

from devstack import state
from ingestion.search import mapping
from orchestration import environment
from orchestration.defs.search import sensors
from orchestration.defs.search.assets import conversations_search_index, search_rebuild_job, search_sync_job
from orchestration.defs.search.checks import counts_per_day_match
from orchestration.defs.search.definitions import defs
from orchestration.defs.search.resources import SearchResource
from orchestration.defs.search.schedules import nightly_search_rebuild
from orchestration.defs.search.sensors import REASON_TAG, search_changes_sensor
from tests.search.crm import insert_conversation, seed_people, seed_samples
from tests.search.test_quarantine import refusing_index_body
from tests.search.test_sync_truncate import _indexed_in_two_months
from tests.warehouse.test_partition_detach import _take_out


@pytest.fixture
def search_resource(pg_dsn, search_engine, search_alias, monkeypatch):
    monkeypatch.setenv("FUNNELHOUSE_SEARCH_URL", search_engine["url"])
    monkeypatch.setenv("FUNNELHOUSE_SEARCH_FLAVOUR", search_engine["flavour"])
    return SearchResource(alias=search_alias, lag_seconds=0)


def _tick(resource, instance=None):
    instance = instance or dg.DagsterInstance.ephemeral()
    with dg.build_sensor_context(instance=instance, resources={"search_index": resource}) as context:
        return search_changes_sensor(context)


def _add_run(instance, job, status, tags=None):
    """A run record as the daemon would have made it (its status and tags are all the sensor looks at)."""
    return instance.add_run(
        dg.DagsterRun(job_name=job.name, run_id=str(uuid.uuid4()), status=status, tags=tags or {})
    )


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


def test_the_index_is_downstream_of_the_tables_it_reads():
    """The lineage runs landing file -> ``crm/<table>`` -> search index for every table a document is
    read from, in the whole code location (not only as keys the search domain names)."""
    from orchestration.definitions import defs as code_location

    graph = code_location.resolve_asset_graph()
    parents = graph.get(conversations_search_index.key).parent_keys
    expected = {dg.AssetKey(["crm", table]) for table in ("conversations", "customers", "employees")}
    assert parents == expected
    assert all(graph.get(parent).is_materializable for parent in parents)  # the ingestion assets


def test_sensor_asset_and_check(pg_dsn, search_client, search_resource):
    with psycopg.connect(pg_dsn) as conn:
        people = seed_people(conn)
        seed_samples(conn, people)
    instance = dg.DagsterInstance.ephemeral()
    request = _tick(search_resource, instance)  # never built yet
    assert isinstance(request, dg.RunRequest) and "does not exist" in request.tags[REASON_TAG]

    first = _materialize(search_resource)
    assert first["mode"].value == "full rebuild" and first["documents"].value == 8
    assert first["lag_seconds"].value == 0.0  # up to date, however old the last change is
    assert first["quarantined_documents"].value == 0
    assert isinstance(_tick(search_resource, instance), dg.SkipReason)

    with psycopg.connect(pg_dsn) as conn:
        insert_conversation(conn, people, "sensor path")
    request = _tick(search_resource, instance)
    assert isinstance(request, dg.RunRequest) and request.run_key is None
    assert request.tags[REASON_TAG] == "pending changes"
    # while the requested run is in flight, ticks that see the same changes add nothing
    run = _add_run(instance, search_sync_job, dg.DagsterRunStatus.STARTED)
    waiting = _tick(search_resource, instance)
    assert isinstance(waiting, dg.SkipReason) and run.run_id[:8] in waiting.skip_message
    # the run failed (engine down, bulk refused): a later tick retries the same pending changes
    instance.report_run_failed(run)
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
    _add_run(instance, search_rebuild_job, dg.DagsterRunStatus.STARTED)  # a rebuild does not hold it back
    assert isinstance(_tick(search_resource, instance), dg.RunRequest)

    second = _materialize(search_resource)
    assert second["mode"].value == "incremental" and second["indexed"].value == 1
    search_client.refresh(search_resource.alias)
    check = counts_per_day_match(search_index=search_resource)
    assert check.passed, check.metadata

    with psycopg.connect(pg_dsn) as conn:  # a deletion the sync has not applied yet is pending, no mismatch
        conn.execute("DELETE FROM conversations WHERE id = (SELECT min(id) FROM conversations)")
    pending = counts_per_day_match(search_index=search_resource)
    assert pending.passed, pending.metadata
    assert pending.metadata["days_with_pending_changes"].value
    assert _materialize(search_resource)["deleted"].value == 1
    search_client.refresh(search_resource.alias)

    with psycopg.connect(pg_dsn) as conn:  # an index that silently lost documents fails the check
        conn.execute("SET funnelhouse.moving_rows = 'on'")  # delete without a tombstone
        conn.execute("DELETE FROM conversations WHERE content = 'sensor path'")
    assert not counts_per_day_match(search_index=search_resource).passed


def test_sensor_requests_a_rebuild_when_the_mapping_version_changes(
    pg_dsn, search_client, search_resource, monkeypatch
):
    with psycopg.connect(pg_dsn) as conn:
        seed_samples(conn, seed_people(conn))
    _materialize(search_resource)
    assert isinstance(_tick(search_resource), dg.SkipReason)
    # a deploy changed the mapping; PostgreSQL did not change
    monkeypatch.setattr(mapping, "MAPPING_VERSION", mapping.MAPPING_VERSION + 1)
    request = _tick(search_resource)
    assert isinstance(request, dg.RunRequest) and "mapping version" in request.tags[REASON_TAG]
    rebuilt = _materialize(search_resource)
    assert rebuilt["mode"].value == "full rebuild" and rebuilt["documents"].value == 8
    assert f"_v{mapping.MAPPING_VERSION}_" in rebuilt["index"].value
    assert isinstance(_tick(search_resource), dg.SkipReason)


def _evaluate_schedule(instance=None):
    """The nightly rebuild's tick (it looks for runs in flight: an instance a context can refer to)."""
    if instance is None:
        with dg.instance_for_test() as instance:
            return _evaluate_schedule(instance)
    with dg.build_schedule_context(instance=instance) as context:
        return nightly_search_rebuild.evaluate_tick(context)


def test_without_a_search_engine_sensor_and_schedule_skip(tmp_path, monkeypatch):
    monkeypatch.delenv("FUNNELHOUSE_SEARCH_URL", raising=False)
    monkeypatch.setenv("FUNNELHOUSE_HOME", str(tmp_path))  # a stack started with `--search none`
    never_started = _tick(SearchResource())
    assert isinstance(never_started, dg.SkipReason)
    assert "no search engine" in never_started.skip_message
    assert "run `funnelhouse up` (or set FUNNELHOUSE_SEARCH_URL" in never_started.skip_message
    nightly = _evaluate_schedule()
    assert not nightly.run_requests and nightly.skip_message == never_started.skip_message

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    state.record_service("search", {"pid": gone.pid, "url": "http://127.0.0.1:1", "flavour": "opensearch"})
    stale = _tick(SearchResource())  # recorded, but its process is gone (machine restarted, killed)
    assert isinstance(stale, dg.SkipReason) and f"(pid {gone.pid}) has stopped" in stale.skip_message

    monkeypatch.setenv("FUNNELHOUSE_SEARCH_URL", "http://127.0.0.1:1")  # a configured server: runs go ahead
    (request,) = _evaluate_schedule().run_requests
    assert request.run_config == {}  # the job's own config: a full rebuild
    assert search_rebuild_job.config["ops"]["search__conversations_index"]["config"]["full_rebuild"]


def test_the_sensor_and_schedule_skip_for_what_the_search_settings_refuse(tmp_path, monkeypatch):
    """The ticks skip with the reason a run would fail with (``environment.search_settings``, which the
    resource connects with), not advice of their own: production never uses an embedded engine, and
    a flavour that is no engine is refused before any run."""
    monkeypatch.setenv("FUNNELHOUSE_HOME", str(tmp_path))
    monkeypatch.setenv("FUNNELHOUSE_ENV", "prod")
    monkeypatch.delenv("FUNNELHOUSE_SEARCH_URL", raising=False)
    with pytest.raises(environment.ServiceNotRunning) as refused:
        environment.search_settings()
    assert "production never uses an embedded search" in str(refused.value)
    for skipped in (_tick(SearchResource()), _evaluate_schedule()):
        assert not getattr(skipped, "run_requests", None)
        assert skipped.skip_message == f"no search engine: {refused.value}"

    monkeypatch.setenv("FUNNELHOUSE_SEARCH_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("FUNNELHOUSE_SEARCH_FLAVOUR", "solr")
    schedule_tick = _evaluate_schedule()
    assert not schedule_tick.run_requests
    assert "FUNNELHOUSE_SEARCH_FLAVOUR must be elasticsearch or opensearch" in schedule_tick.skip_message


def _sensor_interval_in_a_new_process(value: str) -> subprocess.CompletedProcess:
    """The search definitions imported as a code location imports them, the interval set to ``value``."""
    probe = (
        "from orchestration.defs.search.definitions import defs; "
        "from orchestration.defs.search.sensors import search_changes_sensor; "
        "print('interval', search_changes_sensor.minimum_interval_seconds)"
    )
    env = {**os.environ, "FUNNELHOUSE_SEARCH_SENSOR_INTERVAL": value}
    return subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)


def test_a_sensor_interval_that_is_no_number_of_seconds_is_named_and_the_definitions_still_load():
    """Dagster takes the interval at load: a bad value must not stop the whole code location (ingestion,
    reports, backups), so the sensor looks every 5 minutes and the load warns, naming the variable."""
    for value in ("5m", "0", "-60"):
        loaded = _sensor_interval_in_a_new_process(value)
        assert loaded.returncode == 0, loaded.stderr[-2000:]
        assert loaded.stdout.split()[-2:] == ["interval", "300"]
        assert (
            f"FUNNELHOUSE_SEARCH_SENSOR_INTERVAL must be a number of seconds (1 or more), not '{value}'"
            in (loaded.stderr)
        )
    kept = _sensor_interval_in_a_new_process("90")
    assert kept.stdout.split()[-2:] == ["interval", "90"], kept.stderr[-2000:]


@pytest.mark.parametrize("search_engine", ["elasticsearch"], indirect=True)
def test_a_conversation_moved_to_another_day_is_pending_on_both_days(pg_dsn, search_client, search_resource):
    """A changed ``sent_at`` moves a conversation to another day (and month partition): until the
    next sync the index still counts it on the old day, which PostgreSQL no longer does."""
    with psycopg.connect(pg_dsn) as conn:
        ids = seed_samples(conn, seed_people(conn))
    _materialize(search_resource)
    with psycopg.connect(pg_dsn) as conn:  # from 2025-11-01 to 2025-12-15
        conn.execute("UPDATE conversations SET sent_at = '2025-12-15 10:00' WHERE id = %s", (ids[0],))
    pending = counts_per_day_match(search_index=search_resource)
    assert pending.passed, pending.metadata
    assert pending.metadata["days_with_pending_changes"].value == ["2025-11-01", "2025-12-15"]

    _materialize(search_resource)
    search_client.refresh(search_resource.alias)
    synced = counts_per_day_match(search_index=search_resource)
    assert synced.passed and not synced.metadata["days_with_pending_changes"].value, synced.metadata


@pytest.mark.parametrize("search_engine", ["elasticsearch"], indirect=True)
def test_a_rebuild_in_flight_is_not_requested_again(pg_dsn, search_client, search_resource, monkeypatch):
    """A run requested for a rebuild while the nightly rebuild runs could only fail (the rebuild
    lock is held) and be retried: the tick waits for the rebuild instead."""
    with psycopg.connect(pg_dsn) as conn:
        seed_samples(conn, seed_people(conn))
    _materialize(search_resource)
    monkeypatch.setattr(mapping, "MAPPING_VERSION", mapping.MAPPING_VERSION + 1)  # a deploy
    instance = dg.DagsterInstance.ephemeral()
    nightly = _add_run(instance, search_rebuild_job, dg.DagsterRunStatus.STARTED)
    waiting = _tick(search_resource, instance)
    assert isinstance(waiting, dg.SkipReason) and nightly.run_id[:8] in waiting.skip_message
    instance.report_run_failed(nightly)
    request = _tick(search_resource, instance)
    assert isinstance(request, dg.RunRequest) and "mapping version" in request.tags[REASON_TAG]


@pytest.mark.parametrize("search_engine", ["elasticsearch"], indirect=True)
def test_a_rebuild_failing_its_check_is_not_retried_and_the_sensor_backs_off(
    pg_dsn, search_client, search_resource, monkeypatch
):
    """A rebuild refused its verification fails the same way again: the run does not retry it (two
    more full loads), and the sensor does not ask for another at every tick."""
    with psycopg.connect(pg_dsn) as conn:
        seed_samples(conn, seed_people(conn))
    _materialize(search_resource)
    # a deploy of a mapping that refuses nearly every document
    monkeypatch.setattr(mapping, "MAPPING_VERSION", mapping.MAPPING_VERSION + 1)
    monkeypatch.setattr(mapping, "index_body", refusing_index_body(mapping.index_body))
    instance = dg.DagsterInstance.ephemeral()
    request = _tick(search_resource, instance)
    assert isinstance(request, dg.RunRequest) and "mapping version" in request.tags[REASON_TAG]

    result = dg.materialize(
        [conversations_search_index],
        resources={"search_index": search_resource},
        instance=instance,
        raise_on_error=False,
    )
    assert not result.success
    kinds = [event.event_type for event in result.all_events]
    assert dg.DagsterEventType.STEP_UP_FOR_RETRY not in kinds
    assert kinds.count(dg.DagsterEventType.STEP_FAILURE) == 1

    # The sensor's run of it failed: the next ticks skip until the back-off has passed.
    run = _add_run(instance, search_sync_job, dg.DagsterRunStatus.STARTED, tags=request.tags)
    instance.report_run_failed(run)
    waiting = _tick(search_resource, instance)
    assert isinstance(waiting, dg.SkipReason), waiting
    assert f"1 rebuild run(s) failed in a row, the last {run.run_id[:8]}" in waiting.skip_message
    assert "the next in 10 min" in waiting.skip_message
    monkeypatch.setattr(sensors, "SENSOR_INTERVAL_S", 0)  # (no back-off left)
    again = _tick(search_resource, instance)
    assert isinstance(again, dg.RunRequest) and "mapping version" in again.tags[REASON_TAG]


@pytest.mark.parametrize("search_engine", ["elasticsearch"], indirect=True)
def test_during_the_rebuild_back_off_pending_changes_get_a_sync_only_run(
    pg_dsn, search_client, search_resource, monkeypatch
):
    """While rebuilds keep failing and the sensor waits (up to 3 h) before the next, the live index
    must still lose deleted conversations: a run that syncs it, without a rebuild to fail again."""
    with psycopg.connect(pg_dsn) as conn:
        seed_samples(conn, seed_people(conn))
    live = _materialize(search_resource)["index"].value
    monkeypatch.setattr(mapping, "MAPPING_VERSION", mapping.MAPPING_VERSION + 1)  # a deploy
    instance = dg.DagsterInstance.ephemeral()
    rebuild_tags = {"search_alias": search_resource.alias, REASON_TAG: f"{sensors.REBUILD_REASON}mapping"}
    failed = _add_run(instance, search_sync_job, dg.DagsterRunStatus.STARTED, tags=rebuild_tags)
    instance.report_run_failed(failed)  # its rebuild failed its check: the back-off starts
    assert isinstance(_tick(search_resource, instance), dg.SkipReason)  # and nothing is pending

    with psycopg.connect(pg_dsn) as conn:
        conn.execute("DELETE FROM conversations WHERE id = (SELECT min(id) FROM conversations)")
    request = _tick(search_resource, instance)
    assert isinstance(request, dg.RunRequest), request
    assert request.tags[REASON_TAG].startswith(sensors.SYNC_ONLY_REASON)
    assert not request.tags[REASON_TAG].startswith(sensors.REBUILD_REASON)
    assert request.run_config["ops"]["search__conversations_index"]["config"] == {"sync_only": True}

    # the run as the daemon launches it: the sync job, the request's config and tags
    job = dg.Definitions(
        assets=[conversations_search_index],
        jobs=[search_sync_job],
        resources={"search_index": search_resource},
    ).resolve_job_def(search_sync_job.name)
    result = job.execute_in_process(run_config=request.run_config, instance=instance, tags=request.tags)
    assert result.success
    synced = result.asset_materializations_for_node("search__conversations_index")[0].metadata
    assert synced["mode"].value == "incremental" and synced["deleted"].value == 1
    assert synced["index"].value == live  # not rebuilt: the alias still points to the same index
    search_client.refresh(search_resource.alias)
    assert search_client.alias_targets(search_resource.alias) == [live]
    assert search_client.count(search_resource.alias) == 7

    # That run neither counts as a rebuild run nor ends the back-off of the failed one.
    waiting = _tick(search_resource, instance)
    assert isinstance(waiting, dg.SkipReason), waiting
    assert f"1 rebuild run(s) failed in a row, the last {failed.run_id[:8]}" in waiting.skip_message
    assert "no conversation" in waiting.skip_message  # nothing pending any more


@pytest.mark.parametrize("search_engine", ["elasticsearch"], indirect=True)  # one engine is enough
def test_a_detached_month_is_pending_for_the_sensor(pg_dsn, search_client, search_resource):
    """No trigger sees a DETACH: the tick polls the partitions itself (migration 0026), not waiting
    for a replication run or an unrelated change to leave the marker."""
    instance = dg.DagsterInstance.ephemeral()
    _, november_partition, _, _ = _indexed_in_two_months(pg_dsn, search_client, search_resource.alias)
    assert isinstance(_tick(search_resource, instance), dg.SkipReason)

    _take_out(pg_dsn, "detach", november_partition)
    request = _tick(search_resource, instance)
    assert isinstance(request, dg.RunRequest) and request.tags[REASON_TAG] == "pending changes"


def _from_the_ui(instance, **config):
    """A materialisation of the index started by hand in the UI, as the daemon records it: Dagster's
    implicit asset job, the asset selected, the launchpad's config."""
    op_config = {"ops": {"search__conversations_index": {"config": config}}} if config else {}
    return instance.add_run(
        dg.DagsterRun(
            job_name="__ASSET_JOB",
            run_id=str(uuid.uuid4()),
            status=dg.DagsterRunStatus.STARTED,
            asset_selection=frozenset({conversations_search_index.key}),
            run_config=op_config,
        )
    )


@pytest.fixture
def instance():
    """An instance a schedule's context can refer to (an ephemeral one it cannot)."""
    with dg.instance_for_test() as instance:
        yield instance


@pytest.mark.parametrize("search_engine", ["elasticsearch"], indirect=True)
def test_a_run_of_the_index_started_in_the_ui_is_waited_for(
    pg_dsn, search_client, search_resource, monkeypatch, instance
):
    """A rebuild started in the UI holds the rebuild lock as the rebuild job's would: a rebuild asked
    for beside it (by the sensor, by the nightly schedule) could only fail on it, and be alerted."""
    with psycopg.connect(pg_dsn) as conn:
        people = seed_people(conn)
        seed_samples(conn, people)
    _materialize(search_resource)
    built = mapping.MAPPING_VERSION
    monkeypatch.setattr(mapping, "MAPPING_VERSION", built + 1)  # a deploy
    by_hand = _from_the_ui(instance, full_rebuild=True)
    waiting = _tick(search_resource, instance)
    assert isinstance(waiting, dg.SkipReason), waiting
    assert "full rebuild needed" in waiting.skip_message and by_hand.run_id[:8] in waiting.skip_message
    nightly = _evaluate_schedule(instance)
    assert not nightly.run_requests and by_hand.run_id[:8] in nightly.skip_message
    instance.report_run_failed(by_hand)
    request = _tick(search_resource, instance)
    assert isinstance(request, dg.RunRequest) and "mapping version" in request.tags[REASON_TAG]
    assert len(_evaluate_schedule(instance).run_requests) == 1

    # The sensor's own rebuild (a sync run asked to rebuild) holds the nightly one back too; its
    # plain syncs do not (the night's rebuild is not lost to a sync of seconds).
    sensors_rebuild = _add_run(instance, search_sync_job, dg.DagsterRunStatus.STARTED, tags=request.tags)
    assert not _evaluate_schedule(instance).run_requests
    instance.report_run_failed(sensors_rebuild)
    plain = _add_run(instance, search_sync_job, dg.DagsterRunStatus.STARTED)
    assert len(_evaluate_schedule(instance).run_requests) == 1
    instance.report_run_failed(plain)

    # A sync started in the UI (no rebuild asked for) holds back the sensor's sync of the same changes.
    monkeypatch.setattr(mapping, "MAPPING_VERSION", built)  # the mapping as built: no rebuild due
    with psycopg.connect(pg_dsn) as conn:
        insert_conversation(conn, people, "pending while a sync runs from the UI")
    ui_sync = _from_the_ui(instance)
    waiting = _tick(search_resource, instance)
    assert isinstance(waiting, dg.SkipReason) and ui_sync.run_id[:8] in waiting.skip_message
    instance.report_run_canceled(ui_sync)
    assert isinstance(_tick(search_resource, instance), dg.RunRequest)


@pytest.mark.parametrize("search_engine", ["elasticsearch"], indirect=True)
def test_sync_runs_that_keep_failing_are_requested_after_a_back_off(
    pg_dsn, search_client, search_resource, monkeypatch
):
    """A sync failing on PostgreSQL or a refused bulk request (the engine answering) fails the same
    way at the next run: not a run (and an alert, and two retries) every tick, but the back-off."""
    with psycopg.connect(pg_dsn) as conn:
        people = seed_people(conn)
        seed_samples(conn, people)
    _materialize(search_resource)
    with psycopg.connect(pg_dsn) as conn:
        insert_conversation(conn, people, "pending; every sync run of it fails")
    instance = dg.DagsterInstance.ephemeral()

    def fail(request):
        run = _add_run(instance, search_sync_job, dg.DagsterRunStatus.STARTED, tags=request.tags)
        instance.report_run_failed(run)
        return run

    results = [_tick(search_resource, instance)]
    first = fail(results[0])
    results += [_tick(search_resource, instance) for _ in range(11)]  # the rest of the hour's ticks
    assert [type(result) for result in results] == [dg.RunRequest] + [dg.SkipReason] * 11
    waiting = results[-1].skip_message
    assert f"1 sync run(s) failed in a row, the last {first.run_id[:8]}" in waiting
    assert "the next in 10 min" in waiting

    monkeypatch.setattr(sensors, "SENSOR_INTERVAL_S", 0)  # (no back-off left)
    again = _tick(search_resource, instance)
    assert isinstance(again, dg.RunRequest) and again.tags[REASON_TAG] == sensors.PENDING_REASON
    second = fail(again)
    monkeypatch.setattr(sensors, "SENSOR_INTERVAL_S", 300)
    waiting = _tick(search_resource, instance)
    assert isinstance(waiting, dg.SkipReason)
    assert f"2 sync run(s) failed in a row, the last {second.run_id[:8]}" in waiting.skip_message
    assert "the next in 20 min" in waiting.skip_message

    # The cause fixed, the same changes synced by hand end the series: a materialisation in the UI
    # (no sensor tag, not the sync job), then a launchpad run of the sync job (no sensor tag).
    _succeeded(instance, _from_the_ui(instance))
    after_the_ui = _tick(search_resource, instance)
    assert isinstance(after_the_ui, dg.RunRequest), after_the_ui
    assert after_the_ui.tags[REASON_TAG] == sensors.PENDING_REASON
    third = fail(after_the_ui)
    waiting = _tick(search_resource, instance)  # a new series: the failures before the UI's run are over
    assert isinstance(waiting, dg.SkipReason)
    assert f"1 sync run(s) failed in a row, the last {third.run_id[:8]}" in waiting.skip_message
    _succeeded(instance, _add_run(instance, search_sync_job, dg.DagsterRunStatus.STARTED))
    assert isinstance(_tick(search_resource, instance), dg.RunRequest)
    # A full rebuild started by hand is no sync of the changes' series (the rebuild may not fail the same).
    fail(after_the_ui)
    _succeeded(instance, _from_the_ui(instance, full_rebuild=True))
    assert isinstance(_tick(search_resource, instance), dg.SkipReason)


def _succeeded(instance, run):
    """The run ended in success, as its worker reports it (the end time the sensor compares)."""
    event = dg.DagsterEvent(event_type_value=dg.DagsterEventType.RUN_SUCCESS.value, job_name=run.job_name)
    instance.report_dagster_event(event, run_id=run.run_id)
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.SUCCESS
