"""One Dagster asset per seed table, ``crm/<table>``, ingesting that table's pending landing files.

Dependencies follow the contract's references (employees before customers before funnel,
deposits, conversations ...), so materialising the group loads a whole drop in an order where
every business key can resolve. Each asset runs :func:`ingestion.load.pipeline.ingest` - the
same code as ``funnelhouse ingest`` - and reports per file what came in, what loaded, what was
rejected and why. The ``landing_contract`` asset check carries the great-expectations results:
it passes when no row was rejected, and warns (rejected rows are quarantined, not lost) otherwise.

A file that could not be loaded at all - unreadable, or every row rejected - fails that check with
severity ERROR and its reason (alerted by ``failed_check_alert_sensor`` as a failed run would be),
but not the step: the loader has recorded the failure in the ledger, the files that did load are
reported in the materialization, and the dependent tables still load, as with ``funnelhouse
ingest DIR`` and the landing sensor (a failed upstream file does not block; rows that need it are
rejected as unknown references). Only an error outside the files' outcomes (PostgreSQL down, a bug)
fails the step, and then Dagster skips the dependants. When PostgreSQL ends the load (the connection
lost, a lock timeout ...) the step fails with a ``dg.Failure`` saying which file was loading, that it
was rolled back, and what to run again - the words ``funnelhouse ingest`` prints
(:mod:`ingestion.load.interrupted`) - rather than a bare psycopg traceback.

(No ``from __future__ import annotations``: Dagster reads resource and config classes from
the asset function's real annotations.)
"""

import shlex
from collections import Counter

import dagster as dg
import psycopg
from pydantic import Field

from ingestion.contracts import CONTRACTS, load_order
from ingestion.load.failures import describe_reasons
from ingestion.load.interrupted import stopped_message
from ingestion.load.landing import discover
from ingestion.load.ledger import SUPERSEDED
from ingestion.load.loader import FileResult
from ingestion.load.pipeline import ingest
from ingestion.load.validate import rule_words
from orchestration.defs.ingestion.resources import LandingZone, PostgresResource
from orchestration.ingest_log import LogObserver

GROUP = "ingestion"
CHECK = "landing_contract"


def asset_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["crm", table])


def op_name(table: str) -> str:
    """The op behind ``crm/<table>`` (run config is keyed by it)."""
    return f"crm__{table}"


class IngestConfig(dg.Config):
    paths: list[str] = Field(
        default=[],
        description="Landing files to ingest (the sensor sets one); empty: every pending file of the table.",
    )
    retry_failed: bool = Field(
        default=False,
        description="Also retry files that failed at their path before (as `funnelhouse ingest PATH` does); "
        "off for the sensor, which would otherwise retry a bad file on every tick.",
    )


def _file_table(results: list[FileResult]) -> str:
    lines = [
        "| file | status | in | loaded | rejected | superseded | changed | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        note = r.error or (
            f"same content as {r.duplicate_of}" if r.duplicate_of else describe_reasons(r.reasons)
        )
        lines.append(
            f"| {r.file.name} | {r.status} | {r.rows_in} | {r.rows_loaded} | {r.rows_rejected} "
            f"| {r.rows_superseded} | {r.rows_changed} | {note.replace('|', '/')} |"
        )
    return "\n".join(lines)


def _reasons_table(reasons: Counter) -> str:
    lines = ["| rule | meaning | rows |", "|---|---|---|"]
    lines += [f"| {rule} | {rule_words(rule)} | {count} |" for rule, count in reasons.most_common()]
    return "\n".join(lines)


def summarise(results: list[FileResult]) -> dict:
    reasons: Counter = Counter()
    for r in results:
        reasons.update(r.reasons)
    return {
        "files": len(results),
        "files_failed": sum(not r.ok for r in results),
        "rows_in": sum(r.rows_in for r in results),
        "rows_loaded": sum(r.rows_loaded for r in results),
        "rows_rejected": sum(r.rows_rejected for r in results),
        # Of rows_loaded: replaced by a later row of their key in the file (kept in ingest_superseded).
        "rows_superseded": sum(r.rows_superseded for r in results),
        "rows_changed": sum(r.rows_changed for r in results),
        "reasons": reasons,
    }


def _expectations(results: list[FileResult]) -> dict:
    """GE results of the run's files merged: per rule, rows that broke it."""
    merged: Counter = Counter()
    kinds: dict[str, str] = {}
    for r in results:
        for e in r.validation.get("expectations", []):
            merged[e["rule"]] += e["unexpected"]
            kinds[e["rule"]] = e["expectation"]
    return {rule: {"expectation": kinds[rule], "unexpected": merged[rule]} for rule in kinds}


def _check_description(table: str, results: list[FileResult], totals: dict, unreadable: list[str]) -> str:
    """What the ``landing_contract`` check found: files that could not be read and failed files with
    their reasons first (what needs a person), then the rows rejected."""
    if unreadable:
        rest = _check_description(table, results, totals, [])
        return f"{len(unreadable)} {table} file(s) could not be read: {'; '.join(unreadable)}; {rest}"
    failed = [r for r in results if not r.ok]
    rejected = (
        f"{totals['rows_rejected']} of {totals['rows_in']} rows rejected: "
        f"{describe_reasons(totals['reasons'])}"
        if totals["rows_rejected"]
        else ""
    )
    # Valid, but not stored as given: said wherever the counts are, kept in ingest_superseded.
    superseded = (
        f"{totals['rows_superseded']} row(s) loaded gave a key again later in their file: the later "
        f"row stands, the earlier kept in {SUPERSEDED}"
        if totals["rows_superseded"]
        else ""
    )
    if failed:
        return "; ".join(
            part
            for part in (
                f"{len(failed)} of {len(results)} {table} file(s) failed: "
                + "; ".join(r.error or r.file.url for r in failed),
                rejected,
                superseded,
            )
            if part
        )
    if rejected:
        return rejected + (f"; {superseded}" if superseded else "")
    if not results:
        return "no pending landing file"
    return f"all {totals['rows_in']} rows valid" + (f"; {superseded}" if superseded else "")


def _ingestion_asset(table: str) -> dg.AssetsDefinition:
    key = asset_key(table)

    @dg.asset(
        key=key,
        deps=[asset_key(dep) for dep in CONTRACTS[table].depends_on],
        group_name=GROUP,
        kinds={"postgres"},
        description=f"The seed table `{table}`, from `{table}__<batch>.<csv|jsonl|parquet>` landing files.",
        check_specs=[
            dg.AssetCheckSpec(
                CHECK, asset=key, description="Landing rows obey the contract (great-expectations)"
            )
        ],
    )
    def _ingest(
        context: dg.AssetExecutionContext,
        config: IngestConfig,
        postgres: PostgresResource,
        landing_zone: LandingZone,
    ):
        locations = config.paths or [landing_zone.resolved_url()]
        files = [f for f in discover(locations) if f.table == table]
        observer = LogObserver(context.log)
        try:
            results = ingest(
                postgres.resolved_dsn(),
                files,
                only_pending=True,
                retry_failed=config.retry_failed,
                run_id=context.run.run_id,
                observer=observer,
            )
        except psycopg.OperationalError as error:
            # Still a step failure: the dependants are skipped, and a retry policy would still apply
            # (Failure's allow_retries defaults to True; the crm ops have none: the landing sensor
            # requests a file its run did not load again). Told as `funnelhouse ingest` tells it, with
            # the loading file's URL, not its name alone: the run may have been given any path. `from None`: the psycopg error's text can
            # carry a DETAIL quoting a row, which the run's event log must not keep.
            again = f"materialise {key.to_user_string()} again" + (
                f", or run `funnelhouse ingest {shlex.quote(observer.loading)}`" if observer.loading else ""
            )
            raise dg.Failure(
                description=stopped_message(error, observer.loading, observer.finished, again)
            ) from None
        totals = summarise(results)
        # A file that cannot be read is held, not recorded: it fails the check as a failed file does.
        needs_a_person = totals["files_failed"] or observer.unreadable
        metadata = {
            "file_urls": [r.file.url for r in results],  # (and "files", their count, from the totals)
            **{k: dg.MetadataValue.int(v) for k, v in totals.items() if k != "reasons"},
            "per_file": dg.MetadataValue.md(_file_table(results)) if results else "no pending file",
            "rejected_by_rule": dg.MetadataValue.md(_reasons_table(totals["reasons"])),
        }
        yield dg.MaterializeResult(
            metadata=metadata,
            check_results=[
                dg.AssetCheckResult(
                    check_name=CHECK,
                    passed=totals["rows_rejected"] == 0 and not needs_a_person,
                    severity=dg.AssetCheckSeverity.ERROR if needs_a_person else dg.AssetCheckSeverity.WARN,
                    description=_check_description(table, results, totals, observer.unreadable),
                    metadata={
                        "rows_checked": totals["rows_in"],
                        "rows_rejected": totals["rows_rejected"],
                        "rows_superseded": totals["rows_superseded"],
                        "files_failed": totals["files_failed"],
                        "files_unreadable": len(observer.unreadable),
                        "expectations": dg.MetadataValue.json(_expectations(results)),
                    },
                )
            ],
        )

    return _ingest


CRM_ASSETS = [_ingestion_asset(table) for table in load_order()]
