"""Runs that have not ended: what a schedule or sensor waits for before it asks for another run of
the same work (a second one beside it would only race it, or queue behind it for nothing)."""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg

# The kind of work a run does where one job does several (the search sync job syncs, or rebuilds the
# index; the backup job takes a full or an incremental backup): the alert sensors judge each kind's
# failing streak apart (``warehouse.sensors._work``), so a sync succeeding is no "recovered" of the
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
    instance: dg.DagsterInstance, job_names: list[str] | None = None, tags: Mapping[str, str] | None = None
) -> list[dg.DagsterRun]:
    """The runs not ended yet of these jobs (any job when None) with these tags."""
    return [
        record.dagster_run
        for name in job_names or [None]
        for record in instance.get_run_records(
            filters=dg.RunsFilter(job_name=name, tags=dict(tags or {}), statuses=NOT_ENDED)
        )
    ]
