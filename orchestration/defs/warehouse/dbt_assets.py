"""dbt models as Dagster assets; dbt tests stream back as asset checks.

Two asset definitions over one manifest: the daily-partitioned KPI mart (a partition run or a
backfill passes its date range to dbt, which rebuilds the months holding it) and everything else.
Both hand dbt their run's values through its environment, not ``--vars``: dbt re-parses the whole
project when --vars differ from its last parse (several seconds a run), not when an environment
variable read only at execution time does.
The hourly job runs the second incrementally (``dbt run`` of the models downstream of the raw
tables changed since the last build, of the models a deploy changed and, once the UTC day rolled
over since the last build, of the date-relative models, with the same plan as ``funnelhouse build``;
nothing when none of these; see dbt_plan.py), the nightly job builds it whole with every test. (The
KPI mart, downstream of the date spine, is not this op's: its daily partitions rebuild the current
days.) A run of every model of it records the model definitions it applied beside its refresh mark
(refresh_state.py), the KPI mart's as stale when they reach it. The KPI op applies the KPI mart's:
when its definition, the project-wide one or one it reads (recorded stale) changed since it was
built, its run is a ``--full-refresh`` of the mart, and records the mart's definitions after it
(never the other models').
"""

import datetime as dt
import json
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import dagster as dg
from dagster_dbt import DagsterDbtCliRuntimeError, DbtCliInvocation, DbtCliResource, dbt_assets

from ingestion.replication import schema
from ingestion.replication.connections import clickhouse_client
from ingestion.replication.replicate import utc_now
from orchestration import environment
from orchestration.defs.warehouse import refresh_state, writers
from orchestration.defs.warehouse.build import marts_schema
from orchestration.defs.warehouse.build_date import pinned_build_date
from orchestration.defs.warehouse.dbt_environment import (
    DAGSTER_INDIRECT_SELECTION,
    MANIFEST,
    dagster_dbt_folder,
    export_dbt_env,
    kpi_window_environment,
    prune_run_results,
    scoped_environment,
)
from orchestration.defs.warehouse.dbt_graph import models_downstream_of
from orchestration.defs.warehouse.dbt_plan import DbtPlan, complete_plan, incremental_plan
from orchestration.defs.warehouse.replication_assets import WAREHOUSE_POOL
from orchestration.defs.warehouse.resources import dbt_project
from orchestration.defs.warehouse.translator import WarehouseTranslator

KPI_MART = refresh_state.KPI_MART
MODELS_OP = "warehouse_dbt_models"  # the dbt op of every other model (the nightly job's run config names it)
KPI_OP = "warehouse_dbt_kpi_daily"  # the KPI mart's dbt op (run config names it)
KPI_PARTITIONS = dg.DailyPartitionsDefinition(start_date=environment.kpi_first_day(), end_offset=1)
# For what a retry can mend (the writer lock not freed in time, the server briefly away, a query
# killed for memory): never for a failed data or unit test or a model's refused SQL (``stream_dbt``).
RETRY = dg.RetryPolicy(max_retries=2, delay=60)
_log = logging.getLogger(__name__)


class DbtBuildConfig(dg.Config):
    full_refresh: bool = False


def _models_plan(config: DbtBuildConfig, client, project_dir: Path) -> DbtPlan:
    """The plan of the models' op (every model but the KPI mart): the same decision as
    ``funnelhouse build`` (dbt_plan.py), limited to the definitions of this op's models. The KPI mart,
    when downstream of a definition it applies, is left to the KPI op as stale."""
    manifest = json.loads(dbt_project.manifest_path.read_text())
    op_models = {
        node["name"]
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["name"] != KPI_MART
    }
    definitions = refresh_state.definition_changes(
        client, schema.raw_database(), marts_schema(), project_dir
    ).within(op_models)
    definitions = definitions.leaving_out(models_downstream_of(manifest, [], definitions.changed) - op_models)
    if config.full_refresh:
        return complete_plan(full_refresh=True, definitions=definitions)
    changed = refresh_state.tables_changed_since_refresh(client, schema.raw_database(), marts_schema())
    refreshed_through = refresh_state.last_refresh(client, schema.raw_database(), marts_schema())
    return incremental_plan(
        changed, manifest=manifest, definitions=definitions, refreshed_through=refreshed_through
    )


def _record_models_run(
    client, plan: DbtPlan, through: dt.datetime, data_through: dt.datetime | None = None
) -> bool:
    """After a successful run of the models' op (or a plan with nothing to run), by the rule of every
    build path (``refresh_state.record_run``: only a run covering every change, of every model of the
    op, records): its mark, with the data bound of the raw it read (``refresh_state.raw_bounds``; None:
    not known, the mark stands for it), not the KPI mart's, and the definitions it applied (the KPI
    mart's only as stale). Whether it recorded."""
    return refresh_state.record_run(
        client,
        schema.raw_database(),
        marts_schema(),
        plan,
        through,
        kpi_mart=False,
        data_through=data_through,
    )


def _kpi_plan(config: DbtBuildConfig, client, project_dir: Path) -> DbtPlan:
    """The KPI op's ``dbt build``: of the months of its partitions, or of the whole mart
    (``--full-refresh``) when the run asks for it (the nightly schedule) or when the mart's
    definition changed since it was built (its file, the project-wide definition, or a definition it
    reads that the models' op applied: model_definitions.py)."""
    definitions = refresh_state.definition_changes(
        client, schema.raw_database(), marts_schema(), project_dir
    ).within([KPI_MART])
    if definitions.changed:
        reason = f"definitions changed: {definitions.describe()} (the whole mart rebuilt)"
        return complete_plan(full_refresh=True, definitions=definitions, reason=reason)
    reason = "full refresh" if config.full_refresh else "the months of the partitions"
    return complete_plan(full_refresh=config.full_refresh, definitions=definitions, reason=reason)


def _record_kpi_run(
    client,
    plan: DbtPlan,
    dates: dict[str, str],
    built_from: dt.datetime | None,
    data_through: dt.datetime | None = None,
) -> None:
    """After a successful KPI run: the definitions it applied (the KPI mart's alone), and the KPI
    mart's mark when the run rebuilt the newest days (:func:`reaches`) from the models as their last
    refresh left them: marked ``built_from`` (None: the models' mark was never recorded, no mark),
    holding every change before ``data_through`` (None: not recorded, the mark stands for it)."""
    refresh_state.record_definitions(
        client, schema.raw_database(), marts_schema(), plan.definitions.to_record()
    )
    if built_from is not None and (plan.full_refresh or reaches(dates, built_from)):
        refresh_state.record_kpi_refresh(
            client, schema.raw_database(), marts_schema(), built_from, data_through=data_through
        )


def kpi_window_vars(window: dg.TimeWindow) -> dict[str, str]:
    """The dates of a KPI partition run, by the dbt vars' names (dbt gets them through
    ``kpi_window_environment``): its days (a backfill of many arrives as one range) and the
    day before them. A day's partition runs while the day is still open; the run of the next day
    rebuilds it once more, complete (the mart rebuilds whole months, so without the extra day the
    last day of a month would keep the figures of its own last run)."""
    last_day = window.end - dt.timedelta(days=1)  # the window's end is exclusive
    return {
        "kpi_start_date": (window.start - dt.timedelta(days=1)).date().isoformat(),
        "kpi_end_date": last_day.date().isoformat(),
    }


def reaches(kpi_vars: dict[str, str], mark: dt.datetime) -> bool:
    """Whether a KPI run of these dates rebuilt the newest days (up to the mark's): only then does it
    move the KPI mart's refresh mark. A backfill of older dates leaves the current days as they were.

    The mark is one time for the whole mart: it holds for the days the run rebuilt (the months of its
    window), and for older days as of the runs that rebuilt them after they ended (every hourly run
    rebuilds yesterday; the nightly run rebuilds everything)."""
    return dt.date.fromisoformat(kpi_vars["kpi_end_date"]) >= mark.date()


# ClickHouse errors a later attempt may not meet: the server busy, short of memory or slow, a
# query killed, a connection dropped. Any other coded error (an unknown column, a syntax error) is
# the model's SQL and comes back the same on every attempt.
TRANSIENT_CLICKHOUSE_ERRORS = {
    159: "TIMEOUT_EXCEEDED",
    202: "TOO_MANY_SIMULTANEOUS_QUERIES",
    209: "SOCKET_TIMEOUT",
    210: "NETWORK_ERROR",
    241: "MEMORY_LIMIT_EXCEEDED",
    394: "QUERY_WAS_CANCELLED",
    473: "DEADLOCK_AVOIDED",
}
# dbt-clickhouse reports "Received ClickHouse exception, code: 47, server response: Code: 47. ..."
CLICKHOUSE_ERROR_CODE = re.compile(r"\bcode: (\d+)", re.IGNORECASE)


def lasting_error(message: str) -> bool:
    """Whether a node's error would come back on a retry: dbt could not compile the node, or
    ClickHouse refused its SQL with a code not in TRANSIENT_CLICKHOUSE_ERRORS. An error without a
    ClickHouse code (connection refused, a driver timeout) may pass."""
    if message.startswith("Compilation Error"):
        return True
    codes = {int(code) for code in CLICKHOUSE_ERROR_CODE.findall(message)}
    return bool(codes) and not codes & TRANSIENT_CLICKHOUSE_ERRORS.keys()


# dbt stopped before running any node because it could not parse the project (a Jinja or YAML syntax
# error, an unknown ref): dagster-dbt's error carries dbt's "Encountered an error:" message. Any other
# reason to stop early (no connection, a profile's variable unset) may be gone on the next attempt.
PROJECT_NOT_PARSED = re.compile(
    r"Encountered an error:\s*((?:Compilation|Parsing) Error\b.*?)(?:\n\s*\n|\Z)", re.DOTALL
)
PROJECT = "the project"


def lasting_failures(invocation: DbtCliInvocation, error: Exception | None = None) -> dict[str, str]:
    """Why a retry of the failed invocation would fail the same way, by node: the nodes in a lasting
    error (``lasting_error``) and the failed data and unit tests (a test's verdict on the same data
    does not change); or, when dbt stopped before it ran anything, :data:`PROJECT` if ``error`` says
    it could not parse the project. Empty (retry) otherwise, or when some node's error may pass."""
    try:
        results = invocation.get_artifact("run_results.json")["results"]
    except (OSError, ValueError, KeyError):
        stopped = PROJECT_NOT_PARSED.search(str(error or ""))
        return {PROJECT: " ".join(line.strip() for line in stopped[1].splitlines())} if stopped else {}
    failed = {
        result["unique_id"]: result.get("message") or ""
        for result in results
        if result["status"] in ("error", "fail")
    }
    errors = [result["unique_id"] for result in results if result["status"] == "error"]
    if not all(lasting_error(failed[node]) for node in errors):
        return {}
    return {
        node: " ".join(
            line.strip() for line in message.splitlines() if not line.strip().startswith("compiled code at")
        )
        for node, message in sorted(failed.items())
    }


def stream_dbt(dbt: DbtCliResource, arguments: Sequence[str], context: dg.AssetExecutionContext):
    """The events of the step's dbt command, run in a folder of the stack's own (dagster_dbt_folder:
    dagster-dbt's default is under the target every stack of the checkout shares, and the reports read
    the stack's). A dbt run that failed for reasons a retry would meet again (tests failed, a model's
    SQL refused or not compiled: ``lasting_failures``) fails the step without a retry: the step's
    retries would run the whole build again (a nightly --full-refresh three times over) to the same
    failure, holding the warehouse pool all the while. Then the oldest of the stack's Dagster dbt
    folders are removed (prune_run_results)."""
    # (op_def and op_execution_context.run_id: also set when a test invokes the step directly)
    folder = dagster_dbt_folder(context.op_def.name, context.op_execution_context.run_id)
    invocation = dbt.cli(list(arguments), context=context, target_path=folder)
    try:
        yield from invocation.stream()
    except DagsterDbtCliRuntimeError as error:
        lasting = lasting_failures(invocation, error)
        if not lasting:
            raise
        raise dg.Failure(
            description="dbt failed (not retried: the same run would fail the same way): "
            + "; ".join(f"{node} failed with {why}" for node, why in lasting.items()),
            metadata={"failed_nodes": sorted(lasting)},
            allow_retries=False,
        ) from error
    finally:
        prune_run_results()


def build_dbt_assets() -> list[dg.AssetsDefinition]:
    """The models' and the KPI mart's dbt assets; none without the manifest (a fresh checkout outside
    ``dagster dev``: the code location still loads, with the replication assets only), said once as
    the code location loads: a deployment that skipped making it would otherwise run no nightly
    build, no KPI job and no freshness check without a word."""
    if not MANIFEST.exists():
        _log.warning(
            "no dbt manifest at %s: the code location loads without the dbt assets, their jobs "
            "(nightly build, KPI mart) and the freshness checks; make it with `make manifest` (or "
            "`dagster-dbt project prepare-and-package --file orchestration/defs/warehouse/resources.py`) "
            "and reload",
            MANIFEST,
        )
        return []

    @dbt_assets(
        manifest=dbt_project.manifest_path,
        project=dbt_project,
        exclude=KPI_MART,
        dagster_dbt_translator=WarehouseTranslator(),
        retry_policy=RETRY,
        pool=WAREHOUSE_POOL,
        name=MODELS_OP,
    )
    def warehouse_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, config: DbtBuildConfig):
        export_dbt_env()
        client = clickhouse_client()
        # One build date for the plan and the dbt run, read once the lock is held (see build.py's build);
        # the mark it records is held to that date, pinned or given (DbtPlan.refresh_mark).
        with writers.for_dagster_step(context) as lock, scoped_environment(pinned_build_date()):
            planned_at = utc_now()  # before reading what changed
            plan = _models_plan(config, client, Path(dbt.project_dir))
            # A run of some of the op's assets (`dagster asset materialize --select`, the UI, a job
            # leaving some out) runs dbt on them alone: it records neither the mark nor a definition.
            # Compared with the op's keys as defined: in a subset run Dagster hands the step a subset
            # definition, whose keys are the selected ones.
            if every_asset_of_the_op - context.selected_asset_keys:
                plan = plan.of_some_models()
            context.log.info(f"dbt {' '.join(plan.arguments) or '(nothing to run)'}: {plan.reason}")
            if plan.skip:
                # Nothing changed since the mark: every model holds every change made before the plan.
                lock.ensure_held()
                raw = refresh_state.raw_bounds(client, schema.raw_database())
                _record_models_run(client, plan, plan.refresh_mark(planned_at), raw.data_through)
                return
            started_at = utc_now()
            raw = refresh_state.raw_bounds(client, schema.raw_database())
            # DbtCliResource.cli takes no environment: the dbt subprocess inherits this run worker's.
            os.environ.update(raw.environment())
            with scoped_environment(DAGSTER_INDIRECT_SELECTION):
                yield from stream_dbt(dbt, plan.arguments, context)  # raises if dbt fails
            # Only a run of every model of the op records (_record_models_run).
            lock.ensure_held()  # (a writer that lost its lock may have raced another: no record)
            _record_models_run(client, plan, plan.refresh_mark(started_at), raw.data_through)

    # Every asset the models' op defines (its models and seeds), as defined: what a run must select to
    # record its mark and definitions.
    every_asset_of_the_op = frozenset(warehouse_models.keys)

    @dbt_assets(
        manifest=dbt_project.manifest_path,
        project=dbt_project,
        select=KPI_MART,
        partitions_def=KPI_PARTITIONS,
        dagster_dbt_translator=WarehouseTranslator(),
        retry_policy=RETRY,
        pool=WAREHOUSE_POOL,
        backfill_policy=dg.BackfillPolicy.single_run(),
        name=KPI_OP,
    )
    def kpi_daily(context: dg.AssetExecutionContext, dbt: DbtCliResource, config: DbtBuildConfig):
        export_dbt_env()
        dates = kpi_window_vars(context.partition_time_window)
        client = clickhouse_client()
        with writers.for_dagster_step(context) as lock, scoped_environment(pinned_build_date()):
            # Under the writer lock: no refresh moves the facts while the mart is built from them.
            built_from = refresh_state.models_refresh(client, schema.raw_database(), marts_schema())
            plan = _kpi_plan(config, client, Path(dbt.project_dir))
            context.log.info(f"dbt {' '.join(plan.arguments)}: {plan.reason}")
            with kpi_window_environment(dates), scoped_environment(DAGSTER_INDIRECT_SELECTION):
                yield from stream_dbt(dbt, plan.arguments, context)
            lock.ensure_held()
            mark, data_through = (built_from.mark, built_from.data_through) if built_from else (None, None)
            _record_kpi_run(client, plan, dates, mark, data_through)

    return [warehouse_models, kpi_daily]
