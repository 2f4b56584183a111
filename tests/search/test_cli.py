"""``funnelhouse search`` on the command line: its help shows real codes, its choices are checked by
typer (a misspelt platform used to search for it and find nothing), and an unknown code says so."""

from __future__ import annotations

import psycopg
import pytest
from typer.testing import CliRunner

from ingestion.contracts import CONTRACTS
from ingestion.generate.funnel import customer_code
from ingestion.search import rebuild
from orchestration.cli import app
from tests.search.crm import seed_people, seed_samples
from tests.search.helpers import NO_LAG


def _invoke(*arguments: str):
    # Wide enough that rich never wraps a line of the help or the messages.
    return CliRunner().invoke(app, ["search", *arguments], env={"COLUMNS": "200"})


def test_help_shows_codes_in_the_generators_format_and_every_allowed_value():
    result = _invoke("--help")
    assert result.exit_code == 0, result.output
    assert f"e.g. {customer_code(41)}." in result.output  # CUST_0000042
    assert "e.g. EMP_0007." in result.output
    conversations = CONTRACTS["conversations"]
    for column in ("platform", "sentiment"):
        assert "|".join(conversations.column(column).allowed) in result.output, column


@pytest.mark.parametrize(
    ("option", "value"), [("--platform", "signal"), ("--sentiment", "happy"), ("--platform", "WeChat")]
)
def test_a_value_outside_the_contract_is_refused_before_searching(option, value, monkeypatch):
    # No engine anywhere: a refused value never gets as far as connecting.
    monkeypatch.setenv("FUNNELHOUSE_SEARCH_URL", "http://127.0.0.1:1")
    result = _invoke("x", option, value)
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{option}'" in result.output and f"'{value}' is not one of" in result.output


def test_an_unknown_code_gets_a_hint_and_a_known_one_does_not(
    pg_dsn, search_engine, search_client, search_alias, monkeypatch
):
    with psycopg.connect(pg_dsn) as conn:
        seed_samples(conn, seed_people(conn))
    rebuild.full_rebuild(pg_dsn, search_client, search_alias, lag=NO_LAG)
    monkeypatch.setenv("FUNNELHOUSE_SEARCH_URL", search_engine["url"])
    monkeypatch.setenv("FUNNELHOUSE_SEARCH_FLAVOUR", search_engine["flavour"])

    result = _invoke("--customer", "CUST_0000042", "--alias", search_alias)
    assert result.exit_code == 0, result.output
    assert "0 conversation(s)" in result.output
    assert "hint: no conversation of customer CUST_0000042 in the index" in result.output

    # A real customer with nothing matching the other filters: no hint, the code is fine.
    result = _invoke("期货", "--customer", "CUST_001", "--platform", "wechat", "--alias", search_alias)
    assert result.exit_code == 0, result.output
    assert "0 conversation(s)" in result.output and "hint" not in result.output

    result = _invoke("--employee", "EMP_002", "--sentiment", "negative", "--alias", search_alias)
    assert result.exit_code == 0 and "1 conversation(s)" in result.output, result.output


def test_up_refuses_an_unknown_search_engine_with_typers_own_error(tmp_path, monkeypatch):
    monkeypatch.setenv("FUNNELHOUSE_HOME", str(tmp_path))
    for replaced in ("FUNNELHOUSE_PG_DSN", "FUNNELHOUSE_CLICKHOUSE_URL", "FUNNELHOUSE_SMTP_URL"):
        monkeypatch.setenv(replaced, "configured-elsewhere")  # so nothing else would start either
    result = CliRunner().invoke(app, ["up", "--search", "bogus"], env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # not the launcher's ValueError
    assert "Invalid value for '--search'" in result.output
    assert "'bogus' is not one of 'elasticsearch', 'opensearch', 'none'" in result.output
