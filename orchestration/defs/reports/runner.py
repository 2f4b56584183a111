"""One report run wired to this environment's services: what both the Dagster assets and
``funnelhouse report`` call (no Dagster import here, so the command stays usable without it)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from devstack import state
from ingestion.reports import data, delivery, pipeline
from ingestion.reports.ledger import Ledger
from ingestion.reports.periods import Period
from ingestion.reports.recipients import ALL_DEPARTMENTS, DEFAULT_LANGUAGE, Recipient, resolve
from orchestration import environment


def marts_database() -> str:
    """The ClickHouse database of the dbt marts (dbt_project.yml: schema ``marts``)."""
    return os.environ.get("FUNNELHOUSE_MARTS_DATABASE", data.DEFAULT_DATABASE)


def default_out_dir() -> Path:
    return Path(os.environ.get("FUNNELHOUSE_REPORT_DIR") or state.home() / "reports")


def latest_data_day():
    """The newest day in the KPI mart: what ``funnelhouse report`` reports on when no date is given."""
    client = data.connect(environment.clickhouse_settings(), database=marts_database())
    try:
        return data.MartReader(client, marts_database()).latest_kpi_day()
    finally:
        client.close()


class ScopeNeeded(ValueError):
    """An address that is not a recipient was given no scope."""


def only_to(address: str, everyone: list[Recipient], scope: str | None, language: str) -> list[Recipient]:
    """``--to``: that one address, with its own scope if it is a known recipient, else the given one.

    An address nobody configured gets no scope by default: a mistyped one would otherwise receive
    every department's numbers (each employee's deposits and ranking)."""
    address = address.strip().lower()
    if known := [r for r in everyone if r.email == address]:
        return known
    if scope is None:
        raise ScopeNeeded(
            f"{address} is not a report recipient (active managers/admins, or the recipients file): "
            f"say which report it gets with --scope (a department, or {ALL_DEPARTMENTS!r})"
        )
    return [Recipient(address, address, scope, language, role="ad hoc")]


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
) -> pipeline.RunSummary:
    dsn = environment.pg_dsn()
    recipients = resolve(dsn)
    if to:
        recipients = only_to(to, recipients, scope, language)
    if not recipients:
        raise RuntimeError(
            "no report recipients: no active manager/admin in employees and no config file entries"
        )
    client = data.connect(environment.clickhouse_settings(), database=marts_database())
    try:
        smtp = environment.smtp_settings() if send else None
        return pipeline.produce_reports(
            period,
            recipients,
            data.MartReader(client, marts_database()),
            sender=smtp.sender
            if smtp
            else os.environ.get("FUNNELHOUSE_REPORT_FROM", "funnelhouse-reports@localhost"),
            pg_dsn=dsn,
            smtp_settings=smtp,
            ledger=Ledger(dsn) if send else None,
            out_dir=out_dir or default_out_dir(),
            resend=resend,
            retry_policy=delivery.DEFAULT_RETRY,
            progress=progress,
        )
    finally:
        client.close()
