"""What an alert says, and whether a run has one to say: one text for both sensors and for
``mail_again``, so an alert mailed again later reads as it would have when first due."""

from __future__ import annotations

import dagster as dg

from orchestration.alerts.history import (
    NEW,
    REMINDER,
    RESOLVED,
    STILL_FAILING,
    CheckChange,
    JobChange,
    failed_checks,
)
from orchestration.defs.ingestion.sensors import FILE_TAG


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


def run_alert_text(
    instance: dg.DagsterInstance,
    run: dg.DagsterRun,
    message: str | None,
    judged: tuple[JobChange | None, list[CheckChange]] | None,
) -> tuple[str, str] | None:
    """The alert of a finished run (``run.status``), from what ``judge_run`` says: mailed when its job
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
