"""One writer at a time per part of the warehouse (orchestration/defs/warehouse/writers.py), on the
real PostgreSQL that holds the locks: a second writer waits and names the first, gives up with a
clear error, and gets the lock when the first ends, even by being killed. ``funnelhouse build`` and
the Dagster replication assets take the locks, and `funnelhouse dbt` when its command writes."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import dagster as dg
import psycopg
import pytest

from ingestion.replication import schema
from ingestion.replication.connections import clickhouse_client
from ingestion.replication.replicate import utc_now
from orchestration import environment
from orchestration.defs.warehouse import build as warehouse_build
from orchestration.defs.warehouse import refresh_state, writers
from tests.fixtures.warehouse import load_fixture

WAREHOUSE = writers.lock_name("raw_under_test")
OTHER_WAREHOUSE = writers.lock_name("raw_of_another_warehouse")


def _holding(pg_dsn: str, name: str, holder: str = "the first writer"):
    """Hold ``name`` in a thread until the returned event is set; returns (event, thread)."""
    acquired, release = threading.Event(), threading.Event()

    def hold():
        with writers.exclusive(pg_dsn, name, holder=holder, wait=5):
            acquired.set()
            release.wait(60)

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert acquired.wait(10), "the first writer never got the lock"
    return release, thread


def test_a_second_writer_waits_for_the_first_and_names_it(pg_dsn):
    release, first = _holding(pg_dsn, WAREHOUSE)
    messages: list[str] = []
    second_done = threading.Event()

    def second():
        with writers.exclusive(pg_dsn, WAREHOUSE, holder="the second writer", log=messages.append, wait=30):
            second_done.set()

    thread = threading.Thread(target=second, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not messages and time.monotonic() < deadline:
            time.sleep(0.05)
        assert messages and "held by the first writer (pid " in messages[0], messages
        assert not second_done.is_set()
        # Another warehouse (another raw database on the same servers) has its own writer.
        with writers.exclusive(pg_dsn, OTHER_WAREHOUSE, holder="its builder", wait=0):
            pass
    finally:
        release.set()
    first.join(10)
    assert second_done.wait(10), "the second writer did not get the lock once the first let go"
    thread.join(10)
    assert messages[-1].startswith(f"{WAREHOUSE}: acquired after ")


def test_a_writer_gives_up_with_a_clear_error(pg_dsn):
    release, first = _holding(pg_dsn, WAREHOUSE, holder="funnelhouse build pid 42@elsewhere")
    try:
        with (
            pytest.raises(
                writers.WarehouseBusy, match=r"held by funnelhouse build pid 42@elsewhere .*gave up"
            ),
            writers.exclusive(pg_dsn, WAREHOUSE, holder="impatient", log=lambda _: None, wait=0.3),
        ):
            pytest.fail("got a lock that another writer holds")
    finally:
        release.set()
        first.join(10)


def test_a_killed_writer_leaves_no_lock_behind(pg_dsn):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from orchestration.defs.warehouse import writers\n"
            f"with writers.exclusive(sys.argv[1], {WAREHOUSE!r}, holder='doomed', wait=5):\n"
            "    print('holding', flush=True); time.sleep(300)\n",
            pg_dsn,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        with (
            pytest.raises(writers.WarehouseBusy),
            writers.exclusive(pg_dsn, WAREHOUSE, holder="next", log=lambda _: None, wait=0),
        ):
            pass
        holder.send_signal(signal.SIGKILL)  # no unlock, no clean close: only the lost session
        holder.wait(10)
        with writers.exclusive(pg_dsn, WAREHOUSE, holder="next", log=lambda _: None, wait=10):
            pass
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


@pytest.mark.parametrize("value", ["10m", "-5", "nan"])
def test_a_lock_wait_that_is_no_number_of_seconds_names_its_variable(pg_dsn, monkeypatch, value):
    """Refused before the lock is asked for, as one line naming the variable (the CLI prints it as its
    Error: line), not a bare ValueError from float(), nor a negative wait taken as "give up at once"."""
    monkeypatch.setenv("FUNNELHOUSE_WAREHOUSE_LOCK_WAIT", value)
    with (
        pytest.raises(
            environment.ConfigurationError,
            match=rf"^FUNNELHOUSE_WAREHOUSE_LOCK_WAIT must be a number of seconds \(0 or more\), not '{value}'$",
        ),
        writers.exclusive(pg_dsn, WAREHOUSE, holder="next", log=lambda _: None),
    ):
        pass


def test_the_lock_wait_is_an_hour_unless_set_and_zero_tries_once(pg_dsn, monkeypatch):
    monkeypatch.delenv("FUNNELHOUSE_WAREHOUSE_LOCK_WAIT", raising=False)
    assert writers.wait_seconds() == 3600
    monkeypatch.setenv("FUNNELHOUSE_WAREHOUSE_LOCK_WAIT", "0")
    release, first = _holding(pg_dsn, WAREHOUSE)
    try:
        started = time.monotonic()
        with (
            pytest.raises(writers.WarehouseBusy, match="gave up after 0 s"),
            writers.exclusive(pg_dsn, WAREHOUSE, holder="next", log=lambda _: None),
        ):
            pass
        assert time.monotonic() - started < 5
    finally:
        release.set()
        first.join(10)


def test_a_build_does_not_start_while_another_writer_runs(pg_dsn, clickhouse_env, monkeypatch):
    load_fixture(pg_dsn)
    monkeypatch.setenv("FUNNELHOUSE_WAREHOUSE_LOCK_WAIT", "0.5")
    release, first = _holding(pg_dsn, writers.lock_name(clickhouse_env), holder="a Dagster step")
    try:
        with pytest.raises(writers.WarehouseBusy, match="held by a Dagster step"):
            warehouse_build.build(freshness=False, log=lambda _: None)
    finally:
        release.set()
        first.join(10)
    tables = clickhouse_client().query(
        "select count() from system.tables where database = {db:String}", parameters={"db": clickhouse_env}
    )
    assert tables.result_rows == [(0,)]  # nothing was replicated


def test_funnelhouse_dbt_waits_for_the_other_writers_only_when_it_writes(
    pg_dsn, clickhouse_env, dbt_dirs, monkeypatch
):
    """`funnelhouse dbt run` is a writer like a build: with the warehouse busy it says who holds it and
    exits 1 without starting dbt. A command that only reads (`ls`) runs all the same."""
    from typer.testing import CliRunner

    from orchestration.cli import app

    monkeypatch.setenv("FUNNELHOUSE_WAREHOUSE_LOCK_WAIT", "0.5")
    release, first = _holding(pg_dsn, writers.lock_name(clickhouse_env), holder="a Dagster step")
    try:
        busy = CliRunner().invoke(app, ["dbt", "run", "--select", "int_dates__spine"])
        # a global option's value that is also a command's name ("debug") does not hide the command
        busy_too = CliRunner().invoke(
            app, ["dbt", "--log-level", "debug", "run", "--select", "int_dates__spine"]
        )
        listed = CliRunner().invoke(
            app,
            ["dbt", "ls", "--select", "mart_funnel_daily", "--resource-type", "model", "--output", "name"],
        )
    finally:
        release.set()
        first.join(10)
    assert busy.exit_code == 1 and "Error:" in busy.output and "held by a Dagster step" in busy.output
    assert "Running with dbt" not in busy.output  # dbt never started
    assert not isinstance(busy.exception, writers.WarehouseBusy)  # one line, no traceback
    assert busy_too.exit_code == 1 and "held by a Dagster step" in busy_too.output
    assert listed.exit_code == 0, listed.output
    assert "mart_funnel_daily" in listed.output.splitlines()


def _release_once_a_dagster_step_waits(pg_dsn: str, release: threading.Event) -> None:
    """Let go of the lock once a Dagster step's lock session is there and has tried it (it tries as
    soon as it connects, then every half second): however slowly Dagster starts, the step waits."""
    deadline = time.monotonic() + 60
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            waiting = "select count(*) from pg_stat_activity where application_name like 'dagster run %%'"
            if conn.execute(waiting).fetchone()[0]:
                time.sleep(1.5)
                break
            time.sleep(0.05)
    release.set()


def test_the_dagster_replication_step_waits_for_a_running_build(pg_dsn, clickhouse_env):
    from orchestration.defs.warehouse.replication_assets import replication_assets

    load_fixture(pg_dsn)
    release, first = _holding(pg_dsn, writers.lock_name(schema.raw_database()), holder="a shell build")
    threading.Thread(target=_release_once_a_dagster_step_waits, args=(pg_dsn, release), daemon=True).start()
    [employees] = [asset for asset in replication_assets if asset.key == dg.AssetKey(["raw", "employees"])]
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([employees], instance=instance)
    first.join(10)
    assert result.success
    logged = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert any("held by a shell build" in message for message in logged), logged
    with psycopg.connect(pg_dsn) as conn:
        [(employees_in_pg,)] = conn.execute("select count(*) from employees").fetchall()
    [(employees_in_raw,)] = (
        clickhouse_client().query(f"select count() from `{clickhouse_env}`.employees final").result_rows
    )
    assert employees_in_raw == employees_in_pg > 0


def _terminate_holder(pg_dsn: str, name: str) -> None:
    """End the session holding ``name`` as an administrator or a dropped connection would."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        [(pid, _, _)] = conn.execute(writers._HOLDERS_SQL, {"name": name}).fetchall()
        # (waits up to 10 s until the backend is gone, and its lock with it)
        assert conn.execute("select pg_terminate_backend(%s, 10000)", (pid,)).fetchone()[0]


def test_a_writer_whose_lock_was_lost_fails_loudly(pg_dsn):
    with (
        pytest.raises(writers.WarehouseLockLost, match="was lost while this writer held it"),
        writers.exclusive(pg_dsn, WAREHOUSE, holder="the first writer", wait=5) as lock,
    ):
        _terminate_holder(pg_dsn, WAREHOUSE)
        # Nothing stops a second writer now: why the first must not finish as if it had been alone.
        with writers.exclusive(pg_dsn, WAREHOUSE, holder="the second writer", wait=0):
            pass
        with pytest.raises(writers.WarehouseLockLost, match="its session was lost"):
            lock.ensure_held()  # what a writer can ask before a step that must not run unprotected


def test_a_writer_that_fails_after_losing_its_lock_keeps_its_own_error(pg_dsn):
    with (
        pytest.raises(ValueError, match="the writer's own failure") as failure,
        writers.exclusive(pg_dsn, WAREHOUSE, holder="the first writer", wait=5),
    ):
        _terminate_holder(pg_dsn, WAREHOUSE)
        raise ValueError("the writer's own failure")
    assert any("had been lost meanwhile" in note for note in failure.value.__notes__)


def test_a_build_notices_that_its_lock_was_lost(pg_dsn, clickhouse_env):
    """The lock's session ends while the build works (here: right when it plans dbt, with nothing
    to run); the build fails instead of reporting success."""
    client = clickhouse_client()
    schema.create_database(client, clickhouse_env)
    refresh_state.record_refresh(client, clickhouse_env, warehouse_build.marts_schema(), utc_now())
    lock = writers.lock_name(clickhouse_env)
    messages: list[str] = []

    def log(message: str) -> None:
        if not messages:
            _terminate_holder(pg_dsn, lock)
        messages.append(message)

    marked = refresh_state.last_refresh(client, clickhouse_env, warehouse_build.marts_schema())
    with pytest.raises(writers.WarehouseLockLost, match=f"{lock} was lost"):
        warehouse_build.build(skip_replication=True, freshness=False, log=log)
    assert messages and messages[0].startswith("dbt: nothing to run"), messages
    # Not marked as built: another writer may have raced this one.
    assert refresh_state.last_refresh(client, clickhouse_env, warehouse_build.marts_schema()) == marked
