"""Runs that have not ended: what a schedule or sensor waits for before it asks for another run of
the same work (a second one beside it would only race it, or queue behind it for nothing)."""

from __future__ import annotations

from collections.abc import Collection, Mapping

import dagster as dg

# The kind of work a run does where one job does several (the search sync job syncs, or rebuilds the
# index; the backup job takes a full or an incremental backup): the alert sensors judge each kind's
# failing streak apart (``alerts.history._work``), so a sync succeeding is no "recovered" of the
# rebuild that keeps failing, nor a failed rebuild a "new" failure after it. Runs without it are the
# job's plain work.
WORK_TAG = "funnelhouse/work"

# Queued, starting, running, suspended or being canceled: anything but success, failure or canceled.
NOT_ENDED = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.SUSPENDED,
    dg.DagsterRunStatus.CANCELING,
]


def runs_not_ended(
    instance: dg.DagsterInstance,
    job_names: Collection[str] | None = None,
    tags: Mapping[str, str] | None = None,
    asset_keys: Collection[dg.AssetKey] = (),
) -> list[dg.DagsterRun]:
    """The runs not ended yet with these tags that are of these jobs or select any of these assets
    (any run when neither is given). An asset materialised by hand in the UI, or by a backfill, runs
    in Dagster's ``__ASSET_JOB`` (or any job holding it) with the asset in its ``asset_selection``:
    as much the work of a schedule or sensor waiting for it as a run of its own job."""
    records = instance.get_run_records(filters=dg.RunsFilter(tags=dict(tags or {}), statuses=NOT_ENDED))
    return [record.dagster_run for record in records if does_work(record.dagster_run, job_names, asset_keys)]


def does_work(
    run: dg.DagsterRun, job_names: Collection[str] | None = None, asset_keys: Collection[dg.AssetKey] = ()
) -> bool:
    """Whether the run is of these jobs or selects any of these assets (any run when neither is given):
    a materialisation by hand in the UI, or a backfill, runs in Dagster's ``__ASSET_JOB`` (or any job
    holding the asset) with the asset in its ``asset_selection``."""
    if job_names is None and not asset_keys:
        return True
    return run.job_name in (job_names or ()) or bool(set(asset_keys) & set(run.asset_selection or ()))


def described(runs: list[dg.DagsterRun]) -> str:
    """The runs as a skip reason names them: job, short run id and status."""
    return ", ".join(f"{run.job_name} {run.run_id[:8]} ({run.status.value.lower()})" for run in runs)
