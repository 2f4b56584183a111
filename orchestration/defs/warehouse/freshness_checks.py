"""Replication freshness as Dagster asset checks: ``replication_fresh`` on each ``raw/<table>``.

``funnelhouse build`` prints ``dbt source freshness`` (freshness.py); the scheduled jobs run no such
command, so a replication that stopped moving would go unnoticed in production. One non-blocking
multi-asset check, run by its own hourly job (jobs.py, schedules.py), judges every raw table as dbt
would: the age of the table's ``loaded_at_query`` (the point in PostgreSQL's time, in UTC, through
which replication copied every change) against the crm source's ``warn_after`` / ``error_after``.
Both come from dbt's manifest, so _crm__sources.yml stays their only definition: the query as
written there (``{{ this.schema }}`` / ``{{ this.identifier }}`` rendered for each table, all tables
in one ClickHouse query), the bounds as dbt parsed them. Under ``warn_after`` the check passes;
beyond it it fails with severity WARN (left to the UI), beyond ``error_after``, or for a table never
replicated, with severity ERROR, which ``failed_check_alert_sensor`` mails (sensors.py). Without a
manifest there are no checks (nor dbt assets): the code location still loads.
"""

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import dagster as dg
import jinja2

from ingestion.replication import schema
from ingestion.replication.connections import clickhouse_client, string_literal
from ingestion.replication.tables import RAW_TABLES
from orchestration.defs.warehouse.dbt_environment import MANIFEST
from orchestration.defs.warehouse.replication_assets import raw_asset_key

SOURCE = "crm"
CHECK_NAME = "replication_fresh"
_HOURS_PER_PERIOD = {"minute": 1 / 60, "hour": 1, "day": 24}
# A table with no state row: ClickHouse's max() of no rows is the type's default, the epoch.
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class FreshnessRule:
    """One crm source's freshness, as dbt parsed it from _crm__sources.yml."""

    identifier: str  # the raw table's name
    loaded_at_query: str  # unrendered: reads {{ this.schema }} and {{ this.identifier }}
    warn_after_hours: float | None
    error_after_hours: float | None

    def loaded_at_sql(self, raw_database: str) -> str:
        """The query as dbt renders it for this source (``this``: the raw table); any other Jinja
        fails here rather than reaching ClickHouse half rendered."""
        template = jinja2.Template(self.loaded_at_query, undefined=jinja2.StrictUndefined)
        return template.render(this=SimpleNamespace(schema=raw_database, identifier=self.identifier))


def _hours(bound: Mapping[str, Any] | None) -> float | None:
    if not bound or bound.get("count") is None or bound.get("period") is None:
        return None
    return bound["count"] * _HOURS_PER_PERIOD[bound["period"]]


def freshness_rules(manifest: Mapping[str, Any]) -> dict[str, FreshnessRule]:
    """The crm sources that declare a freshness (a bound and a loaded_at_query), by table name."""
    rules = {}
    for node in manifest["sources"].values():
        freshness = node.get("freshness") or {}
        warn, error = _hours(freshness.get("warn_after")), _hours(freshness.get("error_after"))
        if node["source_name"] == SOURCE and node.get("loaded_at_query") and (warn, error) != (None, None):
            rules[node["name"]] = FreshnessRule(node["identifier"], node["loaded_at_query"], warn, error)
    return rules


def replicated_through(
    client, raw_database: str, rules: Mapping[str, FreshnessRule]
) -> dict[str, dt.datetime]:
    """Each table's loaded_at (aware, UTC), one query for all; a table never replicated is left out."""
    if not rules or not schema.table_exists(client, raw_database, schema.STATE_TABLE):
        return {}
    query = " union all ".join(
        f"select {string_literal(table)}, ({rule.loaded_at_sql(raw_database).strip()})"
        for table, rule in rules.items()
    )
    through = {}
    for table, loaded_at in client.query(query).result_rows:
        # Declared in UTC (the state table's columns); a naive value is read as UTC too.
        loaded_at = loaded_at and (
            loaded_at.replace(tzinfo=dt.UTC) if loaded_at.tzinfo is None else loaded_at.astimezone(dt.UTC)
        )
        if loaded_at and loaded_at > _EPOCH:
            through[table] = loaded_at
    return through


def _bounds_text(rule: FreshnessRule) -> str:
    bounds = [
        f"{kind} after {hours:g} h"
        for kind, hours in (("warn", rule.warn_after_hours), ("error", rule.error_after_hours))
        if hours is not None
    ]
    return ", ".join(bounds)


def judge(
    table: str, rule: FreshnessRule, loaded_at: dt.datetime | None, now: dt.datetime
) -> dg.AssetCheckResult:
    """dbt's verdict (an age beyond a bound, not at it), as a check result of ``raw/<table>``."""
    metadata = {"warn_after_hours": rule.warn_after_hours, "error_after_hours": rule.error_after_hours}
    if loaded_at is None:
        passed, severity = False, dg.AssetCheckSeverity.ERROR
        description = f"raw.{table} was never replicated ({_bounds_text(rule)})"
        metadata.update(age_hours=None, replicated_through=None)
    else:
        age = (now - loaded_at).total_seconds() / 3600
        error = rule.error_after_hours is not None and age > rule.error_after_hours
        warn = rule.warn_after_hours is not None and age > rule.warn_after_hours
        passed = not (error or warn)
        severity = dg.AssetCheckSeverity.ERROR if error else dg.AssetCheckSeverity.WARN
        description = (
            f"raw.{table} holds PostgreSQL's changes up to {loaded_at:%Y-%m-%d %H:%M} UTC, "
            f"{age:.1f} h ago ({_bounds_text(rule)})"
        )
        metadata.update(age_hours=round(age, 2), replicated_through=loaded_at.isoformat())
    return dg.AssetCheckResult(
        asset_key=raw_asset_key(table),
        check_name=CHECK_NAME,
        passed=passed,
        severity=severity,
        metadata=metadata,
        description=description,
    )


def build_freshness_checks(rules: Mapping[str, FreshnessRule]) -> list[dg.AssetChecksDefinition]:
    """One multi-asset check with a ``replication_fresh`` spec per replicated table with a rule."""
    tables = [table.name for table in RAW_TABLES if table.name in rules]
    if not tables:
        return []
    specs = [
        dg.AssetCheckSpec(
            CHECK_NAME,
            asset=raw_asset_key(table),
            blocking=False,
            description=f"Replication of {table} is not behind PostgreSQL by more than {_bounds_text(rules[table])}.",
        )
        for table in tables
    ]

    @dg.multi_asset_check(specs=specs, name="replication_freshness", can_subset=True)
    def replication_freshness(context: dg.AssetCheckExecutionContext) -> Iterable[dg.AssetCheckResult]:
        selected = {key.asset_key.path[-1] for key in context.selected_asset_check_keys}
        chosen = {table: rules[table] for table in tables if table in selected}
        through = replicated_through(clickhouse_client(), schema.raw_database(), chosen)
        now = dt.datetime.now(dt.UTC)
        for table, rule in chosen.items():
            yield judge(table, rule, through.get(table), now)

    return [replication_freshness]


replication_freshness_checks = build_freshness_checks(
    freshness_rules(json.loads(MANIFEST.read_text())) if MANIFEST.exists() else {}
)
