"""The KPI reports as assets downstream of the marts: materialising a partition renders and mails
that period's reports (the ledger keeps re-materialisations from mailing anyone twice).

Nothing is mailed from marts that cannot hold the whole period: a run whose marts do not hold every
change made before the period ended (``refresh_state.Refresh.complete_through``: the earlier of the
refresh mark and the replication bound of its data) waits for the next refresh (retries), as does one that finds PostgreSQL or
ClickHouse not answering (or an embedded service not running), and a period without any activity fails
the run (an all-zero report to every manager says the pipeline stopped, not that the team did; the
run-failure sensor says it instead)."""

from datetime import date

import dagster as dg
import psycopg
from clickhouse_connect.driver.exceptions import OperationalError as ClickHouseUnreachable

from ingestion.reports.data import MART_TABLES
from ingestion.reports.ledger import MAX_RUNS
from ingestion.reports.periods import Period
from orchestration import environment
from orchestration.defs.reports import runner
from orchestration.defs.reports.partitions import daily_partitions, weekly_partitions
from orchestration.defs.warehouse.translator import model_asset_key

# The marts the reports read (ingestion/reports/data.py), as dbt assets.
MART_ASSETS = [model_asset_key(name) for name in MART_TABLES]


REDELIVERY_NOTE = (
    f"'failed' ones are sent again by report_redelivery_sensor ({MAX_RUNS} runs in all at most), "
    "except permanent ones (no retry changes them: fix the address or the relay); those and "
    "'bounced' ones by the next run of this partition (materialise it again, without redeliver); "
    "'unknown' ones (they may have arrived: check first) only by a run with resend"
)


class ReportRunConfig(dg.Config):
    send: bool = True
    resend: bool = False  # mail again even where the ledger says it went out
    # only the deliveries the ledger has as failed and due another run (the redelivery sensor's runs)
    redeliver: bool = False
    # Marts not yet refreshed past the period's end, or a server the run reads not answering: try again
    # this many times, this long apart (the hourly refresh runs at :15, today's KPI partition at :45).
    refresh_retries: int = 4
    refresh_retry_seconds: int = 15 * 60


def _metadata(summary, redeliver: bool = False) -> dict:
    """What the run did, for the materialisation (or its failure). ``redeliver``: a redelivery
    sensor's run, which sends only what the ledger has as due again."""
    reports = list(summary.reports.values())
    preview = next((summary.files[r.slug] for r in reports if r.scope == "all"), None) or next(
        iter(summary.files.values()), None
    )
    metadata = {
        "recipients": dg.MetadataValue.json(
            [
                {
                    "email": o.recipient.email,
                    "scope": o.recipient.scope,
                    "language": o.recipient.language,
                    "status": o.status,
                    "attempts": o.attempts,
                    "error": o.error,
                    "permanent": o.permanent,
                    "message_bytes": o.size_bytes,
                }
                for o in summary.outcomes
            ]
        ),
        "sent": summary.count("sent"),
        "skipped_already_sent": summary.count("skipped"),
        # an earlier run's 'unknown' deliveries: for an operator to settle, no failure of this run
        "awaiting_decision": len(summary.awaiting_decision),
        "failed": len(summary.failed),
        "reports": dg.MetadataValue.md(
            "\n".join(
                [
                    "| report | html | pdf | charts |",
                    "|---|---:|---:|---:|",
                    *(
                        f"| {r.slug} | {len(r.html):,} B | {len(r.pdf):,} B | "
                        f"{sum(len(png) for png in r.charts.values()):,} B |"
                        for r in reports
                    ),
                ]
            )
            if reports
            else "nothing due for re-delivery"
            if redeliver and not summary.outcomes
            else "no report rendered (every recipient had it already)"
        ),
        "largest_message_bytes": max((o.size_bytes or 0 for o in summary.outcomes), default=0),
    }
    if preview:
        metadata["preview"] = dg.MetadataValue.path(str(preview))
        metadata["preview_url"] = dg.MetadataValue.url(preview.as_uri())
    return metadata


# A server the run needs not answering (restarting, briefly unreachable): a later try may find it back. The
# schedule asks for each period once and the redelivery sensor takes up only what the ledger has as
# failed, so a run that failed on this for good would leave the period unreported.
UNREACHABLE = (psycopg.OperationalError, ClickHouseUnreachable, environment.ServiceNotRunning)


def _materialise(
    context: dg.AssetExecutionContext, config: ReportRunConfig, period: Period
) -> dg.MaterializeResult:
    try:
        summary = runner.run(
            period,
            send=config.send,
            resend=config.resend,
            progress=context.log.info,
            require_activity=True,
            require_complete=True,
            only_failed=config.redeliver,
        )
    except runner.Incomplete as incomplete:
        context.log.warning(str(incomplete))
        raise dg.RetryRequested(
            max_retries=config.refresh_retries, seconds_to_wait=config.refresh_retry_seconds
        ) from incomplete
    except UNREACHABLE as error:
        context.log.warning(f"not reachable now, trying again later: {type(error).__name__}: {error}")
        raise dg.RetryRequested(
            max_retries=config.refresh_retries, seconds_to_wait=config.refresh_retry_seconds
        ) from error
    except runner.NoActivity as no_activity:
        raise dg.Failure(description=f"nothing mailed: {no_activity} (has ingestion stopped?)") from None
    metadata = _metadata(summary, config.redeliver)
    for outcome in summary.awaiting_decision:
        context.log.warning(f"{outcome.recipient.email} ({outcome.report_slug}): {outcome.error}")
    if summary.failed:  # every recipient was attempted; now make the failures impossible to miss
        failed = ", ".join(
            f"{o.recipient.email} ({o.status}{', permanent' if o.permanent else ''}: {o.error})"
            for o in summary.failed
        )
        raise dg.Failure(
            description=f"{len(summary.failed)} report(s) not delivered: {failed}. {REDELIVERY_NOTE}",
            metadata=metadata,
        )
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(partitions_def=daily_partitions, deps=MART_ASSETS, group_name="reports", kinds={"email"})
def daily_kpi_reports(context: dg.AssetExecutionContext, config: ReportRunConfig) -> dg.MaterializeResult:
    """Yesterday's KPI report for every manager (their department) and admin (everything)."""
    return _materialise(context, config, Period.daily(date.fromisoformat(context.partition_key)))


@dg.asset(partitions_def=weekly_partitions, deps=MART_ASSETS, group_name="reports", kinds={"email"})
def weekly_kpi_reports(context: dg.AssetExecutionContext, config: ReportRunConfig) -> dg.MaterializeResult:
    """Last week's (Monday to Sunday) KPI report, sent on Monday morning."""
    return _materialise(context, config, Period.weekly(date.fromisoformat(context.partition_key)))
