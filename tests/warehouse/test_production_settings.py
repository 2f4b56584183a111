"""The production setup as README gives it (FUNNELHOUSE_ENV=prod, the server as
FUNNELHOUSE_CLICKHOUSE_URL + _USER/_PASSWORD) reaches dbt: the prod target connects to the server
replication writes to. (Here that server is the test one, over plain HTTP.)"""

from __future__ import annotations

from orchestration.defs.warehouse.build import run_dbt


def test_the_readme_production_variables_reach_dbt(clickhouse_env, dbt_dirs, monkeypatch):
    monkeypatch.setenv("FUNNELHOUSE_ENV", "prod")
    monkeypatch.delenv("DBT_TARGET")
    for explicit in ("HOST", "PORT", "SECURE"):
        monkeypatch.delenv(f"FUNNELHOUSE_CLICKHOUSE_{explicit}", raising=False)
    output: list[str] = []
    assert run_dbt(["--no-use-colors", "debug"], log=output.append) == 0, "\n".join(output[-30:])
    printed = "\n".join(output)
    assert "Connection test: [OK connection ok]" in printed, printed
    assert "connect_timeout: 10" in printed, printed  # the prod output's (the embedded one's is 30)
