"""Replication reads PostgreSQL as a read-only role. ClickHouse keeps the credentials it pulls with in
a named collection, and whoever holds the ClickHouse user may run any query through it: the
collection must read what replication reads, and write nothing."""

from __future__ import annotations

import contextlib
import logging
import shutil
import uuid

import psycopg
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ingestion.replication.connections import (
    COLLECTION_PREFIX,
    collection_name,
    ensure_named_collection,
    replication_client,
    source,
)
from ingestion.replication.replicate import replicate_tables
from ingestion.schema import migrate
from orchestration import environment
from tests.fixtures.warehouse import load_fixture

_WRITTEN_BY_CLICKHOUSE = "written through the collection"


def _tags_written_by_clickhouse(pg_dsn: str) -> int:
    with psycopg.connect(pg_dsn) as conn:
        return conn.execute(
            "select count(*) from tags where name = %s", (_WRITTEN_BY_CLICKHOUSE,)
        ).fetchone()[0]


def test_clickhouse_cannot_write_into_postgresql_through_the_collection(pg_dsn, clickhouse_env):
    """``INSERT INTO FUNCTION postgresql(<collection>, ...)``, which as the superuser adds the row. The
    local server reports an INSERT with data (``VALUES``) that PostgreSQL refused as a success (chDB's
    inserter drops the sink's error): that form is checked by what PostgreSQL holds afterwards."""
    load_fixture(pg_dsn)
    client = replication_client()
    collection = ensure_named_collection(client, pg_dsn, clickhouse_env)
    into_tags = f"insert into function {source('tags', collection)}"
    with pytest.raises(DatabaseError, match="permission denied for table tags"):
        client.command(f"{into_tags} (name, category) select '{_WRITTEN_BY_CLICKHOUSE}', 'probe'")
    with contextlib.suppress(DatabaseError):
        client.command(f"{into_tags} (name, category) values ('{_WRITTEN_BY_CLICKHOUSE}', 'probe')")
    assert _tags_written_by_clickhouse(pg_dsn) == 0


def test_clickhouse_reads_a_replicated_table_through_the_collection(pg_dsn, clickhouse_env):
    load_fixture(pg_dsn)
    client = replication_client()
    collection = ensure_named_collection(client, pg_dsn, clickhouse_env)
    assert client.query(f"select count() from {source('customers', collection)}").result_rows == [(4,)]


def test_a_table_a_later_migration_creates_is_readable_through_the_collection(
    pg_dsn, clickhouse_env, tmp_path, monkeypatch
):
    for migration in migrate.available():
        shutil.copy(migration.path, tmp_path / migration.path.name)
    (tmp_path / "9999_added_later.sql").write_text("CREATE TABLE added_later (id BIGINT PRIMARY KEY);\n")
    monkeypatch.setattr(migrate, "MIGRATIONS_DIR", tmp_path)
    assert migrate.apply(pg_dsn, log=lambda *_: None) == ["9999_added_later"]
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("insert into added_later values (1), (2)")
    client = replication_client()
    collection = ensure_named_collection(client, pg_dsn, clickhouse_env)
    assert client.query(f"select count() from {source('added_later', collection)}").result_rows == [(2,)]


def test_the_embedded_role_is_a_reader_of_the_test_database(pg_dsn):
    """The role may log in and read, and may not write even in a session that lifts its read-only
    default (what it holds, not only how its sessions start)."""
    reader_dsn = environment.pg_replication_dsn(pg_dsn)
    reader = conninfo_to_dict(reader_dsn)
    assert (reader["user"], reader["dbname"]) == (
        migrate.REPLICATION_READER,
        conninfo_to_dict(pg_dsn)["dbname"],
    )
    load_fixture(pg_dsn)
    with psycopg.connect(reader_dsn, autocommit=True) as conn:
        assert conn.execute(
            "select rolsuper, rolcreatedb, rolcreaterole, rolbypassrls from pg_roles where rolname = current_user"
        ).fetchone() == (False, False, False, False)
        assert conn.execute("select count(*) from customers").fetchone() == (4,)
        conn.execute("set default_transaction_read_only = off")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("insert into tags (name, category) values (%s, 'probe')", (_WRITTEN_BY_CLICKHOUSE,))


def _collections_of(client, raw_database: str) -> set[str]:
    rows = client.query(
        "select name from system.named_collections where startsWith(name, {prefix:String})",
        parameters={"prefix": f"{COLLECTION_PREFIX}{raw_database}_"},
    ).result_rows
    return {name for (name,) in rows}


def test_a_stack_that_pulled_as_the_main_user_pulls_as_the_reader_after_an_upgrade(
    pg_dsn, clickhouse_env, monkeypatch
):
    """Replication re-creates the collection for the reader and drops the one holding the main
    user's credentials, which an earlier version wrote."""
    load_fixture(pg_dsn)
    client = replication_client()
    monkeypatch.setenv(environment.REPLICATION_DSN_VARIABLE, pg_dsn)  # as before the reader existed
    as_main_user = ensure_named_collection(client, pg_dsn, clickhouse_env)
    monkeypatch.delenv(environment.REPLICATION_DSN_VARIABLE)

    [result] = replicate_tables(pg_dsn, ["customers"])

    assert result.rows_copied == 4
    as_reader = collection_name(environment.pg_replication_dsn(pg_dsn), clickhouse_env)
    assert as_reader != as_main_user
    assert _collections_of(client, clickhouse_env) == {as_reader}


def test_the_replication_dsn_variable_wins(monkeypatch):
    monkeypatch.setenv(environment.REPLICATION_DSN_VARIABLE, "postgresql://reader:secret@db.example/crm")
    assert environment.pg_replication_dsn("postgresql://app:other@db.example:5432/crm") == (
        "postgresql://reader:secret@db.example/crm"
    )


def test_a_replication_dsn_naming_another_database_is_refused_by_name(monkeypatch):
    """Rows pulled from one database and the bound, deletions and column types read from another
    would mix the two without a word."""
    monkeypatch.setenv(environment.REPLICATION_DSN_VARIABLE, "postgresql://reader:reader-pw@db.example/crm")
    read = "postgresql://app:app-pw@db.example/crm_test"
    with pytest.raises(environment.ReplicationDatabaseMismatch) as refused:
        environment.pg_replication_dsn(read)
    message = str(refused.value)
    assert "db.example:5432/crm" in message and environment._database_address(read) in message
    assert "reader-pw" not in message and "app-pw" not in message


@pytest.mark.parametrize(
    "read",
    [
        "postgresql://app:app-pw@localhost:5432/crm",  # ClickHouse in Docker reaches the host otherwise
        "postgresql://app:app-pw@db.example:6432/crm",  # this process through a pooler
        "postgresql:///crm?host=/var/run/postgresql&user=app",  # this process on a Unix socket
    ],
)
def test_the_same_database_by_another_address_is_taken_with_a_warning(monkeypatch, caplog, read):
    """ClickHouse connects with the replication DSN, and often reaches the server by another name than
    this process does: only another database name is refused."""
    configured = "postgresql://reader:reader-pw@host.docker.internal:5432/crm"
    monkeypatch.setenv(environment.REPLICATION_DSN_VARIABLE, configured)
    environment._warn_other_address.cache_clear()
    with caplog.at_level(logging.WARNING, logger=environment.__name__):
        assert environment.pg_replication_dsn(read) == configured
    (warning,) = [record.getMessage() for record in caplog.records]
    assert "host.docker.internal:5432/crm" in warning and "reader-pw" not in warning


def test_production_without_the_variable_pulls_as_the_main_user_and_says_so_once(monkeypatch, caplog):
    """A deployment from before the variable keeps replicating; production never looks for an
    embedded server (environment._embedded refuses it there)."""
    main = "postgresql://app:s3cret-password@db.example:5432/crm"
    monkeypatch.setenv("FUNNELHOUSE_ENV", "prod")
    monkeypatch.setenv("FUNNELHOUSE_PG_DSN", main)
    monkeypatch.delenv(environment.REPLICATION_DSN_VARIABLE, raising=False)
    environment._warn_replication_reads_with_the_main_user.cache_clear()
    with caplog.at_level(logging.WARNING, logger=environment.__name__):
        assert environment.pg_replication_dsn() == main
        assert environment.pg_replication_dsn() == main
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 1 and environment.REPLICATION_DSN_VARIABLE in warnings[0]
    assert "s3cret-password" not in warnings[0]


def test_a_migrator_owning_no_table_finds_the_database_up_to_date_and_says_what_it_could_not_grant(pg_dsn):
    """Production: the tables belong to another role, the migrating user may read and write them but
    not grant on them. An up-to-date database is up to date for it (no CREATE needed), and the grants
    it cannot give (a warning per table from PostgreSQL, no error) are named in a line."""
    app = f"fh_test_app_{uuid.uuid4().hex[:8]}"
    database = conninfo_to_dict(pg_dsn)["dbname"]
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'app-pw'").format(sql.Identifier(app)))
        try:
            for statement in (
                "GRANT CONNECT ON DATABASE {db} TO {app}",
                "GRANT USAGE ON SCHEMA public, funnelhouse TO {app}",
                "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {app}",
                "GRANT SELECT ON funnelhouse.schema_migrations TO {app}",
                "REVOKE SELECT ON tags FROM {reader}",
            ):
                conn.execute(
                    sql.SQL(statement).format(
                        db=sql.Identifier(database),
                        app=sql.Identifier(app),
                        reader=sql.Identifier(migrate.REPLICATION_READER),
                    )
                )
            said: list[str] = []
            assert migrate.apply(make_conninfo(pg_dsn, user=app, password="app-pw"), log=said.append) == []
            assert any(
                f"could not grant {migrate.REPLICATION_READER} SELECT on 1 of" in line for line in said
            ), said
        finally:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(app)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(app)))
