"""Replication and source freshness with clocks outside UTC: a PostgreSQL whose sessions stamp rows in
Asia/Shanghai, and a replicating Python process in New York. dbt compares the freshness time
(``loaded_at_query`` in _crm__sources.yml) with UTC, so it must be UTC whatever either zone is."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

import jinja2
import psycopg
import pytest
import yaml
from psycopg.conninfo import conninfo_to_dict

from ingestion.replication.connections import clickhouse_client
from ingestion.replication.replicate import replicate_tables, utc_now
from tests.fixtures.warehouse import load_fixture

SOURCES_YML = Path(__file__).resolve().parents[2] / "dbt_project/models/staging/crm/_crm__sources.yml"


def _loaded_at(raw_database: str, table: str) -> dt.datetime:
    """What ``dbt source freshness`` reads for ``table``: the sources' loaded_at_query, rendered as dbt
    renders it (dbt then takes the naive result as UTC and compares it with the UTC clock)."""
    query = yaml.safe_load(SOURCES_YML.read_text())["sources"][0]["config"]["loaded_at_query"]
    this = {"schema": raw_database, "identifier": table}
    [(loaded_at,)] = clickhouse_client().query(jinja2.Template(query).render(this=this)).result_rows
    return loaded_at


def _add_customer_tag(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("insert into customer_tags (customer_id, tag_id) values (2, 1)")


def test_freshness_is_utc_when_postgresql_stamps_in_shanghai(pg_dsn, clickhouse_env):
    database = conninfo_to_dict(pg_dsn)["dbname"]
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        # Every new session of the database, the writers' (whose triggers stamp updated_at) included.
        conn.execute(f"alter database \"{database}\" set timezone to 'Asia/Shanghai'")
    load_fixture(pg_dsn)
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("show timezone").fetchone() == ("Asia/Shanghai",)

    replicate_tables(pg_dsn, ["customer_tags"])
    lag = utc_now() - _loaded_at(clickhouse_env, "customer_tags")
    assert dt.timedelta(0) <= lag < dt.timedelta(minutes=1), lag  # not 8 hours in the future

    _add_customer_tag(pg_dsn)  # the window itself is read in the stamps' zone
    assert replicate_tables(pg_dsn, ["customer_tags"])[0].live_rows == 4


@pytest.fixture
def python_in_new_york():
    """The replicating process's local time zone is New York (Python's naive-datetime clock)."""
    previous = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    yield
    if previous is None:
        os.environ.pop("TZ")
    else:
        os.environ["TZ"] = previous
    time.tzset()


def test_cursors_and_freshness_do_not_move_with_the_replicating_process_zone(
    pg_dsn, clickhouse_env, python_in_new_york
):
    """The state table's cursors and timestamps are written and read back unchanged: a cursor read
    back hours ahead would skip every row written in between, for good."""
    load_fixture(pg_dsn)
    replicate_tables(pg_dsn, ["customer_tags"])
    lag = utc_now() - _loaded_at(clickhouse_env, "customer_tags")
    assert dt.timedelta(0) <= lag < dt.timedelta(minutes=1), lag

    _add_customer_tag(pg_dsn)
    again = replicate_tables(pg_dsn, ["customer_tags"])[0]
    assert (again.rows_copied, again.live_rows) == (1, 4)


def test_refresh_marks_do_not_move_with_the_process_zone(clickhouse_env, python_in_new_york):
    """A refresh mark reads back as written: one read back hours late would pass changes by."""
    from orchestration.defs.warehouse import refresh_state

    through = utc_now() - dt.timedelta(minutes=3)
    refresh_state.record_refresh(clickhouse_client(), clickhouse_env, "tz_marts", through)
    assert refresh_state.last_refresh(clickhouse_client(), clickhouse_env, "tz_marts") == through
