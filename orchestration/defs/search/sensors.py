"""Launch the incremental sync when the index is behind PostgreSQL, or must be rebuilt.

Each tick, in order:

1. no search engine configured or running: skip, saying how to start one;
2. a run syncing the index is queued or running: skip (however many ticks see the same changes
   before it ends, they add nothing); a run of the sync job, or of any job materialising the index
   (by hand in the UI: Dagster's ``__ASSET_JOB``) but a full rebuild (``full_rebuild_run``);
3. the engine does not answer (down, refused, timed out, a bad certificate or password): an outage,
   see below; no PostgreSQL probe;
4. the live index needs a full rebuild (never built, alias gone, or its mapping version is not the
   code's after a deploy): request a run (the run rebuilds, see ``indexer.synchronise``), unless a
   run materialising the index is in flight (the rebuild job's, one started in the UI: a second
   rebuild could only fail on its lock: wait for it),
   or the last such runs failed (a rebuild failing its verification fails again until the code or
   the data change): then the same back-off as for an outage, counted from the failed runs in a row;
   during it, pending changes (as in 5) get a sync-only run (``sync_only``: the live index, the one
   the alias still points to, is synced and not rebuilt), so that deletions do not wait hours for
   the next rebuild; those runs neither count as rebuild runs nor end the failed ones in a row;
5. PostgreSQL has changes the saved cursors have not passed (partitions polled first: a DETACH counts,
   migration 0026): request a run, unless the last such runs failed (a PostgreSQL error, a bulk
   request refused: the next run meets the same): then the same back-off, counted from the failed
   runs of pending changes in a row since the last run that synced the index, whichever job ran it
   but a full rebuild
   (the cause fixed, a sync started by hand in the UI or the launchpad ends the series).

An outage is alerted, not flooded. Every run asked for while the engine is away fails, and every
failure is mailed by ``run_failure_alert_sensor``: a run each tick would be a dozen mails an hour. So
the tick that first finds the engine silent requests one run (tagged with the outage, whether or not
anything changed: its failure is the alert), and the sensor cursor (JSON, ``Outage``) keeps the
engine's address (never a user or password), when the outage began, the last run requested and how
many. Later ticks skip, naming the address, how long it has not answered and when the next run is
due, and request a run again only after a back-off: twice the sensor interval after the first run,
doubled after each, at most ``OUTAGE_MAX_BACKOFF_S`` (5 min interval: 10, 20, 40, 80, 160 min, then
every 3 h; a night's outage mails about seven alerts, not a hundred). The tick that finds the engine
answering again clears the cursor and goes on at once: pending changes are synced on that tick. A
cursor naming another address (the setting changed) starts a new outage.

No run key: whether a run is due is decided from the run history and the saved state, so a run
that failed (engine down, bulk refused) or skipped (the lock was held) leaves its changes pending
and a later tick requests a new run for them.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import time
from dataclasses import asdict, dataclass, replace
from urllib.parse import urlsplit, urlunsplit

import dagster as dg

from ingestion.schema import migrate
from ingestion.search import cursor_store, documents, probe, sync
from orchestration import environment
from orchestration.defs.search.assets import (
    conversations_search_index,
    missing_search_engine,
    run_config,
    search_rebuild_job,
    search_sync_job,
)
from orchestration.defs.search.resources import SearchResource
from orchestration.runs import WORK_TAG, does_work, runs_not_ended

SENSOR_INTERVAL_VARIABLE = "FUNNELHOUSE_SEARCH_SENSOR_INTERVAL"
DEFAULT_SENSOR_INTERVAL_S = 300
_log = logging.getLogger(__name__)


def sensor_interval_s() -> int:
    """``FUNNELHOUSE_SEARCH_SENSOR_INTERVAL``: whole seconds, 1 or more (default 300). Dagster takes a
    sensor's interval when the code location loads, so it is read then, unlike the settings the other
    sensors read at each tick; a value that is no such number is reported (a warning naming the
    variable) and the default used: it must not stop the whole code location from loading."""
    try:
        seconds = environment.number_setting(
            SENSOR_INTERVAL_VARIABLE, DEFAULT_SENSOR_INTERVAL_S, "seconds", minimum=1
        )
    except environment.ConfigurationError as error:
        _log.warning("%s; the search sensor looks every %d s", error, DEFAULT_SENSOR_INTERVAL_S)
        return DEFAULT_SENSOR_INTERVAL_S
    return int(seconds)


# How often the sensor looks (seconds); a tick is a few index lookups and two engine requests: cheap.
SENSOR_INTERVAL_S = sensor_interval_s()
# The longest wait between two runs requested during an outage: it stays alerted at least this often.
OUTAGE_MAX_BACKOFF_S = 3 * 3600
REASON_TAG = "funnelhouse/search_sync_reason"
REBUILD_REASON = "full rebuild: "  # how the reason of a run requested for a rebuild starts
PENDING_REASON = "pending changes"  # the reason of a run requested to sync them (no rebuild due)
# How the reason of a run that only syncs, during the back-off after failed rebuilds, starts.
SYNC_ONLY_REASON = "sync only, awaiting a full rebuild: "
# How long a tick waits for the engine: a host that drops packets would otherwise hold the tick for
# the client's 60 s, Dagster's limit for a whole tick (the tick would error instead of skipping).
ENGINE_PROBE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Outage:
    """The sensor cursor while the engine does not answer (no cursor while it does)."""

    address: str  # the engine's URL without user, password or query
    since: float  # epoch seconds: the first tick that found it silent
    last_request: float  # epoch seconds: the last run requested for it
    requests: int  # runs requested since it began

    @classmethod
    def from_cursor(cls, cursor: str | None) -> Outage | None:
        """The outage a cursor records; None for no cursor, or one this code cannot read (a new
        outage starts then: one run more, never none)."""
        try:
            return cls(**json.loads(cursor)) if cursor else None
        except (ValueError, TypeError):
            return None

    def to_cursor(self) -> str:
        return json.dumps(asdict(self))

    def next_request(self) -> float:
        """When the next run may be asked for: at once for the first, then ``backoff_s`` after the last."""
        return self.last_request + backoff_s(self.requests)


def backoff_s(runs: int) -> float:
    """How long to wait after the ``runs``-th run asked for in vain: twice the sensor interval after the
    first, doubled after each further one, at most ``OUTAGE_MAX_BACKOFF_S``."""
    return min(SENSOR_INTERVAL_S * 2**runs, max(OUTAGE_MAX_BACKOFF_S, SENSOR_INTERVAL_S))


@dataclass(frozen=True)
class FailedRuns:
    """The sensor's runs of one kind (rebuilds, syncs of pending changes) that failed in a row (the
    newest runs of the sync job for the alias; for syncs, those that ended after the last run that synced
    the index, whichever job ran it, but a full rebuild)."""

    runs: int
    last_run_id: str
    last_ended: float  # epoch seconds

    def next_request(self) -> float:
        return self.last_ended + backoff_s(self.runs)

    def backing_off(self, kind: str) -> str:
        """What a skip reason says of them during the back-off."""
        return (
            f"{self.runs} {kind} run(s) failed in a row, the last {self.last_run_id[:8]} (its failure was "
            f"alerted); the next in {_duration(self.next_request() - time.time())}"
        )


def _sensor_runs(context: dg.SensorEvaluationContext, alias: str, page: int = 100):
    """This sensor's runs for the alias, newest first, but its sync-only ones: up to a back-off's worth
    of them (one a tick) lie between two rebuild runs, so the history is read page by page."""
    filters = dg.RunsFilter(job_name=search_sync_job.name, tags={"search_alias": alias})
    cursor = None
    while True:
        records = context.instance.get_run_records(filters=filters, limit=page, cursor=cursor)
        for record in records:
            if not record.dagster_run.tags.get(REASON_TAG, "").startswith(SYNC_ONLY_REASON):
                yield record
        if len(records) < page:
            return
        cursor = records[-1].dagster_run.run_id


def _ended(record: dg.RunRecord) -> float:
    """When the run ended, in epoch seconds (its last update for a record without an end time)."""
    return record.end_time or record.update_timestamp.timestamp()


def _backing_off(context: dg.SensorEvaluationContext, alias: str, reason: str) -> FailedRuns | None:
    """The runs this sensor requested for ``reason`` (how their reason tag starts: ``REBUILD_REASON``,
    ``PENDING_REASON``) that failed since its last run that did not or was for another reason, while
    their back-off lasts (None: none, or it is over; sync-only runs do not count, nor end the series).
    A series of syncs also ends at any run that synced the index after it (``_last_synced``): the cause
    fixed and the changes synced by hand, the next changes do not wait. Read from the run history, not
    the sensor cursor (the outage's), so the back-offs stand alone."""
    failed = []
    for record in itertools.islice(_sensor_runs(context, alias), 20):  # newest first
        run = record.dagster_run
        if not run.tags.get(REASON_TAG, "").startswith(reason) or run.status != dg.DagsterRunStatus.FAILURE:
            break
        failed.append(record)
    # Over for the whole series, so for any part of it (fewer runs back off less): no history read further.
    if not failed or time.time() >= _failed_runs(failed).next_request():
        return None
    if reason == PENDING_REASON and (synced := _last_synced(context.instance, after=_ended(failed[-1]))):
        failed = [record for record in failed if _ended(record) > synced]
    return _failed_runs(failed) if failed and time.time() < _failed_runs(failed).next_request() else None


def _failed_runs(failed: list[dg.RunRecord]) -> FailedRuns:
    """The series of these failed runs, newest first."""
    return FailedRuns(
        runs=len(failed), last_run_id=failed[0].dagster_run.run_id, last_ended=_ended(failed[0])
    )


def _last_synced(instance: dg.DagsterInstance, after: float) -> float | None:
    """When the newest run that synced the index successfully ended, if after ``after`` (epoch seconds):
    a run of the search jobs or of any job selecting the index (the UI's ``__ASSET_JOB``), the sensor's
    or not (the launchpad's carry no alias tag), but a rebuild."""
    since = dt.datetime.fromtimestamp(after, dt.UTC)
    filters = dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS], updated_after=since)
    ended = [
        _ended(record)
        for record in instance.get_run_records(filters=filters)
        if index_run(record.dagster_run) and not rebuild_run(record.dagster_run)
    ]
    return max((end for end in ended if end > after), default=None)


def _engine_address() -> str:
    """Where the engine is looked for, as skip reasons and the cursor (both shown in the UI) may say it."""
    try:
        url = environment.search_settings().url
    except (ValueError, environment.ServiceNotRunning):  # the client failed on the same: that is the outage
        return "the configured search engine"
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def _duration(seconds: float) -> str:
    minutes = max(0, round(seconds / 60))
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def full_rebuild_run(run: dg.DagsterRun) -> bool:
    """Whether a run rebuilds the index whatever it finds: one of the rebuild job, or one given
    ``full_rebuild`` (in the UI's launchpad). It does not hold back a sync of the live index."""
    config = run.run_config.get("ops", {}).get(conversations_search_index.op.name, {}).get("config", {})
    return run.job_name == search_rebuild_job.name or bool(config.get("full_rebuild"))


def rebuild_run(run: dg.DagsterRun) -> bool:
    """Whether a run rebuilds the index: a full rebuild run, or one this sensor requested for a rebuild
    (a plain sync does not rebuild, unless the index needs it, which this sensor asks for so)."""
    return full_rebuild_run(run) or run.tags.get(WORK_TAG) == "rebuild"


# The runs materialising the index: of the search jobs, or of any job selecting it (by hand in the UI,
# which runs it in Dagster's ``__ASSET_JOB``).
INDEX_JOBS = (search_sync_job.name, search_rebuild_job.name)
INDEX_ASSETS = (conversations_search_index.key,)


def index_run(run: dg.DagsterRun) -> bool:
    """Whether a run materialises the index (see ``INDEX_JOBS``)."""
    return does_work(run, INDEX_JOBS, INDEX_ASSETS)


def index_runs_in_flight(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    """The runs materialising the index that are queued or running."""
    return runs_not_ended(instance, INDEX_JOBS, asset_keys=INDEX_ASSETS)


def rebuilds_in_flight(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    """Those that rebuild the index."""
    return [run for run in index_runs_in_flight(instance) if rebuild_run(run)]


def _rebuild_reason(search_index: SearchResource) -> tuple[str | None, bool]:
    """What the run would rebuild for (the run's own test, ``sync.rebuild_reason``), or None; and
    whether the alias points to a live index a sync-only run could update. Raises whatever the client
    raises when the engine does not answer."""
    client = search_index.client(timeout=ENGINE_PROBE_TIMEOUT_S)
    try:
        reason = sync.rebuild_reason(client, search_index.alias)
        return reason, reason is None or bool(client.alias_targets(search_index.alias))
    finally:
        client.close()


def _nothing_pending(search_index: SearchResource) -> str | None:
    """Why no sync is due (PostgreSQL has no change the saved cursors have not passed), or None."""
    with documents.connect(search_index.pg_dsn()) as conn:
        cursor_store.ensure_table(conn)
        saved = cursor_store.load(conn, search_index.alias)
        # No trigger sees a partition detached, dropped or attached: the poll leaves its marker
        # (migration 0026), which the probe then finds, as the sync and ``sync.pending`` do. Else a
        # DETACH would wait for a replication run, or an unrelated change, to reach the index.
        migrate.record_partition_changes(conn)  # (its notices logged by ingestion.schema.migrate)
        if probe.has_changes(conn, saved.cursors, search_index.lag, saved.physical_index):
            return None
    changes = saved.cursors.changes
    return (
        f"no conversation (nor shown customer/employee attribute) changed after {changes.at.isoformat()}"
        f" (id {changes.id})"
    )


def _engine_silent(context: dg.SensorEvaluationContext, error: Exception, tags: dict[str, str]):
    """The tick's answer while the engine does not answer: a run at the outage's start and after each
    back-off (its failure is the alert), else a SkipReason saying since when and what comes next."""
    now = time.time()
    address = _engine_address()
    outage = Outage.from_cursor(context.cursor)
    if outage is None or outage.address != address:
        outage = Outage(address=address, since=now, last_request=0.0, requests=0)
    context.log.warning(f"search engine at {address} did not answer ({type(error).__name__}: {error})")
    silent_for = _duration(now - outage.since)
    since = dt.datetime.fromtimestamp(outage.since, dt.UTC).isoformat(timespec="seconds")
    if now < outage.next_request():
        context.update_cursor(outage.to_cursor())
        return dg.SkipReason(
            f"search engine at {address} has not answered for {silent_for} (since {since}, "
            f"{type(error).__name__}); {outage.requests} sync run(s) requested for the outage, their "
            f"failures alerted; the next in {_duration(outage.next_request() - now)} unless it answers first"
        )
    outage = replace(outage, last_request=now, requests=outage.requests + 1)
    context.update_cursor(outage.to_cursor())
    return dg.RunRequest(
        tags={
            **tags,
            REASON_TAG: f"search engine at {address} not answering since {since} ({silent_for}): "
            f"run {outage.requests} of the outage",
        }
    )


@dg.sensor(
    job=search_sync_job,
    minimum_interval_seconds=SENSOR_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Reindexes changed conversations (and those of customers/employees whose tier, stage or "
    "department changed) into the search engine; rebuilds it when never built or its mapping changed "
    "(SkipReason when nothing changed, a run of the index is in flight, also one started in the UI, or "
    "no search engine runs). While the engine does not answer, one run when that starts, then after a "
    f"doubling back-off (up to {OUTAGE_MAX_BACKOFF_S // 3600} h) while it lasts; the same back-off after "
    "rebuild runs that failed, with sync-only runs of pending changes meanwhile, and after sync runs "
    "that failed.",
)
def search_changes_sensor(context: dg.SensorEvaluationContext, search_index: SearchResource):
    missing = missing_search_engine()
    if missing:
        return dg.SkipReason(missing)
    in_flight = index_runs_in_flight(context.instance)
    if run := next((run for run in in_flight if not full_rebuild_run(run)), None):
        return dg.SkipReason(
            f"sync run {run.run_id[:8]} ({run.job_name}) is {run.status.value.lower()}: pending changes "
            "wait for it to end"
        )
    tags = {"search_alias": search_index.alias}
    try:
        reason, live_index = _rebuild_reason(search_index)
    except Exception as error:
        return _engine_silent(context, error, tags)
    if context.cursor:  # the engine answers again: the outage ends, and this tick goes on as usual
        if outage := Outage.from_cursor(context.cursor):
            silent_for = _duration(time.time() - outage.since)
            context.log.info(f"search engine at {outage.address} answers again after {silent_for}")
        context.update_cursor(None)
    if reason:
        if in_flight:  # only full rebuilds are left in it (a sync returned above)
            run = in_flight[0]
            return dg.SkipReason(
                f"full rebuild needed ({reason}); rebuild run {run.run_id[:8]} ({run.job_name}) is "
                f"{run.status.value.lower()}"
            )
        if failed := _backing_off(context, search_index.alias, REBUILD_REASON):
            backing_off = f"full rebuild needed ({reason}); {failed.backing_off('rebuild')}"
            if not live_index:  # never built (or the alias was removed): nothing to sync into
                return dg.SkipReason(f"{backing_off}; no live index to sync meanwhile")
            if unchanged := _nothing_pending(search_index):
                return dg.SkipReason(f"{backing_off}; {unchanged}")
            # Deletions must not stay searchable for the whole back-off: sync the live index meanwhile.
            return dg.RunRequest(
                run_config=run_config(sync_only=True),
                tags={**tags, REASON_TAG: f"{SYNC_ONLY_REASON}{reason}"},
            )
        # Its own failing streak for the alerts: a sync-only run succeeding meanwhile is no recovery.
        return dg.RunRequest(tags={**tags, REASON_TAG: f"{REBUILD_REASON}{reason}", WORK_TAG: "rebuild"})
    # Before PostgreSQL is asked: a failing sync may be its fault (and the changes stay pending anyway).
    if failed := _backing_off(context, search_index.alias, PENDING_REASON):
        return dg.SkipReason(f"changes may be pending; {failed.backing_off('sync')}")
    if unchanged := _nothing_pending(search_index):
        return dg.SkipReason(unchanged)
    return dg.RunRequest(tags={**tags, REASON_TAG: PENDING_REASON})
