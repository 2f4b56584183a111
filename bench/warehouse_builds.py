"""The warehouse benchmark's builds, timed (warehouse.py, steps 2 to 4): the full build, incremental
builds after 1% new rows, a build with nothing new and the least a dbt process costs, one dbt command as
a process against warm in-process, an incremental build and the floor with the warm dbt server, KPI
partition runs, and the nightly full refresh.

The warehouse's own modules are imported inside each function: they read the throwaway stack's
environment, which warehouse.py sets before it calls them."""

from __future__ import annotations

import datetime
import json
import os
import time
from pathlib import Path

from warehouse_data import SyntheticCrm
from warehouse_timing import seconds


def full_build_figures(log: list[str]) -> dict:
    """``funnelhouse build --full-refresh`` (without the freshness report), timed."""
    from orchestration.defs.warehouse.build import build

    summary = build(full_refresh=True, freshness=False, log=log.append)
    assert summary.ok, "\n".join(log[-40:])
    return {
        "replication_seconds": round(summary.replication_seconds, 1),
        "dbt_build_seconds": round(summary.dbt_seconds, 1),
        "total_seconds": round(summary.replication_seconds + summary.dbt_seconds, 1),
        "rows_replicated": summary.rows_copied,
        "replication_table_seconds": {
            result.table: round(result.seconds, 2) for result in summary.replication
        },
    }


def dbt_ok(arguments: list[str]) -> None:
    from orchestration.defs.warehouse.build import run_dbt

    output: list[str] = []
    assert run_dbt(arguments, log=output.append) == 0, "\n".join(output[-40:])


def dbt_as_process_and_warm(arguments: list[str]) -> tuple[float, float]:
    """Seconds of one dbt command run as a process (as every build runs it: Python start-up, dbt's
    imports, partial parse, artifacts) and in this process with dbt imported and the project parsed
    beforehand (the second of two invocations): what a long-lived dbt worker would pay. Same command,
    same warehouse, one after the other."""
    from dbt.cli.main import dbtRunner

    from orchestration.defs.warehouse.dbt_environment import REPO_ROOT, dbt_env

    as_process = seconds(lambda: dbt_ok(arguments))
    saved_environment, saved_directory = dict(os.environ), os.getcwd()
    os.environ.update(dbt_env())
    os.chdir(REPO_ROOT)
    try:
        manifest = dbtRunner().invoke(["parse", "--quiet"]).result

        def invoke() -> None:
            assert dbtRunner(manifest=manifest).invoke([*arguments, "--quiet"]).success

        invoke()
        warm = seconds(invoke)
    finally:
        os.environ.clear()
        os.environ.update(saved_environment)
        os.chdir(saved_directory)
    return round(as_process, 1), round(warm, 1)


def incremental_figures(summary) -> dict:
    total = summary.replication_seconds + summary.dbt_seconds
    elapsed, models = _run_results() if not summary.dbt_plan.skip else (0, {})
    return {
        "replication_seconds": round(summary.replication_seconds, 1),
        "dbt_seconds": round(summary.dbt_seconds, 1),
        "total_seconds": round(total, 1),
        "rows_replicated": summary.rows_copied,
        "changed_tables": summary.changed_tables,
        "dbt_command": " ".join(summary.dbt_plan.arguments) or "(skipped)",
        "models_run": len(models) if not summary.dbt_plan.skip else 0,
        # Where the time goes: dbt's own elapsed time (the rest of dbt_seconds is process start-up,
        # parsing and connecting), each model's time, and each replicated table's time.
        "dbt_elapsed_seconds": elapsed if not summary.dbt_plan.skip else 0,
        "model_seconds": models if not summary.dbt_plan.skip else {},
        "replication_table_seconds": {
            result.table: round(result.seconds, 2) for result in summary.replication
        },
    }


def _run_results() -> tuple[float, dict[str, float]]:
    """(elapsed, seconds per node, slowest first) of the last dbt command's run_results.json."""
    from orchestration.defs.warehouse.dbt_environment import dbt_env

    run_results = json.loads((Path(dbt_env()["DBT_TARGET_PATH"]) / "run_results.json").read_text())
    nodes = sorted(run_results["results"], key=lambda result: -result["execution_time"])
    seconds = {node["unique_id"].split(".")[-1]: round(node["execution_time"], 2) for node in nodes}
    return round(run_results["elapsed_time"], 1), seconds


def time_incremental_builds(results: dict, crm: SyntheticCrm, log: list[str]) -> list[str]:
    """Into ``results``: twice 1% new rows and an incremental build, then ``funnelhouse build`` with
    its freshness report after / beside the models, and the incremental builds' shares of the full
    build (in ``results`` already). Returns the last incremental build's dbt arguments."""
    from orchestration.defs.warehouse.build import build, source_freshness

    # Twice 1% new rows: stamped over the whole year (every month of the incremental models
    # rebuilt: the goal's measure), then all within the last day, as an hourly refresh meets them.
    for key, spread_days in (("incremental_build", 365), ("incremental_build_recent", 1)):
        print(f"1% new rows over {spread_days} day(s), incremental build ...", flush=True)
        crm.add_one_percent(spread_days)
        log.clear()
        incremental = build(freshness=False, log=log.append)
        assert incremental.ok, "\n".join(log[-40:])
        results[key] = incremental_figures(incremental)
        incremental_arguments = list(incremental.dbt_plan.arguments)
    # `funnelhouse build` as people run it, with its freshness report: the report after the models
    # (how it ran before) against beside them (how it runs now), each after 1% new recent rows.
    for key, beside in (("build_with_freshness_after", False), ("build_with_freshness_beside", True)):
        print(f"1% new rows over 1 day, build with {key.rsplit('_', 1)[-1]} freshness ...", flush=True)
        crm.add_one_percent(1)
        log.clear()
        started = time.perf_counter()
        summary = build(freshness=beside, log=log.append)
        report = summary.freshness if beside else source_freshness(log=log.append)
        results[key] = round(time.perf_counter() - started, 1)
        assert summary.ok and report.sources, "\n".join(log[-40:])
    results["incremental_vs_full_share"] = round(
        results["incremental_build"]["total_seconds"] / results["full_build"]["total_seconds"], 3
    )
    results["incremental_recent_vs_full_share"] = round(
        results["incremental_build_recent"]["total_seconds"] / results["full_build"]["total_seconds"], 3
    )
    return incremental_arguments


def time_unchanged_build_and_dbt_floor(results: dict, log: list[str]) -> None:
    """Into ``results``: a build with no new rows (dbt skipped) and its source freshness report, and
    the floor of an incremental build that runs dbt as a process, as a share of the full build."""
    from orchestration.defs.warehouse.build import build

    print("no new rows, incremental build and source freshness ...", flush=True)
    unchanged = build(log=log.append)
    assert unchanged.ok and unchanged.dbt_plan.skip, "\n".join(log[-40:])
    results["unchanged_build"] = incremental_figures(unchanged)
    results["source_freshness_seconds"] = round(unchanged.freshness_seconds, 1)
    # The least a dbt process costs here: a `dbt run` that selects nothing (start-up, partial
    # parse, manifest; no model, no connection). With the unchanged build's replication, the floor
    # of any incremental build that runs dbt as a process, as a share of the full build.
    print("dbt run selecting nothing ...", flush=True)
    results["dbt_invocation_floor_seconds"] = _dbt_selecting_nothing_seconds()
    results["incremental_floor_vs_full_share"] = round(
        (unchanged.replication_seconds + results["dbt_invocation_floor_seconds"])
        / results["full_build"]["total_seconds"],
        3,
    )


def _dbt_selecting_nothing_seconds() -> float:
    """Seconds of a ``dbt run`` that selects nothing (start-up, partial parse, manifest; no model, no
    connection): the least a build's dbt command costs."""
    return round(seconds(lambda: dbt_ok(["run", "--select", "tag:selects_nothing"])), 1)


def time_builds_with_warm_dbt(results: dict, crm: SyntheticCrm, log: list[str], home: Path) -> None:
    """Into ``results``: with the stack's warm dbt server running (``funnelhouse up``'s ``dbt`` service:
    every dbt command forked from a process that imported dbt once), 1% new rows over the whole year and
    an incremental build, and the floor again, each as a share of the full build (which ran cold)."""
    from orchestration import warm_dbt_service
    from orchestration.defs.warehouse.build import build

    print("with the warm dbt server: 1% new rows over 365 day(s), incremental build ...", flush=True)
    warm_dbt_service.start(home)
    try:
        crm.add_one_percent(365)
        log.clear()
        incremental = build(freshness=False, log=log.append)
        assert incremental.ok, "\n".join(log[-40:])
        results["incremental_build_warm_dbt"] = incremental_figures(incremental)
        results["dbt_invocation_floor_warm_seconds"] = _dbt_selecting_nothing_seconds()
    finally:
        warm_dbt_service.stop(home)
    full_seconds = results["full_build"]["total_seconds"]
    results["incremental_warm_dbt_vs_full_share"] = round(
        results["incremental_build_warm_dbt"]["total_seconds"] / full_seconds, 3
    )
    results["incremental_floor_warm_vs_full_share"] = round(
        (results["unchanged_build"]["replication_seconds"] + results["dbt_invocation_floor_warm_seconds"])
        / full_seconds,
        3,
    )


def time_kpi_partition_runs(results: dict) -> None:
    """Into ``results``: a KPI partition run (Dagster's hourly one: yesterday and today) as Dagster
    passes its dates, through dbt's environment, against the same run given them as --vars, which
    makes dbt re-parse the project (how partition runs passed them before)."""
    from orchestration.defs.warehouse.dbt_environment import kpi_window_environment

    print("KPI partition run: dates in the environment vs as --vars ...", flush=True)
    today = datetime.date.today()
    dates = {"kpi_start_date": str(today - datetime.timedelta(days=1)), "kpi_end_date": str(today)}
    kpi_run = ["run", "--select", "mart_kpi_employee_daily"]
    with kpi_window_environment(dates):
        results["kpi_partition_run_seconds"] = round(seconds(lambda: dbt_ok(kpi_run)), 1)
    results["kpi_partition_run_with_vars_seconds"] = round(
        seconds(lambda: dbt_ok([*kpi_run, "--vars", json.dumps(dates)])), 1
    )
    dbt_ok(["parse"])  # back to the project's own parse, as the next build finds it
