"""The reports' "dbt tests" line after several CLI dbt commands: each writes the target's one
run_results.json, and a copy of each is kept (dbt_environment.archive_run_results), so a command
without tests does not take the previous command's outcomes from the reports."""

from __future__ import annotations

import json

from ingestion.reports import trust
from orchestration.defs.warehouse import dbt_environment
from orchestration.defs.warehouse.build import dbt_command

SEED = "fx_rates_to_usd"  # no data needed, and five data tests of its own


def test_the_tests_of_a_dbt_build_outlive_the_next_dbt_command(pg_dsn, clickhouse_env, dbt_dirs):
    """`funnelhouse dbt build --select X`, then a command without tests (`dbt seed`, as a `dbt run`)."""
    output: list[str] = []
    assert dbt_command(["build", "--select", SEED], log=output.append) == 0, "\n".join(output[-40:])
    assert trust.dbt_test_results(dbt_dirs)[0] == {"pass": 5}

    assert dbt_command(["seed", "--select", SEED], log=output.append) == 0, "\n".join(output[-40:])
    # The target's own files stay where dbt and Dagster read them: the last command's results...
    live = json.loads((dbt_dirs / "run_results.json").read_text())
    assert [result["unique_id"] for result in live["results"]] == [f"seed.funnelhouse.{SEED}"]
    assert (dbt_dirs / "manifest.json").exists()
    # ...and the reports still see the build's tests.
    assert trust.dbt_test_results(dbt_dirs)[0] == {"pass": 5}


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
    archive = tmp_path / dbt_environment.RUN_RESULTS_ARCHIVE
    (archive / "notes").mkdir(parents=True)  # not a copy: never removed
    (tmp_path / "manifest.json").write_text("{}")

    copies = []
    for minute, invocation_id in enumerate(["1c0a-aa", "0b1f-bb", "00ee-cc"]):
        _run_results(tmp_path, invocation_id, minute)
        copies.append(dbt_environment.archive_run_results(tmp_path))
        assert dbt_environment.archive_run_results(tmp_path) == copies[-1]  # one copy per invocation
    first, second, third = copies
    assert third.read_bytes() == (tmp_path / "run_results.json").read_bytes()
    # The reports order the files by when dbt wrote them, not by when they were copied.
    assert third.stat().st_mtime_ns == (tmp_path / "run_results.json").stat().st_mtime_ns
    assert sorted(path.name for path in archive.iterdir()) == sorted(
        [second.parent.name, third.parent.name, "notes"]
    )
    assert (tmp_path / "run_results.json").exists() and (tmp_path / "manifest.json").exists()

    (tmp_path / "run_results.json").write_text('{"metadata": {"generated_at"')  # dbt still writing it
    assert dbt_environment.archive_run_results(tmp_path) is None
