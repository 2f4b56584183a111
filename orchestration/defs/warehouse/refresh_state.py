"""Which raw tables changed since the dbt models were last refreshed.

Replication stamps each table's last change (``changed_at`` in ``raw._replication_state``); a
successful build records the time it started (``raw._model_refreshes``, one row per set of models,
keyed by their marts schema so test builds with a schema prefix keep their own). The tables changed
after that mark are what the next incremental build must carry downstream. Reading the mark rather
than only the current replication run's result means a failed dbt run, or replication done by
another process (the Dagster raw assets), is caught up by the next build instead of being lost.

Both timestamps are naive UTC from :func:`ingestion.replication.replicate.utc_now`, stored in
columns declared in UTC (so they read the same on a server in another zone, also after it restarts:
``schema.declared_type``). A table's ``changed_at`` is written after its rows are visible, so a build
that started later has read them.

The KPI mart has a mark of its own (same table, key ``<marts schema>.mart_kpi_employee_daily``): in
Dagster it is built by its own daily-partitioned job from the facts the hourly refresh built, so the
other models' mark says nothing of it. ``funnelhouse build`` builds it with every other model: it
carries the changes made since the earlier of the two marks (the KPI mart rebuilds the months changed
since its own) and moves both. The Dagster KPI op records the models' mark it read before building
(the facts it was built from). Reports read the earlier of the two (:func:`reports_refresh`).

What a deploy changed is kept beside the marks: ``raw._model_definitions`` holds, per marts schema
(the same keys) and model, the definition (model_definitions.py: its file's checksum and its folder) of the
last successful build that applied it: every changed definition and its downstream built, or a
complete build. The next build compares the model files with it (:func:`definition_changes`), so a
deploy is applied by the next hourly build whichever process or machine runs it. Beside the
models (and the seeds), under reserved names, the project-wide definition (macros, YAML, docs,
``dbt_project.yml``, the profile's settings, never its secrets): one row for the models built
together, and one of its own for the KPI mart, which Dagster builds apart (model_definitions.py).

What the incremental models read is bounded differently: by each table's committed watermark
(``replicated_through_ms``), read once here before dbt starts and handed to every model of the run
through ``FUNNELHOUSE_REPLICATED_THROUGH`` (dbt_project/macros/watermarks.sql), so rows a concurrent
replication is still committing are left whole to the next build instead of being half read.

So the mark is not what the marts hold: replication copies the changes made before its bound, taken
when it started (ingestion/replication/cursor.py), and dbt starts later (seconds after it in a
``funnelhouse build``, a step or more later in a Dagster run). A build replicated up to 23:59:50 whose
dbt starts at 00:00:05 holds nothing of the day's last ten seconds. Beside the mark each record keeps
its data bound (``data_through``): the earliest replication bound, in UTC, of the raw tables as read
in the same read as the watermarks handed to dbt (:func:`raw_bounds`). Whatever claims that the marts
hold every change up to a time (the reports waiting for their period's end, ``funnelhouse status``)
takes the earlier of the two (:attr:`Refresh.complete_through`); what changed since the last build is
still counted from the mark. A record without a data bound (written by an older version, or a test
recording a mark by hand) falls back to the mark.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ingestion.replication import schema
from ingestion.replication.connections import as_utc
from ingestion.replication.replicate import utc_now
from ingestion.replication.tables import BY_NAME as REPLICATED_TABLES
from orchestration.defs.warehouse.dbt_plan import DbtPlan
from orchestration.defs.warehouse.model_definitions import DefinitionChanges, current_definitions

REFRESH_TABLE = "_model_refreshes"
DEFINITIONS_TABLE = "_model_definitions"
KPI_MART = "mart_kpi_employee_daily"
REPLICATED_THROUGH_ENV = "FUNNELHOUSE_REPLICATED_THROUGH"
DATA_BOUND_COLUMN = "data_through"


@dataclass(frozen=True)
class Refresh:
    """One set of models' last successful build: its mark (when its dbt run started: what the next
    build counts the changed tables from) and its data bound (every PostgreSQL change made before it
    is in the models; None when not recorded: a record of an older version)."""

    mark: dt.datetime
    data_through: dt.datetime | None = None

    @property
    def complete_through(self) -> dt.datetime:
        """The models hold every change made before this: the earlier of the mark and the data bound."""
        return self.mark if self.data_through is None else min(self.mark, self.data_through)


def _ensure_table(client, raw_database: str) -> None:
    schema.create_database(client, raw_database)
    client.command(
        f"""create table if not exists `{raw_database}`.{REFRESH_TABLE} (
            marts_schema String,
            refreshed_through DateTime64(6, 'UTC'),
            {DATA_BOUND_COLUMN} Nullable(DateTime64(6, 'UTC')),
            recorded_at DateTime64(6, 'UTC') default now64(6)
        ) engine = ReplacingMergeTree(recorded_at) order by marts_schema"""
    )
    # A table of a version before the data bound: its records read as without one (the mark alone).
    client.command(
        f"alter table `{raw_database}`.{REFRESH_TABLE} "
        f"add column if not exists {DATA_BOUND_COLUMN} Nullable(DateTime64(6, 'UTC'))"
    )
    schema.declare_timestamps_in_utc(client, raw_database, REFRESH_TABLE)


def last_refresh(client, raw_database: str, marts_schema: str) -> dt.datetime | None:
    """The models' refresh mark (None: never recorded): what changed since is what the next build runs."""
    refresh = _recorded_refresh(client, raw_database, marts_schema)
    return refresh.mark if refresh else None


def models_refresh(client, raw_database: str, marts_schema: str) -> Refresh | None:
    """The models' last refresh, mark and data bound (None: never recorded)."""
    return _recorded_refresh(client, raw_database, marts_schema)


def _recorded_refresh(client, raw_database: str, key: str) -> Refresh | None:
    _ensure_table(client, raw_database)
    rows = _rows_of_schema(
        client, raw_database, REFRESH_TABLE, f"refreshed_through, {DATA_BOUND_COLUMN}", key
    )
    return Refresh(*rows[0]) if rows else None


def _rows_of_schema(client, raw_database: str, table: str, columns: str, marts_schema: str) -> list[tuple]:
    """``columns`` of the rows one of the state tables (keyed by marts schema) keeps for ``marts_schema``."""
    return client.query(
        f"select {columns} from `{raw_database}`.{table} final where marts_schema = {{marts_schema:String}}",
        parameters={"marts_schema": marts_schema},
    ).result_rows


def kpi_mark_key(marts_schema: str) -> str:
    return f"{marts_schema}.{KPI_MART}"


def last_kpi_refresh(client, raw_database: str, marts_schema: str) -> dt.datetime | None:
    """The models' refresh mark the KPI mart was last built from (None: never recorded)."""
    refresh = _recorded_refresh(client, raw_database, kpi_mark_key(marts_schema))
    return refresh.mark if refresh else None


def reports_refresh(client, raw_database: str, marts_schema: str) -> tuple[Refresh | None, str]:
    """(refresh, what it is of) whose ``complete_through`` the marts reports read hold every change up
    to: of the models or of the KPI mart, whichever holds less, and None when either was never
    recorded."""
    models = _recorded_refresh(client, raw_database, marts_schema)
    kpi = _recorded_refresh(client, raw_database, kpi_mark_key(marts_schema))
    if models is None or (kpi is not None and kpi.complete_through >= models.complete_through):
        return models, "the marts"
    return kpi, KPI_MART


def recorded_refreshes(client, raw_database: str, marts_schema: str) -> tuple[Refresh | None, Refresh | None]:
    """(the models' refresh, the KPI mart's), reading only (``funnelhouse status``): None for one never
    recorded, both before the first build; without a data bound in a table of an older version."""
    if not int(client.command(f"exists table `{raw_database}`.{REFRESH_TABLE}")):
        return None, None
    has_data_bound = client.query(
        "select count() from system.columns"
        " where database = {database:String} and table = {table:String} and name = {column:String}",
        parameters={"database": raw_database, "table": REFRESH_TABLE, "column": DATA_BOUND_COLUMN},
    ).result_rows[0][0]
    data_bound = DATA_BOUND_COLUMN if has_data_bound else "null"
    keys = [marts_schema, kpi_mark_key(marts_schema)]
    rows = {
        key: Refresh(mark, data_through)
        for key, mark, data_through in client.query(
            f"select marts_schema, refreshed_through, {data_bound} from `{raw_database}`.{REFRESH_TABLE} final "
            "where marts_schema in {keys:Array(String)}",
            parameters={"keys": keys},
        ).result_rows
    }
    return rows.get(keys[0]), rows.get(keys[1])


def recorded_marks(
    client, raw_database: str, marts_schema: str
) -> tuple[dt.datetime | None, dt.datetime | None]:
    """(the models' mark, the KPI mart's mark), reading only: None for a mark never recorded, both
    before the first build."""
    models, kpi = recorded_refreshes(client, raw_database, marts_schema)
    return (models.mark if models else None), (kpi.mark if kpi else None)


def tables_changed_since_refresh(
    client, raw_database: str, marts_schema: str, *, kpi_mart: bool = False
) -> list[str] | None:
    """Raw tables changed after the last successful refresh, or None if the models were never built.

    ``kpi_mart`` (a run that builds the KPI mart with the other models): after the earlier of the two
    marks, so that changes the Dagster hourly job built into the facts but no KPI run has taken up yet
    reach the KPI mart too (the mart finds its changed months by its own mark the same way)."""
    refreshed_through = last_refresh(client, raw_database, marts_schema)
    if refreshed_through is None:
        return None
    kpi_refreshed_through = last_kpi_refresh(client, raw_database, marts_schema) if kpi_mart else None
    if kpi_refreshed_through is not None:
        refreshed_through = min(refreshed_through, kpi_refreshed_through)
    rows = client.query(
        f"select table_name from `{raw_database}`.{schema.STATE_TABLE} final "
        "where changed_at > {refreshed_through:DateTime64(6, 'UTC')} order by table_name",
        parameters={"refreshed_through": refreshed_through},
    ).result_rows
    return [table for (table,) in rows]


def record_refresh(
    client,
    raw_database: str,
    marts_schema: str,
    started_at: dt.datetime,
    *,
    kpi_mart: bool = True,
    data_through: dt.datetime | None = None,
) -> None:
    """Mark every change stamped before ``started_at`` (when the successful dbt run began) as built:
    in every model, and in the KPI mart too unless ``kpi_mart`` is False (a run that left it out).
    ``data_through``: the data bound of what that run read (:func:`raw_bounds`; None: not known)."""
    keys = [marts_schema] + ([kpi_mark_key(marts_schema)] if kpi_mart else [])
    _insert_marks(client, raw_database, keys, Refresh(started_at, data_through))


def record_build(
    client,
    raw_database: str,
    marts_schema: str,
    through: dt.datetime,
    definitions: Mapping[str, str],
    *,
    kpi_mart: bool = True,
    data_through: dt.datetime | None = None,
) -> None:
    """A successful build of every change: the ``definitions`` it applied (:func:`record_definitions`)
    and its mark (:func:`record_refresh`). Two independent records: the next build compares the model
    files with the definitions, not with the mark, so a failure between the two inserts loses neither."""
    record_definitions(client, raw_database, marts_schema, definitions)
    record_refresh(client, raw_database, marts_schema, through, kpi_mart=kpi_mart, data_through=data_through)


def record_run(
    client,
    raw_database: str,
    marts_schema: str,
    plan: DbtPlan,
    through: dt.datetime,
    *,
    kpi_mart: bool = True,
    data_through: dt.datetime | None = None,
) -> bool:
    """The one rule of every build path (``funnelhouse build``, Dagster's models op) after a successful
    run of ``plan``, or a plan with nothing to run: the mark ``through`` and the definitions the plan
    applied (:func:`record_build`) only when the run covered every change
    (:attr:`DbtPlan.covers_all_changes`: every changed model and its downstream run, or every model).
    A run of some models (``--select``, a Dagster run of some assets: :meth:`DbtPlan.of_some_models`)
    records nothing, so the next build carries every change again. Whether it recorded."""
    if not plan.covers_all_changes:
        return False
    record_build(
        client,
        raw_database,
        marts_schema,
        through,
        plan.definitions.to_record(),
        kpi_mart=kpi_mart,
        data_through=data_through,
    )
    return True


def record_kpi_refresh(
    client,
    raw_database: str,
    marts_schema: str,
    built_from: dt.datetime,
    *,
    data_through: dt.datetime | None = None,
) -> None:
    """The KPI mart was built from models holding every change stamped before ``built_from``: the
    models' mark, with their data bound (``data_through``) when recorded."""
    _insert_marks(client, raw_database, [kpi_mark_key(marts_schema)], Refresh(built_from, data_through))


def _insert_marks(client, raw_database: str, keys: list[str], refresh: Refresh) -> None:
    _ensure_table(client, raw_database)
    recorded_at = utc_now()
    client.insert(
        f"{raw_database}.{REFRESH_TABLE}",
        [[key, as_utc(refresh.mark), as_utc(refresh.data_through), as_utc(recorded_at)] for key in keys],
        column_names=["marts_schema", "refreshed_through", DATA_BOUND_COLUMN, "recorded_at"],
    )


def _ensure_definitions_table(client, raw_database: str) -> None:
    schema.create_database(client, raw_database)
    client.command(
        f"""create table if not exists `{raw_database}`.{DEFINITIONS_TABLE} (
            marts_schema String,
            model String,
            checksum String,
            recorded_at DateTime64(6, 'UTC') default now64(6)
        ) engine = ReplacingMergeTree(recorded_at) order by (marts_schema, model)"""
    )


def recorded_definitions(client, raw_database: str, marts_schema: str) -> dict[str, str]:
    """Model name (or a project-wide row's reserved name) -> the definition the builds of these
    models last applied."""
    _ensure_definitions_table(client, raw_database)
    return dict(_rows_of_schema(client, raw_database, DEFINITIONS_TABLE, "model, checksum", marts_schema))


def definition_changes(client, raw_database: str, marts_schema: str, project_dir: Path) -> DefinitionChanges:
    """The definitions of the dbt project in ``project_dir`` against those recorded as built; the KPI
    mart keeps a project-wide record of its own (Dagster builds it apart from the other models)."""
    return DefinitionChanges(
        current_definitions(project_dir),
        recorded_definitions(client, raw_database, marts_schema),
        apart=frozenset({KPI_MART}),
    )


def record_definitions(client, raw_database: str, marts_schema: str, checksums: Mapping[str, str]) -> None:
    """These definitions (model -> checksum, as ``DefinitionChanges.to_record`` has them) are built,
    each with everything downstream of it."""
    if not checksums:
        return
    _ensure_definitions_table(client, raw_database)
    recorded_at = as_utc(utc_now())
    client.insert(
        f"{raw_database}.{DEFINITIONS_TABLE}",
        [[marts_schema, model, checksum, recorded_at] for model, checksum in sorted(checksums.items())],
        column_names=["marts_schema", "model", "checksum", "recorded_at"],
    )


@dataclass(frozen=True)
class RawBounds:
    """Raw as one dbt run of a build reads it, from one read of the replication state before dbt starts.

    ``watermarks``: each table's committed watermark (Unix ms of its last load, ``_replicated_at``):
    what the incremental models read up to. ``data_through``: the earliest replication bound among
    the tables replication keeps (naive UTC): every PostgreSQL change made before it is in raw and
    under those watermarks, so a successful run of every change holds it (None: no table was ever
    replicated). The bounds are ``rows_cursor`` and ``deletions_cursor`` (PostgreSQL's wall clock in the
    zone rows are stamped in, moved back by ``cursor_utc_offset_seconds`` to UTC), not the watermarks:
    those are the load's own time, after the bound. A table with no state row was never replicated:
    the build read nothing of it, and it holds nothing back (its first replication is a change the
    next build carries). Rows of a table replication no longer keeps are left out: their bound would
    stop moving and hold the reports back for good."""

    watermarks: dict[str, int]
    data_through: dt.datetime | None

    def environment(self) -> dict[str, str]:
        """What a dbt process of a build needs to bound its incremental reads."""
        return {REPLICATED_THROUGH_ENV: json.dumps(self.watermarks, sort_keys=True)}


def raw_bounds(client, raw_database: str) -> RawBounds:
    """The committed watermarks and the data bound of raw as it is now (read before dbt starts)."""
    schema.create_database(client, raw_database)
    rows = client.query(
        "select table_name, replicated_through_ms,"
        " least(rows_cursor, deletions_cursor) - toIntervalSecond(cursor_utc_offset_seconds)"
        f" from `{raw_database}`.{schema.STATE_TABLE} final"
    ).result_rows
    bounds = [
        copied_through.replace(tzinfo=None) for table, _, copied_through in rows if table in REPLICATED_TABLES
    ]
    return RawBounds(
        watermarks={table: through_ms for table, through_ms, _ in rows if through_ms is not None},
        data_through=min(bounds, default=None),
    )


def watermark_environment(client, raw_database: str) -> dict[str, str]:
    """What a dbt process of a build needs to bound its incremental reads (read before it starts)."""
    return raw_bounds(client, raw_database).environment()
