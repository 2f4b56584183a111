"""One report run wired to this environment's services: what both the Dagster assets and
``funnelhouse report`` call (no Dagster import here, so the command stays usable without it)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from clickhouse_connect.driver.exceptions import DatabaseError

from devstack import state
from ingestion.replication import schema
from ingestion.reports import addresses, data, delivery, pipeline
from ingestion.reports.ledger import Ledger
from ingestion.reports.periods import Period
from ingestion.reports.recipients import (
    ALL_DEPARTMENTS,
    DEFAULT_LANGUAGE,
    Recipient,
    check_email,
    check_language,
    check_scope,
    resolve,
)
from orchestration import environment
from orchestration.defs.warehouse import refresh_state
from orchestration.defs.warehouse.build import marts_schema
from orchestration.defs.warehouse.dbt_environment import REPO_ROOT


def marts_database() -> str:
    """The ClickHouse database of the dbt marts: ``FUNNELHOUSE_MARTS_DATABASE``, else the one the
    builds write (dbt_project.yml's schema ``marts``, behind ``FUNNELHOUSE_SCHEMA_PREFIX`` if set)."""
    return os.environ.get("FUNNELHOUSE_MARTS_DATABASE") or marts_schema()


class NoMarts(RuntimeError):
    """ClickHouse has no marts database: nothing was ever built on this stack."""


UNKNOWN_DATABASE = 81  # ClickHouse's error code for a database that does not exist


def connect_to_marts(database: str | None = None):
    """A ClickHouse client whose database is the marts' (``marts_database()`` unless given): what
    ``funnelhouse report`` and ``funnelhouse marts`` read. NoMarts, saying to build them, if ClickHouse
    has no such database (a stack never built), rather than the driver's UNKNOWN_DATABASE error."""
    database = database or marts_database()
    try:
        return data.connect(environment.clickhouse_settings(), database=database)
    except DatabaseError as error:
        if error.code != UNKNOWN_DATABASE:
            raise
        raise NoMarts(f"no marts in {database}: run `funnelhouse build` first") from None


def default_out_dir() -> Path:
    return Path(os.environ.get("FUNNELHOUSE_REPORT_DIR") or state.home() / "reports")


def latest_data_day():
    """The newest day with any activity in the KPI mart: what ``funnelhouse report`` reports on when no
    date is given. Not the mart's newest row: it is on a date spine that runs to the build date."""
    client = connect_to_marts()
    try:
        return data.MartReader(client, marts_database()).latest_kpi_day()
    finally:
        client.close()


class NoActivity(ValueError):
    """The period has no activity at all in the marts: its report would be all zeros."""


def check_activity(reader: data.MartReader, period: Period) -> None:
    """Refuse a period without any activity (before the data starts, after it ends, or a gap in it)."""
    if reader.has_activity(period.start, period.end):
        return
    what = period.start.isoformat() if period.kind == "daily" else f"{period.start} .. {period.end}"
    days = reader.activity_range()
    raise NoActivity(
        f"no activity in the marts on {what}: "
        + (
            f"days with activity run from {days[0]} to {days[1]}"
            if days
            else "the KPI mart has none at all (run `funnelhouse build` first)"
        )
    )


class Incomplete(RuntimeError):
    """The marts do not hold every change up to the period's end: its report would miss activity."""


def period_end(period: Period) -> dt.datetime:
    """When the period's last KPI day ends (naive UTC, as refresh marks are: KPI days are UTC days)."""
    return dt.datetime.combine(period.end + dt.timedelta(days=1), dt.time())


def check_complete(client, period: Period) -> dt.datetime:
    """The time up to which the marts hold every change (``refresh_state``: the earlier of the refresh
    mark and the bound of the replicated data it built, which replication took before dbt started; of
    the models or of the KPI mart, which Dagster builds in a job of its own), if it is at or after
    the period's end; raise Incomplete otherwise. A report from marts short of the period's end would
    state a day's or week's totals without its last minutes or hours, and nothing would ever correct
    the mail."""
    refresh, of_what = refresh_state.reports_refresh(client, schema.raw_database(), marts_database())
    # What lags: every model, or the KPI mart alone (its Dagster job failed or has not run since).
    subject = "the marts were" if of_what == "the marts" else f"{of_what} was"
    ended = period_end(period)
    if refresh is None:
        raise Incomplete(
            f"no refresh of {of_what} ({marts_database()}) is recorded: run `funnelhouse build` "
            "or the warehouse Dagster jobs first"
        )
    through = refresh.complete_through
    if through < ended:
        built_from = (
            ""
            if through == refresh.mark
            else f" from the changes replicated before {through:%Y-%m-%d %H:%M:%S} UTC"
        )
        raise Incomplete(
            f"{subject} last refreshed at {refresh.mark:%Y-%m-%d %H:%M} UTC{built_from}, before {period.key} "
            f"ended ({ended:%Y-%m-%d %H:%M} UTC): activity after that is not in its report. The "
            "hourly refresh catches up"
        )
    return through


def _recorded_definitions(client) -> dict[str, str]:
    """The model definitions the builds of the marts recorded as built, as they are now."""
    return refresh_state.recorded_definitions(client, schema.raw_database(), marts_database())


def _built_from_other_definitions(client, read_from: Mapping[str, str]) -> bool:
    """Whether the marts were built from other model definitions than this version's (a deploy the next
    refresh applies), or by builds that recorded none: those a run read (``read_from``: recorded before
    its first read), or those recorded now. Not now alone: the refresh that applies a deploy may record
    this version's definitions between a query of the old marts failing and this check."""
    now = refresh_state.definition_changes(client, schema.raw_database(), marts_database(), REPO_ROOT)
    return any(
        changes.first_record or bool(changes.changed)
        for changes in (dataclasses.replace(now, recorded=read_from), now)
    )


class NoRecipients(RuntimeError):
    """Nobody to report to: no active manager/admin and no recipients file entry."""


class ScopeNeeded(ValueError):
    """An address that is not a recipient was given no scope."""


class ScopeNotTheRecipients(ValueError):
    """A recipient's address was given another scope than their own."""


def only_to(
    address: str,
    everyone: list[Recipient],
    scope: str | None,
    language: str,
    smtputf8: bool | None = None,
) -> list[Recipient]:
    """``--to``: that one address, with its own scope if it is a known recipient, else the given one.
    A known recipient given another scope is refused: they get their own report (the ledger knows
    a delivery by address and scope, so another scope's would be a delivery of its own).

    An address nobody configured gets no scope by default: a mistyped one would otherwise receive
    every department's numbers (each employee's deposits and ranking). ``smtputf8``: whether the
    server it is to be sent through offers SMTPUTF8 (None: not sending, or not known)."""
    # refused now: it would only fail at sending
    address = check_email(address.strip().lower(), smtputf8)
    if scope is not None:
        check_scope(scope)
    check_language(language)
    if known := [r for r in everyone if r.email == address]:
        if scope is None or (known := [r for r in known if r.scope == scope]):
            return known
        theirs = ", ".join(sorted({r.scope for r in everyone if r.email == address}))
        raise ScopeNotTheRecipients(
            f"{address} is a report recipient with scope {theirs}, not {scope!r}: drop --scope "
            "(they get the report of their own scope)"
        )
    if scope is None:
        raise ScopeNeeded(
            f"{address} is not a report recipient (active managers/admins, or the recipients file): "
            f"say which report it gets with --scope (a department, or {ALL_DEPARTMENTS!r})"
        )
    return [Recipient(address, address, scope, language, role="ad hoc")]


def _not_scheduled(recipients: list[Recipient]) -> list[str]:
    """The ``--to`` addresses no scheduled run mails: those that are no configured recipient (``only_to``'s
    "ad hoc"). The scheduled run mails the configured recipients only."""
    return [r.email for r in recipients if r.role == "ad hoc"]


def _complete_one_not_scheduled(recipients: list[Recipient], period: Period) -> str | None:
    """What to do to mail the complete report to the addresses no scheduled run mails
    (:func:`_not_scheduled`), when they get a preliminary one; None if there are none. This command run
    again after the period sends the complete report (the ledger allows one after a preliminary one)."""
    ad_hoc = _not_scheduled(recipients)
    if not ad_hoc:
        return None
    return (
        f"{period.key} goes out preliminary to {', '.join(ad_hoc)}; its complete report goes out by itself "
        "only to the configured recipients (active managers/admins, the recipients file): run this command "
        f"again once the marts hold the whole of {period.key} to send the complete one to that address"
    )


def run(
    period: Period,
    *,
    send: bool,
    resend: bool = False,
    to: str | None = None,
    scope: str | None = None,
    language: str = DEFAULT_LANGUAGE,
    out_dir: Path | None = None,
    progress: Callable[[str], None] = print,
    require_activity: bool = False,
    require_complete: bool = False,
    only_failed: bool = False,
) -> pipeline.RunSummary:
    """Render (and send) the period's reports. ``require_activity``: raise NoActivity rather than render a
    period without any activity in the marts. ``require_complete``: raise Incomplete rather than render
    a period from marts short of its end (:func:`check_complete`; scheduled runs; ``funnelhouse report`` only
    warns, through ``progress``). ``only_failed``: send only to the recipients whose delivery the
    ledger has as failed, not permanently, and due another run (``Ledger.failed``): the redelivery
    sensor's runs; any other run also tries the permanent failures (after a fixed address or relay). An
    address no longer among the recipients (a manager who left, a ``--to`` address) is not mailed
    again by itself."""
    dsn = environment.pg_dsn()
    recipients = resolve(dsn)
    smtp = environment.smtp_settings() if send else None
    if to:
        # An address with a non-ASCII local part goes only through a server offering SMTPUTF8: the
        # rule every recipient's delivery follows, asked of the server before anything is rendered.
        smtputf8 = delivery.offers_smtputf8(smtp) if smtp and addresses.needs_smtputf8(to) else None
        recipients = only_to(to, recipients, scope, language, smtputf8)
    if not recipients:
        raise NoRecipients(
            "no report recipients: no active manager/admin in employees and no config file entries"
        )
    if only_failed:
        failed = Ledger(dsn).failed(period)
        recipients = [r for r in recipients if (r.email, r.scope) in failed]
    client = connect_to_marts()
    try:
        # What the marts were built from as this run reads them: a missing column is retried by it.
        read_from = _recorded_definitions(client)
        reader = data.MartReader(client, marts_database())
        if require_activity:
            check_activity(reader, period)
        complete = True
        try:
            check_complete(client, period)
        except Incomplete as incomplete:
            if require_complete:
                raise
            progress(f"warning: {incomplete}")
            if send and (note := _complete_one_not_scheduled(recipients, period)):
                progress(f"warning: {note}")
            complete = False  # sent as a preliminary report (the ledger lets a complete one follow)
        return pipeline.produce_reports(
            period,
            recipients,
            reader,
            sender=smtp.sender if smtp else environment.report_sender(),
            pg_dsn=dsn,
            smtp_settings=smtp,
            ledger=Ledger(dsn, complete=complete) if send else None,
            out_dir=out_dir or default_out_dir(),
            resend=resend,
            retry_policy=delivery.DEFAULT_RETRY,
            progress=progress,
            preliminary=not complete,
            # A preliminary report says whether its complete one follows by itself, as the warning does.
            # only_to gives an address nobody configured alone, so this holds for every recipient of the run.
            complete_follows=not _not_scheduled(recipients),
        )
    except data.MartsBehindCode as behind:
        # Marts built before a deploy: retried like marts not yet refreshed, not failed for good. Marts
        # built from this version's definitions lack nothing it defines: the query itself is wrong, which
        # no refresh mends, so that error stands.
        if not _built_from_other_definitions(client, read_from):
            raise behind.__cause__ from None
        raise Incomplete(str(behind)) from behind
    finally:
        client.close()
