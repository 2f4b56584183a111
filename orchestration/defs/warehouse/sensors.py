"""The run-failure alert of the code location: always logs; mails FUNNELHOUSE_ALERT_EMAIL when set,
through the project's SMTP settings (the embedded sink locally), read at failure time, not import;
an alert the relay did not take is mailed again later, once.

``run_failure_alert_sensor`` watches every job of the code location, not only the warehouse's: a
failed backup, ingestion, search sync or report run matters as much as a failed refresh, and a
materialisation started by hand from the UI runs as Dagster's implicit asset job, which no list of
jobs names. It lives here, beside the mail it sends, and ``orchestration.definitions`` registers it
once for the merged location, with its companion below.

A relay that is down when a run fails is when the alert matters most (the relay and the warehouse
fail together), so an alert that could not be mailed is not dropped: its state is kept on the failed
run itself, as tags (``ALERT_TAG``: pending, sending, sent, not-sent, gave-up; ``ALERT_DETAIL_TAG``:
the run it belongs to, when it was first due, how many attempts). Run tags are Dagster's own storage:
they outlive ticks and daemon restarts, one run's state never races another's (several runs failing
while the relay is down each keep their own), and the UI shows them. The run-failure sensor's cursor
is Dagster's, and a sensor cursor holding a queue would be written by two sensors at once.

``run_failure_alert_retry_sensor`` asks Dagster every minute for runs tagged pending and mails them,
oldest first; the first that fails again stops the tick (the relay is still down: the others would
only spend the tick's time limit waiting on it). An alert is retried until it is sent or
``FUNNELHOUSE_ALERT_RETRY_HOURS`` (default 24) have passed since it was first due; then it is given
up, with an error naming the run. While alerts are pending, a new failure joins the queue rather than
trying the relay itself, so alerts go out in order and a tick of the run-failure sensor never waits on
a relay known to be down.

Never twice: the state is written before the message is handed over (sending) and after (sent); an
alert left 'sending' (the connection lost after the handover, or the daemon stopped meanwhile) may
have arrived and is not sent again, as with the reports (``ingestion.reports.delivery``). A refusal
no retry changes (a bounced address) is logged and not retried. A run whose tags were copied from the
run it re-executes is told apart by the run id in ``ALERT_DETAIL_TAG``.

A failed asset check (severity ERROR: a reconciliation that does not match, a dbt test that failed)
is alerted the same way, on its run: a failed run's alert lists the checks that failed in it (a dbt
test failing in the nightly build fails the run too: one alert, not two), and
``failed_check_alert_sensor`` alerts a run that succeeded with failed checks (the reconciliation
checks are not blocking: their run succeeds). Its cursor is Dagster's event log id of the last
successful run it read; the alert's state is on the run's tags as above, so the retry sensor and
``funnelhouse alerts`` handle it like any other. A check failing with severity WARN (a dbt test
configured ``severity: warn``) is left to the UI.

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
has it (``_end_of``).

What no sensor retries is the operator's (``orchestration.commands.alerts``): ``funnelhouse alerts``
lists every alert not sent, ``alerts resend RUN_ID`` mails one now through ``mail_again``, and
``alerts delivered RUN_ID`` records one the relay's log shows as arrived."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid

import dagster as dg
from dagster._core.event_api import EventLogCursor
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
    SCHEDULE_NAME_TAG,
)

from orchestration.defs.ingestion.sensors import FILE_TAG
from orchestration.environment import number_setting
from orchestration.runs import WORK_TAG

ALERT_EMAIL_ENV = "FUNNELHOUSE_ALERT_EMAIL"
RETRY_HOURS_ENV = "FUNNELHOUSE_ALERT_RETRY_HOURS"
DEFAULT_RETRY_HOURS = 24.0
REPEAT_HOURS_ENV = "FUNNELHOUSE_ALERT_REPEAT_HOURS"
DEFAULT_REPEAT_HOURS = 24.0
ALERT_TAG = "funnelhouse/alert"  # on the failed run: where its alert is
ALERT_DETAIL_TAG = "funnelhouse/alert-detail"  # JSON: run_id, since (epoch seconds), attempts
PENDING, SENDING, SENT, NOT_SENT, GAVE_UP = "pending", "sending", "sent", "not-sent", "gave-up"
UNSENT = [PENDING, SENDING, NOT_SENT, GAVE_UP]  # what `funnelhouse alerts` lists

# A sensor evaluation has a time limit: two quick tries, not the reports' patient back-off, and a
# relay that does not answer is given up on within seconds (the next tick tries again).
_ALERT_RETRY_ATTEMPTS = 2
_ALERT_SMTP_TIMEOUT = 10.0


class AlertNotDelivered(RuntimeError):
    """The relay did not take the alert; ``retryable`` unless no later try can change that (a bounce)
    or the message may have arrived (``may_have_arrived``: connection lost after the handover)."""

    def __init__(self, message: str, retryable: bool, may_have_arrived: bool = False):
        super().__init__(message)
        self.retryable = retryable
        self.may_have_arrived = may_have_arrived


def _hours_setting(name: str, default: float) -> float:
    """The hours variable ``name`` sets (read when the sensor runs, not at import), else ``default``."""
    return number_setting(name, default, "hours")


def retry_hours() -> float:
    """Hours an unsent alert is retried for; 0: not retried."""
    return _hours_setting(RETRY_HOURS_ENV, DEFAULT_RETRY_HOURS)


def repeat_hours() -> float:
    """Hours between the reminders of an asset check or a job that keeps failing; 0: every time."""
    return _hours_setting(REPEAT_HOURS_ENV, DEFAULT_REPEAT_HOURS)


def _utc(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(timestamp))


def _notify(subject: str, body: str, before_data=lambda: None, run_id: str = "") -> bool:
    """Mail the alert through the reports' sender (``delivery.deliver``: verified TLS, no retry once
    the server has the message; ``before_data`` before each handover); an alert that cannot be
    delivered raises ``AlertNotDelivered``. False when no FUNNELHOUSE_ALERT_EMAIL is set. Its
    Message-ID holds ``run_id``: what to look for in the relay's log when its delivery is unknown."""
    recipient = os.environ.get(ALERT_EMAIL_ENV)
    if not recipient:
        return False
    from ingestion.reports import delivery
    from orchestration import environment

    try:
        settings = environment.smtp_settings()
    except (ValueError, environment.ServiceNotRunning) as error:  # mended by settings: retried
        raise AlertNotDelivered(f"alert to {recipient} not sent: {error}", retryable=True) from error
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = settings.sender, recipient, subject
    message["Message-ID"] = make_msgid(
        idstring=f"alert-{run_id}", domain=settings.sender.rpartition("@")[2] or "localhost"
    )
    message.set_content(body)
    policy = delivery.RetryPolicy(
        attempts=_ALERT_RETRY_ATTEMPTS, first_delay=1.0, timeout=_ALERT_SMTP_TIMEOUT
    )
    result = delivery.deliver(settings, message, recipient, policy, before_data=before_data)
    if result.status != delivery.SENT:
        raise AlertNotDelivered(
            f"alert to {recipient} not delivered ({result.status}): {result.error}",
            retryable=result.status == delivery.FAILED and not result.permanent,
            may_have_arrived=result.status == delivery.UNKNOWN,
        )
    return True


@dataclass(frozen=True)
class Alert:
    """A failed run's alert and where it is: ``since`` it was first due, after ``attempts`` tries."""

    run: dg.DagsterRun
    state: str
    since: float
    attempts: int


def alert_of(run: dg.DagsterRun) -> Alert | None:
    """The run's alert as its tags record it; None if they do not, or were copied from another run."""
    try:
        detail = json.loads(run.tags.get(ALERT_DETAIL_TAG) or "null")
    except ValueError:
        return None
    if ALERT_TAG not in run.tags or not isinstance(detail, dict) or detail.get("run_id") != run.run_id:
        return None
    return Alert(run, run.tags[ALERT_TAG], float(detail["since"]), int(detail["attempts"]))


def record_alert(instance: dg.DagsterInstance, alert: Alert) -> None:
    detail = {"run_id": alert.run.run_id, "since": alert.since, "attempts": alert.attempts}
    instance.add_run_tags(alert.run.run_id, {ALERT_TAG: alert.state, ALERT_DETAIL_TAG: json.dumps(detail)})


def alert_records(instance: dg.DagsterInstance, states: list[str]) -> list[tuple[Alert, dg.RunRecord]]:
    """The alerts in ``states`` with their failed runs' records (when each ended), oldest first."""
    records = instance.get_run_records(filters=dg.RunsFilter(tags={ALERT_TAG: states}))
    found = [(alert, record) for record in records if (alert := alert_of(record.dagster_run)) is not None]
    return sorted(found, key=lambda pair: pair[0].since)


def _pending_alerts(instance: dg.DagsterInstance) -> list[Alert]:
    """Alerts waiting to be mailed, oldest first."""
    return [alert for alert, _ in alert_records(instance, [PENDING])]


def alert_text(
    run: dg.DagsterRun,
    failure_message: str | None,
    checks: list[str] | None = None,
    resolved: list[str] | None = None,
    job: JobChange | None = None,
) -> tuple[str, str]:
    """The alert's subject and body: of a failed run (``job``: its place in the job's failing
    streak), or of a run that succeeded with ``checks`` failed (``failed_checks``), which the body
    lists either way, or with checks ``resolved`` or its ``job`` RECOVERED only."""
    streak = f"\n\n{job.line()}" if job and job.change != NEW else ""
    # the file a landing run loaded: its checks' streak's (``_check_scope``), which their lines do not name
    landing = f"\n\nLanding file: {run.tags[FILE_TAG]}" if FILE_TAG in run.tags else ""
    if run.status == dg.DagsterRunStatus.SUCCESS:
        what = "checks failed" if checks else "recovered" if streak else "checks resolved"
        subject = f"[funnelhouse] {run.job_name} {what} (run {run.run_id[:8]})"  # short: not folded
        body = subject + landing + streak
    else:
        what = "failed again" if streak else "failed"
        subject = f"[funnelhouse] {run.job_name} {what} (run {run.run_id[:8]})"
        body = f"{subject}{landing}{streak}\n\n{failure_message or 'no message'}"
    if checks:
        body += "\n\nFailed asset checks (details in the run's log):\n" + "\n".join(f"- {c}" for c in checks)
    if resolved:
        body += "\n\nAsset checks no longer failing with severity ERROR:\n" + "\n".join(
            f"- {c}" for c in resolved
        )
    return subject, body


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


@dataclass(frozen=True)
class CheckChange:
    """A check's evaluation in a run, against its earlier ones: ``since`` its failing streak began
    (failing now, or until ``at`` when RESOLVED), ``at`` this evaluation."""

    check: str  # asset: check
    change: str  # NEW, REMINDER, STILL_FAILING, RESOLVED
    since: float
    at: float

    def line(self) -> str:
        how_long = f"{(self.at - self.since) / 3600:.1f} h, since {_utc(self.since)}"
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
        how_long = (
            f"{(self.at - self.since) / 3600:.1f} h, since {_utc(self.since)}, {self.failed} failed run(s)"
        )
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


def _judged(
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


def run_alert_text(
    instance: dg.DagsterInstance,
    run: dg.DagsterRun,
    message: str | None,
    judged: tuple[JobChange | None, list[CheckChange]] | None,
) -> tuple[str, str] | None:
    """The alert of a finished run (``run.status``), from what ``_judged`` says: mailed when its job
    starts failing, fails differently, is due a reminder or recovers, or when any of its checks starts
    failing, is due a reminder or no longer fails, in one mail. A failed run's mail lists every check
    failing in it (a check starting to fail while its job keeps failing is mailed too), a successful
    run's those that changed. None: nothing to mail (all still failing within their window). Not
    judged: mailed as NEW, with every failed check (failed runs always, successful ones with any)."""
    failed = run.status == dg.DagsterRunStatus.FAILURE
    if judged is None:
        checks = failed_checks(instance, run.run_id)
        return alert_text(run, message, checks) if failed or checks else None
    job, changes = judged
    listed = (NEW, REMINDER, STILL_FAILING) if failed else (NEW, REMINDER)
    failing = [change.line() for change in changes if change.change in listed]
    resolved = [change.line() for change in changes if change.change == RESOLVED]
    news = any(change.change in (NEW, REMINDER, RESOLVED) for change in changes)
    if not news and (job is None or job.change == STILL_FAILING):
        return None
    return alert_text(run, message, failing, resolved, job)


def send_alert(
    instance: dg.DagsterInstance, log, alert: Alert, subject: str, body: str, retried: bool = True
) -> str:
    """One attempt at mailing ``alert``; records and returns its new state (sent, pending, sending,
    not-sent) and says so on ``log`` (a sensor's ``context.log``, or any logger). ``retried``: a
    failure the relay may mend is left pending for the retry sensor; else (mailed by hand:
    ``funnelhouse alerts resend``) it is not-sent, and the operator decides again. A connection lost
    after the handover leaves it 'sending' (recorded before the handover): it may have arrived."""
    run = alert.run
    attempt = Alert(run, SENDING, alert.since, alert.attempts + 1)
    try:
        _notify(subject, body, before_data=lambda: record_alert(instance, attempt), run_id=run.run_id)
    except AlertNotDelivered as error:
        if error.may_have_arrived:
            log.error(
                f"alert of run {run.run_id} ({run.job_name}) may have arrived, not mailed again by itself: "
                f"{error}; once the relay's log shows it, `funnelhouse alerts delivered {run.run_id}`, "
                f"else `funnelhouse alerts resend {run.run_id}`"
            )
            return SENDING
        if error.retryable and retried:
            record_alert(instance, Alert(run, PENDING, attempt.since, attempt.attempts))
            until = _utc(attempt.since + retry_hours() * 3600)
            log.warning(
                f"alert of run {run.run_id} ({run.job_name}) not mailed, attempt {attempt.attempts}: "
                f"{error}; tried again until {until}"
            )
            return PENDING
        record_alert(instance, Alert(run, NOT_SENT, attempt.since, attempt.attempts))
        log.error(f"alert of run {run.run_id} ({run.job_name}) not mailed, not retried: {error}")
        return NOT_SENT
    record_alert(instance, Alert(run, SENT, attempt.since, attempt.attempts))
    log.info(f"alert of run {run.run_id} ({run.job_name}) mailed, attempt {attempt.attempts}")
    return SENT


def mail_again(instance: dg.DagsterInstance, log, alert: Alert, retried: bool = True) -> str:
    """``send_alert`` of an alert mailed after its failure was seen: its text from the run's log.
    Not if its state moved since ``alert`` was read (the retry sensor and `funnelhouse alerts resend`
    acting on one alert at once): read again just before, so one of them mails it, not both."""
    now = alert_of(instance.get_run_by_id(alert.run.run_id) or alert.run)
    if now is None or (now.state, now.attempts) != (alert.state, alert.attempts):
        state = now.state if now else "gone"
        log.info(f"alert of run {alert.run.run_id} ({alert.run.job_name}) is {state} meanwhile: not mailed")
        return state
    run, message = alert.run, failure_message(instance, alert.run)
    # the same text from the same history; none if a setting changed meanwhile: as NEW
    subject, body = run_alert_text(instance, run, message, _judged(instance, log, run)) or alert_text(
        run, message, failed_checks(instance, run.run_id)
    )
    return send_alert(instance, log, alert, subject, body, retried=retried)


def _raise_alert(instance: dg.DagsterInstance, log, run: dg.DagsterRun, subject: str, body: str) -> None:
    """Logs the run's alert and, with FUNNELHOUSE_ALERT_EMAIL set, mails it once (or queues it)."""
    log.error(body)
    if not os.environ.get(ALERT_EMAIL_ENV):
        log.info(f"no {ALERT_EMAIL_ENV}: logged only")
        return
    known = alert_of(run)
    if known is not None:  # this run seen before (a tick that did not finish): never mailed twice
        log.info(f"alert of run {run.run_id} already {known.state}")
        return
    alert = Alert(run, PENDING, time.time(), 0)
    waiting = _pending_alerts(instance)
    if waiting:  # the relay failed the last try: queued behind them, mailed in order
        record_alert(instance, alert)
        log.warning(f"alert of run {run.run_id} queued behind {len(waiting)} not mailed yet")
        return
    send_alert(instance, log, alert, subject, body)


@dg.run_failure_sensor(
    name="run_failure_alert_sensor",
    # No monitored_jobs: every job of this code location, the implicit asset job included.
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def run_failure_alert_sensor(context: dg.RunFailureSensorContext):
    run = context.dagster_run.with_status(dg.DagsterRunStatus.FAILURE)  # its record may lag the event
    judged = _judged(context.instance, context.log, run)
    text = run_alert_text(context.instance, run, context.failure_event.message, judged)
    if text is None:
        context.log.error(
            f"run {run.run_id} ({run.job_name}) failed: {judged[0].line()} Not mailed: reminded every "
            f"{repeat_hours():g} h ({REPEAT_HOURS_ENV})"
        )
        return
    _raise_alert(context.instance, context.log, run, *text)


# Successful runs read per tick; more wait for the next tick (the cursor says where it stopped).
_RUNS_PER_TICK = 100


@dg.sensor(
    name="failed_check_alert_sensor",
    # Every run of the instance (this code location is its only one), read from the event log.
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def failed_check_alert_sensor(context: dg.SensorEvaluationContext):
    instance = context.instance
    if context.cursor is None:  # from now on, as the run-failure sensor starts: no alert for the past
        latest = instance.event_log_storage.get_maximum_record_id() or 0
        context.update_cursor(EventLogCursor.from_storage_id(latest).to_string())
        return dg.SkipReason("watching the asset checks of runs that succeed from now on")
    ended = instance.fetch_run_status_changes(
        dg.DagsterEventType.RUN_SUCCESS, limit=_RUNS_PER_TICK, cursor=context.cursor, ascending=True
    )
    alerted = 0
    for record in ended.records:
        run = instance.get_run_by_id(record.run_id)
        if run is None:
            continue
        run = run.with_status(dg.DagsterRunStatus.SUCCESS)  # as its event says: its record may lag
        judged = _judged(instance, context.log, run)
        for change in judged[1] if judged else []:
            if change.change == STILL_FAILING:
                context.log.info(
                    f"run {run.run_id}: {change.line()}; reminded every {repeat_hours():g} h "
                    f"({REPEAT_HOURS_ENV}), not mailed now"
                )
        text = run_alert_text(instance, run, None, judged)
        if text:
            _raise_alert(instance, context.log, run, *text)
            alerted += 1
    # A tick that stopped before this reads the same runs again: their tags say whose alert went out.
    context.update_cursor(ended.cursor)
    return dg.SkipReason(f"{alerted} of {len(ended.records)} successful run(s) with failed asset checks")


@dg.sensor(
    name="run_failure_alert_retry_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def run_failure_alert_retry_sensor(context: dg.SensorEvaluationContext):
    waiting = _pending_alerts(context.instance)
    if not waiting:
        return dg.SkipReason("no run-failure alert waiting to be mailed")
    if not os.environ.get(ALERT_EMAIL_ENV):
        return dg.SkipReason(f"{len(waiting)} run-failure alert(s) waiting; no {ALERT_EMAIL_ENV} set")
    hours = retry_hours()
    outcomes: dict[str, int] = {}
    for alert in waiting:
        run = alert.run
        if time.time() - alert.since >= hours * 3600:
            record_alert(context.instance, Alert(run, GAVE_UP, alert.since, alert.attempts))
            context.log.error(
                f"gave up mailing the alert of run {run.run_id} ({run.job_name}) after {alert.attempts} "
                f"attempt(s) in {hours:g} h ({RETRY_HOURS_ENV}); the failure stays in the run's log"
            )
            state = GAVE_UP
        else:
            context.log.info(
                f"retrying the alert of run {run.run_id} ({run.job_name}): attempt {alert.attempts + 1}"
            )
            state = mail_again(context.instance, context.log, alert)
        outcomes[state] = outcomes.get(state, 0) + 1
        if state == PENDING:  # the relay is still down: the rest wait for the next tick
            break
    summary = ", ".join(f"{count} {state}" for state, count in outcomes.items())
    return dg.SkipReason(f"run-failure alerts: {summary} of {len(waiting)} waiting")
