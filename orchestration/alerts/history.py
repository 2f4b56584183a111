"""The failing streaks of a run's checks and of its job, from Dagster's own record of earlier runs:
what decides whether an alert is news, a reminder or not mailed.

A check that keeps failing (a replication that stays stale fails ``replication_fresh`` every hour)
is mailed when it starts failing, then as a reminder at most every ``FUNNELHOUSE_ALERT_REPEAT_HOURS``
(default 24), and once more when it stops failing, if its failure was alerted. Each is decided from
the check's own evaluations in Dagster's instance, before the run's (``check_changes``), not from a
state of the sensor's: the same answer when the run's alert is mailed again later, from its log.
The failing streak is the check's evaluations failing with severity ERROR up to the run's, in runs of
the same partitions (a backfill of March failing it is not resolved by today's partition passing it;
a range asked for by a schedule, as the nightly KPI run's ending the day it runs, is the schedule's:
``_partitions``), and of the same landing file (``FILE_TAG``, ``_check_scope``: a ``landing_contract``
check judges the file of its run, so a second bad file of a table is NEW, not "still failing", and a good file of the
table resolves neither; a bad file is resolved by its own later load, as is the failure the landing
sensor's report of an unreadable file raised; the mail names the file); a reminder is due when the
run's evaluation and the previous one fall in different repeat windows counted from the streak's
start. A run whose failed checks all fail within their window is logged, not mailed.

A job that keeps failing (the hourly refresh while PostgreSQL is down all night) is alerted the same
way (``job_change``), from the job's earlier runs that succeeded or failed before the run ended,
doing the same work (``_work``: the same partition or partition range, ``_finished_before`` says
why, and the same selection of assets, checks or ops: ``crm_ingest`` loads one table per run; not
the same landing file: a file's check is its own, but a step of ``crm_ingest`` fails for the
infrastructure, as bad rows fail the check, not the step, so a disk full, a killed worker or
PostgreSQL down through a dozen files is one streak of the table's asset, mailed once and
"recovered" once; and the same ``WORK_TAG``, as a full or an incremental backup): a failed
run after a failed one continues their streak and is mailed ("failed again") only when a reminder is
due, in the windows above, or when it fails differently: other steps failed than in the previous
failed run (or, with no step failed, its failure message's first line differs), or when any of its
checks starts failing, is due a reminder or no longer fails; else it is logged. A failed run's mail
lists every check failing in it, each with its streak. A run that succeeds after an alerted failing
streak is mailed once ("recovered") by ``failed_check_alert_sensor``, in one mail with its checks'
changes (``run_alert_text`` decides for both sensors and ``mail_again``: the same text).

A run whose streaks cannot be judged (a malformed ``FUNNELHOUSE_ALERT_REPEAT_HOURS``, a storage
error) is alerted as NEW, with an error logged: Dagster's run-failure sensor moves its cursor past a
run even when the sensor raised, and the alert would be lost. Dagster stores a run's end event before
it updates the run's status and end time, and a sensor reacts to the event: the sensors take the
run's outcome from the event they react to, and its end from the event's time until the run's record
has it (``_end_of``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import dagster as dg
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
    SCHEDULE_NAME_TAG,
)

from orchestration.alerts.settings import repeat_hours, utc_minute
from orchestration.alerts.state import ALERT_TAG, SENT, UNSENT
from orchestration.defs.ingestion.sensors import FILE_TAG
from orchestration.runs import WORK_TAG


def failed_checks(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """The asset checks that failed with severity ERROR in the run, as ``asset: check`` lines."""
    entries = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    evaluations = [
        entry.dagster_event.asset_check_evaluation_data for entry in entries if entry.dagster_event
    ]
    return [
        f"{evaluation.asset_key.to_user_string()}: {evaluation.check_name}"
        for evaluation in evaluations
        if not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    ]


# What a check's evaluation in a run means for its alert (``check_changes``).
NEW, REMINDER, STILL_FAILING, RESOLVED = "new", "reminder", "still failing", "resolved"
# Evaluations of a check read per query, newest first, walking back to where its failing began.
_HISTORY_PAGE = 25


def _how_long(since: float, at: float) -> str:
    """How long something has been failing, as an alert line says it: "3.5 h, since 2026-12-02 06:15 UTC"."""
    return f"{(at - since) / 3600:.1f} h, since {utc_minute(since)}"


@dataclass(frozen=True)
class CheckChange:
    """A check's evaluation in a run, against its earlier ones: ``since`` its failing streak began
    (failing now, or until ``at`` when RESOLVED), ``at`` this evaluation."""

    check: str  # asset: check
    change: str  # NEW, REMINDER, STILL_FAILING, RESOLVED
    since: float
    at: float

    def line(self) -> str:
        how_long = _how_long(self.since, self.at)
        if self.change == RESOLVED:
            return f"{self.check} (failed for {how_long})"
        return f"{self.check} ({self.change}; failing for {how_long})"


def _fails(evaluation) -> bool:
    return not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR


def _failing_before(instance: dg.DagsterInstance, key: dg.AssetCheckKey, run: dg.DagsterRun) -> list:
    """The check's evaluations failing with severity ERROR just before the run's, newest first, in
    runs of the same partitions and landing file (``_check_scope``): a KPI check failing in a backfill
    of March is not resolved by today's partition passing it (nor the other way round), nor a bad
    landing file's ``landing_contract`` by the next file of its table loading."""
    storage, cursor, seen_run, streak = instance.event_log_storage, None, False, []
    done = {AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED}
    scope = _check_scope(run)
    while True:  # page by page: a check stale for weeks has hundreds of evaluations in its streak
        page = storage.get_asset_check_execution_history(key, _HISTORY_PAGE, cursor=cursor, status=done)
        run_ids = list({record.run_id for record in page})  # none: no filter, every run
        runs = instance.get_runs(dg.RunsFilter(run_ids=run_ids)) if run_ids else []
        scope_of = {other.run_id: _check_scope(other) for other in runs}
        for record in page:
            if record.run_id == run.run_id:
                seen_run = True
            # a later run's (the sensor reads a run after it ended), other days' or a deleted run's
            elif not seen_run or scope_of.get(record.run_id) != scope:
                continue
            elif _fails(record.event.dagster_event.asset_check_evaluation_data):
                streak.append(record)
            else:
                return streak
        if len(page) < _HISTORY_PAGE:
            return streak
        cursor = page[-1].id


def _reminder_due(since: float, previous: float, now: float) -> bool:
    """Whether a failure at ``now`` is due a reminder after the one at ``previous``: one in each
    window of ``repeat_hours()`` counted from the failing streak's start (``since``)."""
    window = repeat_hours() * 3600
    return not window or (previous - since) // window != (now - since) // window


def _alerted(instance: dg.DagsterInstance, run_ids: list[str]) -> bool:
    """Whether an alert was raised on any of the runs (their tags): a failure from before the
    sensors watched, or logged only, is not followed by a 'no longer failing' mail either."""
    states = [*UNSENT, SENT]
    return bool(instance.get_run_ids(dg.RunsFilter(run_ids=run_ids, tags={ALERT_TAG: states}), limit=1))


def check_changes(instance: dg.DagsterInstance, run_id: str) -> list[CheckChange]:
    """The checks of the run failing with severity ERROR (NEW, REMINDER or STILL_FAILING) and those
    that no longer do after an alerted failure (RESOLVED), judged by their evaluations up to the run's."""
    changes, run = [], instance.get_run_by_id(run_id)
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = entry.dagster_event.asset_check_evaluation_data if entry.dagster_event else None
        if evaluation is None:
            continue
        name = f"{evaluation.asset_key.to_user_string()}: {evaluation.check_name}"
        streak = _failing_before(instance, evaluation.asset_check_key, run)
        since = streak[-1].event.timestamp if streak else entry.timestamp
        if _fails(evaluation):
            if not streak:
                change = NEW
            else:
                due = _reminder_due(since, streak[0].event.timestamp, entry.timestamp)
                change = REMINDER if due else STILL_FAILING
            changes.append(CheckChange(name, change, since, entry.timestamp))
        elif streak and _alerted(instance, [record.run_id for record in streak]):
            changes.append(CheckChange(name, RESOLVED, since, entry.timestamp))
    return changes


def failure_message(instance: dg.DagsterInstance, run: dg.DagsterRun) -> str | None:
    """What the run's failure event says (the run-failure sensor had it in its context)."""
    entries = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    return entries[-1].dagster_event.message if entries and entries[-1].dagster_event else None


# What a failed run means for its job's alert (``job_change``), beside NEW, REMINDER, STILL_FAILING.
DIFFERENT, RECOVERED = "different failure", "recovered"
# The partition, or the range of partitions, a run ran (if any): part of its work (``_work``).
_PARTITION_TAGS = (PARTITION_NAME_TAG, ASSET_PARTITION_RANGE_START_TAG, ASSET_PARTITION_RANGE_END_TAG)


@dataclass(frozen=True)
class JobChange:
    """A finished run against the earlier finished runs of its job doing the same work: ``since``
    their failing streak began (the end of its first failed run), ``at`` the run's end, ``failed``
    runs in the streak (this one included when it failed), ``previous`` the streak's last run before."""

    change: str  # NEW, DIFFERENT, REMINDER, STILL_FAILING (a failed run) or RECOVERED (succeeded)
    since: float
    at: float
    failed: int
    previous: str

    def line(self) -> str:
        how_long = f"{_how_long(self.since, self.at)}, {self.failed} failed run(s)"
        if self.change == RECOVERED:
            return f"Recovered: it failed for {how_long}."
        if self.change == DIFFERENT:
            return f"Failing differently from run {self.previous[:8]} before it; failing for {how_long}."
        return f"Still failing as in run {self.previous[:8]} before it; failing for {how_long}."


def _partitions(run: dg.DagsterRun) -> dict[str, str]:
    """The run's partition or partition range, for its job's streak and its checks' (as tags:
    ``_finished_before`` asks Dagster for runs having them). A range a schedule asked for is
    keyed by the schedule instead of its dates: the nightly rebuild of every KPI partition asks each
    night for the range from the first partition to today, and its dates would make each night new
    work (mailed every night it fails, never recovered). Its nights are one streak; a backfill of a
    range (no schedule) keeps its dates, and so does a scheduled run of one partition (today's KPIs: a
    day is its own work). One range per schedule tick, as ours ask."""
    keys = {tag: run.tags[tag] for tag in _PARTITION_TAGS if tag in run.tags}
    schedule = run.tags.get(SCHEDULE_NAME_TAG)
    if schedule and ASSET_PARTITION_RANGE_END_TAG in keys:
        keys = {SCHEDULE_NAME_TAG: schedule}
    return keys


def _check_scope(run: dg.DagsterRun) -> dict[str, str]:
    """What a check's failing streak is kept apart by: the run's partitions and its landing file.

    A run of the landing sensor loads one file (``FILE_TAG``), and its ``landing_contract`` check
    judges that file alone, like a partition its days: a second bad file of the table is a new
    failure, and the next good file resolves neither. Every run of a file shares its streak: the
    sensor's later attempts, a new version at its path, and the run reporting it unreadable. Not the
    job's streak (``_work``): its step failing says nothing of the file."""
    keys = _partitions(run)
    if FILE_TAG in run.tags:
        keys[FILE_TAG] = run.tags[FILE_TAG]
    return keys


def _work(run: dg.DagsterRun) -> tuple:
    """What the run did, for its job's failing streak: its partitions and what of the job it selected
    (None: all of it). ``crm_ingest`` runs one table's asset per landing file, and a materialisation
    started by hand runs the implicit asset job whatever it picked: a customers load failing says
    nothing about a deposits load that succeeds. The landing file is left out: the table's loads
    failing file after file (the disk full, PostgreSQL down) are one outage, one streak. Nor does a search sync succeeding say anything about
    the search rebuild failing in the same job (``WORK_TAG``)."""
    ops = frozenset(run.op_selection) if run.op_selection else None
    return _partitions(run), run.asset_selection, run.asset_check_selection, ops, run.tags.get(WORK_TAG)


def _finished_before(instance: dg.DagsterInstance, run: dg.DagsterRun, end: float) -> Iterator[dg.RunRecord]:
    """The runs of the run's job that succeeded or failed before ``end`` (the run's end) doing the
    same work (``_work``), newest first: once the run ended, the same answer whenever asked.

    A streak is per job and partition (or partition range), not per job: a partition run rebuilds its
    own days, so a backfill of March failing says nothing about today's hourly partition run, which
    must neither read it as its own failure "again" nor as "recovered" when it succeeds (nor the other
    way round). Not per landing file: the runs of one table's asset share it (``_work``).
    Today's run that keeps failing starts a new streak at midnight UTC: one mail a day, as the default
    reminder. The nightly run of every partition, whose range ends today, is one streak across
    nights, its schedule's (``_partitions``). (A backfill is one run of its range: the KPI op's
    single-run policy.)"""
    work = _work(run)
    filters = dg.RunsFilter(
        job_name=run.job_name,
        statuses=[dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE],
        tags=_partitions(run),  # narrows it; runs of other work are left out below
    )
    limit, before = _HISTORY_PAGE, end
    while True:  # Dagster's run cursor pages by creation, not end: each query asks for twice as many
        page = instance.get_run_records(filters, limit=limit, order_by="end_time")
        for record in page:
            if record.end_time is not None and record.end_time < before and _work(record.dagster_run) == work:
                before = record.end_time  # the next, longer page repeats these
                yield record
        if len(page) < limit:
            return
        limit *= 2


def _failure_of(instance: dg.DagsterInstance, run: dg.DagsterRun) -> str:
    """What a failed run's failure is, to tell another one: the steps that failed (stable, unlike a
    message holding times or row counts), or when none did (a launch error, a lost run worker) the
    first line of the run's failure message."""
    entries = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    steps = sorted({entry.step_key for entry in entries if entry.step_key})
    return f"steps {steps}" if steps else (failure_message(instance, run) or "").partition("\n")[0]


def _end_of(instance: dg.DagsterInstance, run_id: str) -> float:
    """When the run ended: its record's end time, or, read between the storing of its end event and
    the update of its record (a sensor reacts to the event), that event's time (else now)."""
    record = instance.get_run_record_by_id(run_id)
    if record is not None and record.end_time is not None:
        return record.end_time
    ends = {dg.DagsterEventType.RUN_SUCCESS, dg.DagsterEventType.RUN_FAILURE}
    entries = instance.all_logs(run_id, of_type=ends)
    return entries[-1].timestamp if entries else time.time()


def job_change(instance: dg.DagsterInstance, run: dg.DagsterRun) -> JobChange | None:
    """A finished run (failed or succeeded as ``run.status`` says: its record may not say so yet)
    against the earlier ones of its job doing the same work (``_finished_before``): a failure NEW,
    DIFFERENT (its steps failing, ``_failure_of``, differ from the previous failed run's), REMINDER
    or STILL_FAILING, as ``check_changes`` judges a check; a success RECOVERED after an alerted
    failing streak, else None."""
    at = _end_of(instance, run.run_id)
    streak = []
    for earlier in _finished_before(instance, run, at):
        if earlier.dagster_run.status != dg.DagsterRunStatus.FAILURE:
            break
        streak.append(earlier)
    failed = run.status == dg.DagsterRunStatus.FAILURE
    if not streak:
        return JobChange(NEW, at, at, 1, "") if failed else None
    since, previous = streak[-1].end_time, streak[0]
    if not failed:
        if not _alerted(instance, [earlier.dagster_run.run_id for earlier in streak]):
            return None
        change = RECOVERED
    elif _failure_of(instance, previous.dagster_run) != _failure_of(instance, run):
        change = DIFFERENT
    else:
        change = REMINDER if _reminder_due(since, previous.end_time, at) else STILL_FAILING
    return JobChange(change, since, at, len(streak) + failed, previous.dagster_run.run_id)


def judge_run(
    instance: dg.DagsterInstance, log, run: dg.DagsterRun
) -> tuple[JobChange | None, list[CheckChange]] | None:
    """The run's place in its job's failing streak and its checks' (``job_change``, ``check_changes``),
    or None when they could not be judged (a malformed setting, a storage error): said on ``log``, and
    the run is alerted as NEW. Never raises: Dagster's run-failure sensor moves its cursor past a run
    even when the sensor raised, and the run's alert would be lost."""
    try:
        return job_change(instance, run), check_changes(instance, run.run_id)
    except Exception as error:  # any: an alert mailed once too often beats one lost
        log.error(
            f"run {run.run_id} ({run.job_name}): whether its alert repeats an earlier one could not be "
            f"judged ({type(error).__name__}: {error}); alerted as new"
        )
        return None
