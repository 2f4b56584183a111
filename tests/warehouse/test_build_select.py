"""``funnelhouse build --select``: a selector that matches no model is an error, not an empty success."""

from __future__ import annotations

from typer.testing import CliRunner

from orchestration.cli import app


def test_a_selection_matching_nothing_fails_the_build(pg_dsn, clickhouse_env, dbt_dirs):
    result = CliRunner().invoke(
        app, ["build", "--select", "no_such_model", "--skip-replication", "--no-freshness"]
    )
    assert result.exit_code != 0, result.output
    assert "The selection criterion 'no_such_model' does not match any enabled nodes" in result.output
    assert "Nothing to do" not in result.output  # dbt stopped there, it did not go on "successfully"
