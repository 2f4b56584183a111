"""The reports' "dbt tests" line after several dbt commands. Each CLI command writes the target's one
run_results.json, and a copy of each is kept in the stack's own archive under its state home
(dbt_environment.archive_run_results), so a command without tests does not take the previous
command's outcomes from the reports; each Dagster dbt step keeps its results in a folder of its own
under the stack's home too. A stack beside it (another FUNNELHOUSE_HOME of the same checkout, the same
dbt_project/target) sees neither."""

from __future__ import annotations

import json
import os

import dagster as dg
import pytest

from ingestion.reports import trust
from orchestration.defs.warehouse import dbt_assets as dbt_assets_module
from orchestration.defs.warehouse import dbt_environment
from orchestration.defs.warehouse.build import dbt_command

SEED = "fx_rates_to_usd"  # no data needed, and five data tests of its own


def test_the_tests_of_a_dbt_build_outlive_the_next_dbt_command(
    pg_dsn, clickhouse_env, dbt_dirs, tmp_path, monkeypatch
):
    """`funnelhouse dbt build --select X`, then a command without tests (`dbt seed`, as a `dbt run`)."""
    monkeypatch.setenv("FUNNELHOUSE_HOME", str(tmp_path / "home"))
    output: list[str] = []
    assert dbt_command(["build", "--select", SEED], log=output.append) == 0, "\n".join(output[-40:])
    assert trust.dbt_test_results()[0] == {"pass": 5}

    assert dbt_command(["seed", "--select", SEED], log=output.append) == 0, "\n".join(output[-40:])
    # The target's own files stay where dbt and Dagster read them: the last command's results...
    live = json.loads((dbt_dirs / "run_results.json").read_text())
    assert [result["unique_id"] for result in live["results"]] == [f"seed.funnelhouse.{SEED}"]
    assert (dbt_dirs / "manifest.json").exists()
    # ...the copies are the stack's, not the target's...
    archive = tmp_path / "home" / dbt_environment.RUN_RESULTS_ARCHIVE
    assert len(list(archive.glob("*/run_results.json"))) == 2
    assert not (dbt_dirs / dbt_environment.RUN_RESULTS_ARCHIVE).exists()
    # ...and the reports still see the build's tests, a stack beside it none of them.
    assert trust.dbt_test_results()[0] == {"pass": 5}
    monkeypatch.setenv("FUNNELHOUSE_HOME", str(tmp_path / "other-home"))
    assert trust.dbt_test_results() == (None, None)


def _run_results(target, invocation_id: str, minute: int) -> None:
    (target / "run_results.json").write_text(
        json.dumps(
            {
                "metadata": {
                    "generated_at": f"2026-11-30T20:0{minute}:00.5Z",
                    "invocation_id": invocation_id,
                },
                "results": [{"unique_id": "test.funnelhouse.x", "status": "pass"}],
            }
        )
    )


def test_the_archive_keeps_the_newest_copies_and_removes_nothing_else(tmp_path, monkeypatch):
    monkeypatch.setattr(dbt_environment, "RUN_RESULTS_KEPT", 2)
    monkeypatch.setenv("FUNNELHOUSE_HOME", str(tmp_path / "home"))
    target, archive = tmp_path / "target", tmp_path / "home" / dbt_environment.RUN_RESULTS_ARCHIVE
    monkeypatch.setenv("DBT_TARGET_PATH", str(target))  # (the prune looks there for an old layout)
    (archive / "notes").mkdir(parents=True)  # not a copy: never removed
    (target / "docs").mkdir(parents=True)  # nor the target's folders that are not a Dagster run's
    (target / "manifest.json").write_text("{}")

    copies = []
    for minute, invocation_id in enumerate(["1c0a-aa", "0b1f-bb", "00ee-cc"]):
        _run_results(target, invocation_id, minute)
        copies.append(dbt_environment.archive_run_results(target))
        assert dbt_environment.archive_run_results(target) == copies[-1]  # one per invocation
    first, second, third = copies
    assert third.read_bytes() == (target / "run_results.json").read_bytes()
    # The reports order the files by when dbt wrote them, not by when they were copied.
    assert third.stat().st_mtime_ns == (target / "run_results.json").stat().st_mtime_ns
    assert sorted(path.name for path in archive.iterdir()) == sorted(
        [second.parent.name, third.parent.name, "notes"]
    )
    assert (target / "run_results.json").exists() and (target / "manifest.json").exists()

    (target / "run_results.json").write_text('{"metadata": {"generated_at"')  # dbt still writing it
    assert dbt_environment.archive_run_results(target) is None


def test_the_folders_of_dagsters_dbt_runs_are_pruned_to_as_many(tmp_path, monkeypatch):
    """dagster-dbt leaves every dbt invocation's folder (artifacts, compiled SQL, logs), and removes
    none: the stack's oldest beyond the bound are removed with the archive's copies."""
    monkeypatch.setattr(dbt_environment, "RUN_RESULTS_KEPT", 2)
    monkeypatch.setenv("FUNNELHOUSE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DBT_TARGET_PATH", str(tmp_path / "target"))  # (not the developer's)
    folders = tmp_path / "home" / dbt_environment.DAGSTER_DBT_RUNS
    runs = ["warehouse_dbt_models-9f0e1d2-aaaaaaa", "warehouse_dbt_kpi_daily-0a1b2c3-bbbbbbb"]
    runs.append("warehouse_dbt_models-1a2b3c4-ccccccc")
    for age, name in zip([300, 200, 100], runs, strict=True):  # the first the oldest
        (folders / name).mkdir(parents=True)
        (folders / name / "run_results.json").write_text("{}")
        os.utime(folders / name, (1_700_000_000 - age, 1_700_000_000 - age))
    (folders / "notes").mkdir()  # not a run's: never removed

    dbt_environment.prune_run_results()
    assert sorted(path.name for path in folders.iterdir()) == sorted(["notes", *runs[1:]])


def test_what_earlier_versions_left_under_the_target_is_removed_and_nothing_else(tmp_path, monkeypatch):
    """Earlier versions kept the CLI's archive in <target>/run-results and Dagster's dbt folders in the
    target itself; nothing reads or prunes them there any more. The next prune removes them all, and
    nothing of dbt's own or unknown to it."""
    monkeypatch.setenv("FUNNELHOUSE_HOME", str(tmp_path / "home"))
    target = tmp_path / "target"
    monkeypatch.setenv("DBT_TARGET_PATH", str(target))
    old_archive = target / "run-results"  # (as those versions named it)
    old = [
        old_archive / "20261130T200000500000Z-1c0a-aa",
        old_archive / "20261130T200100500000Z-0b1f-bb",
        target / "warehouse_dbt_models-9f0e1d2-aaaaaaa",
        target / "warehouse_dbt_kpi_daily-0a1b2c3-bbbbbbb",
    ]
    for folder in old:
        (folder / "compiled").mkdir(parents=True)
        (folder / "run_results.json").write_text("{}")
    kept = ["manifest.json", "partial_parse.msgpack", "run_results.json"]
    for name in kept:
        (target / name).write_text("{}")
    kept_folders = ["compiled", "run", "docs", "freshness", "my_notes-9f0e1d2-aaaaaaa"]
    for name in kept_folders:  # dbt's, the CLI's own, and one no dbt op of ours named
        (target / name / "x").mkdir(parents=True)

    dbt_environment.prune_run_results()
    assert not any(folder.exists() for folder in old) and not old_archive.exists()
    assert sorted(path.name for path in target.iterdir()) == sorted(kept + kept_folders)

    (old_archive / "notes").mkdir(parents=True)  # not an archive copy: it and its folder stay
    dbt_environment.prune_run_results()
    assert (old_archive / "notes").is_dir()


@pytest.mark.skipif(
    not dbt_assets_module.MANIFEST.exists(), reason="no dbt manifest (run `funnelhouse build` or dbt parse)"
)
def test_a_dagster_dbt_steps_results_are_its_stacks(pg_dsn, clickhouse_env, dbt_dirs, tmp_path, monkeypatch):
    """The models' step building the seed alone: its dbt folder is under the stack's home, not the
    target every stack of the checkout shares, and the reports of a stack beside it do not see it."""
    from orchestration.defs.warehouse.resources import dbt_resource

    monkeypatch.setenv("FUNNELHOUSE_HOME", str(tmp_path / "home"))
    result = dg.materialize(
        dbt_assets_module.build_dbt_assets(),
        selection=[dg.AssetKey([SEED])],
        resources={"dbt": dbt_resource()},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    (run_results,) = (tmp_path / "home" / dbt_environment.DAGSTER_DBT_RUNS).glob(
        "warehouse_dbt_models-*/run_results.json"
    )
    assert run_results.parent.name.startswith(f"warehouse_dbt_models-{result.run_id[:7]}-")
    assert list(dbt_dirs.glob("*/run_results.json")) == []  # nothing of it in the shared target
    assert trust.dbt_test_results()[0] == {"pass": 5}
    monkeypatch.setenv("FUNNELHOUSE_HOME", str(tmp_path / "other-home"))
    assert trust.dbt_test_results() == (None, None)
