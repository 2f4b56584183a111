"""The embedded PostgreSQL starts on another free port when the one it chose is taken before it binds
it (another stack starting at the same moment), and says why when it cannot start at all."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import psycopg
import pytest

from devstack import postgres, stack, state


@pytest.fixture
def taken_port():
    """A port another process listens on, as a stack that bound it first would."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", state.free_port(postgres.DEFAULT_PORT + 300)))
        listener.listen()
        yield listener.getsockname()[1]


def test_a_port_taken_after_it_was_found_free_makes_it_start_on_the_next_free_one(
    service_dirs, taken_port, monkeypatch
):
    home = service_dirs("pg-port-race")
    found_free = iter([taken_port])
    real_free_port = state.free_port
    # The race: the port is free when looked at, taken when the server binds it.
    monkeypatch.setattr(
        state, "free_port", lambda preferred: next(found_free, None) or real_free_port(preferred)
    )
    try:
        info = postgres.start(home)
        assert info["port"] != taken_port
        with psycopg.connect(postgres.dsn_for(info["port"], info["password"], "postgres")) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
    finally:
        postgres.stop(home)


def test_a_port_given_and_taken_fails_with_what_the_server_logged(service_dirs, taken_port):
    home = service_dirs("pg-port-given")
    with pytest.raises(RuntimeError, match="Address already in use"):
        postgres.start(home, port=taken_port)
    assert postgres.status(home) is None


def test_down_stops_a_server_left_running_but_not_recorded(service_dirs, monkeypatch):
    """As a `funnelhouse up` interrupted between `pg_ctl start` and recording the server leaves it."""
    home = service_dirs("pg-unrecorded")
    monkeypatch.setenv("FUNNELHOUSE_HOME", str(home))
    monkeypatch.delenv("FUNNELHOUSE_PG_DSN", raising=False)
    try:
        info = postgres.start(home)
        assert state.process_is(info["pid"], info["pid_start_time"])
        state.forget_service(postgres.SERVICE, home)
        assert postgres.status(home) is None and postgres.running_unrecorded(home)
        assert "postgres: stopped" in list(stack.down())
        # (not "its pid is gone": the postmaster is no child of ours, and may linger as a zombie here)
        assert not (Path(info["data"]) / "postmaster.pid").exists()
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(info["dsn"], connect_timeout=2).close()
    finally:
        postgres.stop(home)


def test_a_stale_postmaster_pid_naming_another_live_process_does_not_stop_the_start(
    service_dirs, monkeypatch
):
    """After a reboot or a kill -9 the data dir keeps a postmaster.pid whose pid another program may
    have got: PostgreSQL refuses to start while that pid lives. The stack knows it is no postmaster of
    its data dir and starts anyway; that program is left running."""
    home = service_dirs("pg-stale-pid")
    monkeypatch.setenv("FUNNELHOUSE_HOME", str(home))
    monkeypatch.delenv("FUNNELHOUSE_PG_DSN", raising=False)
    # PostgreSQL ignores a pid it may not signal: the stranger runs as the server's own user.
    as_the_server = {"user": postgres._SYSTEM_USER} if postgres._running_as_root() else {}
    stranger = subprocess.Popen(["sleep", "120"], **as_the_server)
    try:
        info = postgres.start(home)
        postgres.stop(home)
        pid_file = Path(info["data"]) / "postmaster.pid"
        pid_file.write_text(f"{stranger.pid}\n{info['data']}\n")
        info = postgres.start(home)
        assert info["pid"] != stranger.pid and stranger.poll() is None
        with psycopg.connect(info["dsn"], connect_timeout=5) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
    finally:
        postgres.stop(home)
        stranger.kill()


def test_up_after_an_interrupted_up_starts_recorded(service_dirs, monkeypatch):
    """A server left running unrecorded (`funnelhouse up` interrupted before recording it): the next
    start stops it and starts it again, recorded, instead of failing on the data dir being in use."""
    home = service_dirs("pg-restart-unrecorded")
    monkeypatch.setenv("FUNNELHOUSE_HOME", str(home))
    monkeypatch.delenv("FUNNELHOUSE_PG_DSN", raising=False)
    try:
        postgres.start(home)
        state.forget_service(postgres.SERVICE, home)
        info = postgres.start(home)
        assert postgres.status(home) == info and not postgres.running_unrecorded(home)
        with psycopg.connect(info["dsn"], connect_timeout=5) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
    finally:
        postgres.stop(home)
