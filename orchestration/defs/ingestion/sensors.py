"""The landing sensor: one run per new landing file, none for a file the ledger already knows.

Each tick lists the landing zone and asks the ledger which files are pending (new content, not
already tried at that path; each version of a file is hashed once:
:func:`ingestion.load.pipeline.pending`). A file that cannot be read (gone since listed, no
permission) is held and named in the tick's log; it still counts as pending, so what must load
after it waits too, and once nothing it depends on waits, one run per version of it fails its
table's check, which alerts (``unreadable_report``). A pending file gets a RunRequest of ``crm_ingest`` restricted to its table's
asset, with the file in the run config; ``run_key = path:checksum`` so Dagster never
launches the same content at the same path twice, even across ticks before the run finishes.

Order matters across runs: a conversations file loaded before its customers would have every row
rejected as an unknown reference. So a file waits (no request this tick) while any file of a
table it depends on is still pending; it is requested on a later tick, once those have loaded
(or failed, which is recorded, so nothing waits forever on a bad file). Batches of one table wait
for each other too: two runs of one table would take turns on the table's lock in no set order, and
an older batch loaded after a newer one would overwrite its rows. So only the first pending batch
of a table is requested; the next one on the tick after it has loaded, as ``funnelhouse ingest``
loads them.

A file may still be being written when a tick lists it (a copy or an export in progress): loaded
then, its cut-off end would load as if it were the whole file (a copy cut at a line break looks
complete). So a file modified less than ``FUNNELHOUSE_LANDING_SETTLE_SECONDS`` ago (default 60;
0: no wait) is held, named in the tick's log, and requested on a tick after it has stayed
unchanged that long; it still counts as pending, so what must load after it waits too. Remote
stores are waited for alike by the stamp they list (S3's ``LastModified``, GCS's ``updated`` ...;
they show an object only once its upload is complete, so there the wait only delays); a store
that lists no modification time is not waited for. Writers that can should write under a name
starting with ``_`` or ``.`` and rename when done: such names are never listed
(:func:`ingestion.load.landing.survey`). ``funnelhouse ingest`` and the assets do not wait:
whoever runs them names files that are complete.

A file of the zone that is no landing file by its name (``tags__b1.CSV``, ``tags__2026 11 03.csv``,
``customers__b1.xlsx``, ``notatable__a.csv``: :func:`ingestion.load.landing.survey`) never loads until
renamed, so it is named with why in a warning of the tick, once per version of it (the sensor's
cursor keeps a short digest of each version already named: a zone holding thousands of them keeps a
cursor of a few dozen kilobytes), and in the skip message of every tick that launches nothing. Both
name the first ``NAMED_AT_MOST`` with why and count the rest. It is not alerted: there is no run to
fail for a name of no table, and a run of the table's asset for a misnamed file of a known one would
fail its step, not its check. Names starting with ``_`` or ``.`` stay silent (the rename
convention), as do uploads in progress and markers or backups of a landing file
(:func:`ingestion.load.landing.survey`).

A run killed before its file's transaction committed leaves no ledger row, so the file stays
pending. Once no run of that file is queued or running any more, the sensor requests it again
under a new run_key (``...:attempt-2``), up to ``MAX_ATTEMPTS`` runs; after that it is held and
named in the tick's log (a file that kills its run every time needs a person: materialise the
table's asset without config, or ``funnelhouse ingest PATH``, once the cause is fixed). A run
that fails inside the loader records the failure in the ledger, so only killed runs repeat.

(No ``from __future__ import annotations``: Dagster reads resource and config classes from
the sensor function's real annotations.)
"""

import hashlib
import json
import re
import time

import dagster as dg

from ingestion.contracts import CONTRACTS
from ingestion.load import ledger
from ingestion.load.landing import LandingFile, Skipped, survey
from ingestion.load.pipeline import connect, pending
from orchestration.defs.ingestion.assets import asset_key, op_name
from orchestration.defs.ingestion.jobs import crm_ingest_job
from orchestration.defs.ingestion.resources import LandingZone, PostgresResource
from orchestration.environment import number_setting

FILE_TAG = "funnelhouse/landing_file"
CHECKSUM_TAG = "funnelhouse/checksum"
UNREADABLE_TAG = "funnelhouse/unreadable"  # a run reporting a file that cannot be read
MAX_ATTEMPTS = 3
SETTLE_ENV = "FUNNELHOUSE_LANDING_SETTLE_SECONDS"
DEFAULT_SETTLE_SECONDS = 60.0
# Skipped files named with why in a warning or a skip message; the others are counted. A zone holding
# thousands of them would otherwise log a message of hundreds of kilobytes every 30 seconds.
NAMED_AT_MOST = 10
_VERSION_DIGEST = re.compile(r"[0-9a-f]{12}")


def settle_seconds() -> float:
    """Seconds a landing file must stay unmodified before the sensor loads it (read at each tick)."""
    return number_setting(SETTLE_ENV, DEFAULT_SETTLE_SECONDS, "seconds")


def still_written(files: list[LandingFile], settle: float, now: float) -> dict[str, float]:
    """Seconds since the last modification of each file modified less than ``settle`` ago, by URL.

    A modification time ahead of ``now`` (another machine's clock) counts as just now."""
    if not settle:
        return {}
    ages = {file.url: now - file.modified_at for file in files if file.modified_at is not None}
    return {url: age for url, age in ages.items() if age < settle}


def next_attempt(instance: dg.DagsterInstance, url: str, checksum: str) -> tuple[int | None, str]:
    """The attempt number of a new run of this pending file, or None and why there is none."""
    runs = instance.get_runs(filters=dg.RunsFilter(tags={FILE_TAG: url, CHECKSUM_TAG: checksum}))
    if any(not run.is_finished for run in runs):
        return None, "a run of it is queued or running"
    if len(runs) >= MAX_ATTEMPTS:
        return None, f"{len(runs)} runs of it ended without loading it: load it by hand once fixed"
    return len(runs) + 1, ""


def upstream(table: str) -> set[str]:
    """Every table ``table`` depends on, directly or not."""
    found: set[str] = set()
    todo = list(CONTRACTS[table].depends_on)
    while todo:
        dep = todo.pop()
        if dep not in found:
            found.add(dep)
            todo.extend(CONTRACTS[dep].depends_on)
    return found


def unreadable_report(file: LandingFile) -> dg.RunRequest:
    """One run of the table's asset for a version of a file that cannot be read (a mode another user
    set, a broken mount), due when nothing it depends on waits: the run holds the file too, and its
    ``landing_contract`` check fails with severity ERROR naming it, so the failed-check alert mails
    someone, once per version of the file (the run_key), and mails again when a later run of the
    table passes the check. Were it only named in the tick's log, the file and every file depending on
    it would wait unseen. (A file readable again by the time the run starts is loaded by it.)"""
    return dg.RunRequest(
        run_key=f"{file.url}:unreadable:{file.size}:{file.modified}",
        asset_selection=[asset_key(file.table)],
        run_config={"ops": {op_name(file.table): {"config": {"paths": [file.url]}}}},
        tags={FILE_TAG: file.url, UNREADABLE_TAG: "true", "funnelhouse/table": file.table},
    )


def first_named(notes: list[str]) -> str:
    """The first ``NAMED_AT_MOST`` of ``notes`` and how many more there are: a tick's log and skip
    message stay short with thousands of files waiting."""
    more = len(notes) - NAMED_AT_MOST
    return "; ".join(notes[:NAMED_AT_MOST]) + (f"; ... and {more} more" if more > 0 else "")


def skipped_note(skipped: list[Skipped]) -> str:
    """The first ``NAMED_AT_MOST`` skipped files with why, and how many more there are."""
    return first_named([f"{entry.name} ({entry.reason})" for entry in skipped])


def _version_digest(version: str) -> str:
    """A short digest of a skipped file's version (``url:size:modified``), for the cursor: the full
    text of thousands of them would make it hundreds of kilobytes, stored at every tick."""
    return hashlib.sha1(version.encode()).hexdigest()[:12]


def warn_skipped(context: dg.SensorEvaluationContext, skipped: list[Skipped]) -> None:
    """Warn of each version of a skipped file not named at an earlier tick; the cursor keeps the
    versions of the last tick, so a file removed and dropped again is named again, and the warning
    is not repeated every 30 seconds for as long as a misnamed file stays. (A cursor of an earlier
    release holds the versions' text: digested as read, so they are not named again.)"""
    versions = {_version_digest(f"{entry.url}:{entry.size}:{entry.modified}"): entry for entry in skipped}
    kept = json.loads(context.cursor) if context.cursor else []
    named_before = {old if _VERSION_DIGEST.fullmatch(old) else _version_digest(old) for old in kept}
    new = [entry for version, entry in versions.items() if version not in named_before]
    if new:
        context.log.warning(
            f"{len(new)} file(s) in the landing zone skipped, never loaded under their name "
            f"(rename to <table>__<batch>.<csv|jsonl|parquet>): {skipped_note(new)}"
        )
    if versions.keys() != set(kept):  # (an earlier release's cursor is written anew)
        context.update_cursor(json.dumps(sorted(versions)))


@dg.sensor(
    job=crm_ingest_job,
    minimum_interval_seconds=30,
    description="Launch one ingestion run per new landing file.",
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def crm_landing_sensor(
    context: dg.SensorEvaluationContext, postgres: PostgresResource, landing_zone: LandingZone
):
    from ingestion.schema import migrate

    dsn = postgres.resolved_dsn()
    migrate.apply(dsn, log=lambda *_: None)  # the ledger must exist before it is read
    files, skipped = survey([landing_zone.resolved_url()])
    warn_skipped(context, skipped)
    settle = settle_seconds()
    settling = still_written(files, settle, time.time())
    # A file that cannot be read counts as pending, as a settling one does: what depends on it waits.
    unreadable: dict[str, str] = {}
    vanished: set[str] = set()  # gone since listed: held without a report (its run could not open it)

    def hold_unreadable(file: LandingFile, error: OSError) -> None:
        unreadable[file.url] = str(error)
        if isinstance(error, FileNotFoundError):
            vanished.add(file.url)

    with connect(dsn) as conn:
        ready = pending(
            conn,
            [f for f in files if f.url not in settling],
            on_step=context.log.info,
            on_unreadable=hold_unreadable,
        )
        # (a settling file loaded already, by an explicit `funnelhouse ingest`, is not waited for)
        for url in ledger.seen(conn, [f for f in files if f.url in settling]):
            del settling[url]
    checksums = {file.url: checksum for file, checksum in ready}
    held_back = settling.keys() | unreadable.keys()
    waiting = [f for f in files if f.url in checksums or f.url in held_back]  # (still in load order)
    waiting_tables = {file.table for file in waiting}
    requests, held = [], []
    first_pending_of_table: dict[str, str] = {}
    for file in waiting:  # (in landing.in_load_order: a table's batches in natural order)
        earlier = first_pending_of_table.setdefault(file.table, file.name)
        if file.url in settling:
            held.append(
                f"{file.name} (modified {max(settling[file.url], 0):.0f}s ago, may still be being "
                f"written: waits until unchanged for {settle:g}s, {SETTLE_ENV})"
            )
            continue
        blocked = upstream(file.table) & waiting_tables
        if file.url in unreadable:
            held.append(f"{file.name} (unreadable: {unreadable[file.url]})")
            if earlier == file.name and not blocked and file.url not in vanished:
                requests.append(unreadable_report(file))
            continue
        checksum = checksums[file.url]
        if earlier != file.name:
            held.append(f"{file.name} (waits for the earlier batch {earlier})")
            continue
        if blocked:
            held.append(f"{file.name} (waits for {', '.join(sorted(blocked))})")
            continue
        attempt, why_not = next_attempt(context.instance, file.url, checksum)
        if attempt is None:
            held.append(f"{file.name} ({why_not})")
            continue
        requests.append(
            dg.RunRequest(
                run_key=f"{file.url}:{checksum}" + (f":attempt-{attempt}" if attempt > 1 else ""),
                asset_selection=[asset_key(file.table)],
                run_config={"ops": {op_name(file.table): {"config": {"paths": [file.url]}}}},
                tags={FILE_TAG: file.url, CHECKSUM_TAG: checksum, "funnelhouse/table": file.table},
            )
        )
    if held:
        context.log.info(f"held ({len(held)}): " + first_named(held))
    if not requests:
        return dg.SkipReason(
            f"no new landing file in {landing_zone.resolved_url()}"
            + (f" ready to load ({len(held)} held: {first_named(held)})" if held else "")
            + (f"; {len(skipped)} skipped, not landing files: {skipped_note(skipped)}" if skipped else "")
        )
    return requests
