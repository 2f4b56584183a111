"""A recorded pid names our service only together with the start time recorded with it: after a reboot
the id may belong to an unrelated process, which ``status`` must not report and ``down`` must not
signal. And a start interrupted before its server was recorded leaves no server behind."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from devstack import stack, state


@pytest.fixture
def foreign_process():
    """A live process that is not ours, in a process group of its own (as a server's would be)."""
    process = subprocess.Popen(["sleep", "120"], start_new_session=True)
    yield process
    process.kill()
    process.wait()


def test_the_start_time_is_read_past_a_command_name_holding_spaces_and_parentheses(tmp_path):
    odd = tmp_path / "x) 1 2 (y"  # the command name /proc/<pid>/stat shows in parentheses
    shutil.copy(shutil.which("sleep"), odd)
    process = subprocess.Popen([str(odd), "120"])
    try:
        started = state.process_start_time(process.pid)
        assert started is not None and started >= state.process_start_time(os.getpid())
        assert state.process_is(process.pid, started)
        assert not state.process_is(process.pid, started - 1)
    finally:
        process.kill()
        process.wait()
    assert not state.process_is(process.pid, started)


@pytest.fixture
def stack_recording_a_foreign_pid(foreign_process, tmp_path, monkeypatch):
    """A stack home whose services.json names, for every service, the pid ``foreign_process`` holds now,
    as after a reboot: recorded with the start time of the server that had it before."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("FUNNELHOUSE_HOME", str(home))
    for _, replaced_by in stack.SERVICES.values():
        monkeypatch.delenv(replaced_by, raising=False)
    before_reboot = state.process_start_time(foreign_process.pid) - 1
    entry = {"pid": foreign_process.pid, "pid_start_time": before_reboot, "host": "127.0.0.1", "port": 9}
    for name in stack.SERVICES:
        state.record_service(name, {**entry, "url": "http://127.0.0.1:9", "flavour": "elasticsearch"}, home)
    return home


def test_a_recorded_pid_now_held_by_another_process_is_not_running(stack_recording_a_foreign_pid):
    assert [running for _, running, _ in stack.status()] == [False] * len(stack.SERVICES)


def test_down_never_signals_another_process_holding_a_recorded_pid(
    stack_recording_a_foreign_pid, foreign_process
):
    list(stack.down())
    assert foreign_process.poll() is None, "down signalled a process that only got a recorded pid"
    assert state.read_services(stack_recording_a_foreign_pid) == {}


def test_the_recorded_process_itself_runs_and_an_entry_without_a_start_time_is_trusted(
    foreign_process, tmp_path
):
    from devstack.search import launcher

    entry = {"pid": foreign_process.pid, "flavour": "elasticsearch", "url": "http://127.0.0.1:9"}
    started = state.process_start_time(foreign_process.pid)
    state.record_service(launcher.SERVICE, {**entry, "pid_start_time": started}, tmp_path)
    assert launcher.status(tmp_path)["pid"] == foreign_process.pid
    # Recorded by an older version: nothing tells whose the pid is, so it counts as before.
    state.record_service(launcher.SERVICE, entry, tmp_path)
    assert launcher.status(tmp_path)["pid"] == foreign_process.pid


@pytest.mark.parametrize(
    ("service", "waits_with"), [("clickhouse", "_answers_as_ours"), ("smtp", "_answers")]
)
def test_a_start_interrupted_before_its_server_was_recorded_leaves_no_server(
    service, waits_with, tmp_path, monkeypatch
):
    """Else `down` could not stop it (not in services.json) and, for ClickHouse, it would hold the store
    against every later `up`."""
    module = stack._module(service)
    spawned = _record_spawned_pids(monkeypatch)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C while waiting for the server to answer

    monkeypatch.setattr(module, waits_with, interrupted)
    with pytest.raises(KeyboardInterrupt):
        module.start(tmp_path)
    (pid,) = spawned
    assert not state.pid_alive(pid)
    assert service not in state.read_services(tmp_path)


def _record_spawned_pids(monkeypatch) -> list[int]:
    """The pids of the processes ``subprocess.Popen`` starts from now on in this test."""
    spawned: list[int] = []
    real_popen = subprocess.Popen

    class RecordingPopen(real_popen):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            spawned.append(self.pid)

    monkeypatch.setattr(subprocess, "Popen", RecordingPopen)
    return spawned


def test_down_stops_only_what_a_postmaster_pid_file_names_when_it_is_a_postgres_of_that_data_dir(
    foreign_process, tmp_path, monkeypatch
):
    data = tmp_path / "home" / "postgres" / "data"
    data.mkdir(parents=True)
    (data / "PG_VERSION").write_text("18\n")
    (data / "postmaster.pid").write_text(f"{foreign_process.pid}\n{data}\n")
    monkeypatch.setenv("FUNNELHOUSE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FUNNELHOUSE_PG_DSN", raising=False)
    assert list(stack.down()) == []
    assert foreign_process.poll() is None


def test_without_proc_a_recorded_postgres_is_trusted_so_down_still_stops_it(
    foreign_process, tmp_path, monkeypatch
):
    """On a system without /proc (macOS) no start time is recorded and no command line can be read:
    the recorded postmaster pid is trusted, as before, or `down` would leave the server running."""
    from devstack import postgres

    data = tmp_path / "postgres" / "data"
    data.mkdir(parents=True)
    (data / "postmaster.pid").write_text(f"{foreign_process.pid}\n{data}\n")
    monkeypatch.setattr(state, "can_tell_processes_apart", lambda: False)
    monkeypatch.setattr(state, "_stat_fields", lambda pid: [])
    monkeypatch.setattr(postgres, "_runs_on", lambda pid, data: False)  # no /proc/<pid>/cmdline
    state.record_service(postgres.SERVICE, {"pid": foreign_process.pid, "pid_start_time": None}, tmp_path)
    assert postgres._ours_runs(tmp_path, data)


def test_stop_kills_a_hung_smtp_sink_and_forgets_it_only_once_it_is_gone(tmp_path, monkeypatch):
    """A sink that ignores SIGTERM gets SIGKILL after the grace time; its record is not dropped while
    it still runs, or `down` would leave it holding its port with nothing naming it."""
    from devstack import smtp

    hung = subprocess.Popen(_sleeping_python("SIG_IGN"), stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert hung.stdout.readline() == b"ready\n"  # SIGTERM is ignored from here on
        started = state.process_start_time(hung.pid)
        state.record_service(smtp.SERVICE, {"pid": hung.pid, "pid_start_time": started}, tmp_path)
        alive_when_forgotten = []
        real_forget = state.forget_service

        def forget_service(name, state_home=None):
            alive_when_forgotten.append(state.process_is(hung.pid, started))
            real_forget(name, state_home)

        monkeypatch.setattr(state, "forget_service", forget_service)
        monkeypatch.setattr(smtp, "STOP_TIMEOUT", 0.5, raising=False)  # not the 10 s a real sink gets
        smtp.stop(tmp_path)
        assert not state.process_is(hung.pid, started), "stop left a sink that ignores SIGTERM running"
        assert alive_when_forgotten == [False], "the sink was forgotten while it still ran"
        assert smtp.SERVICE not in state.read_services(tmp_path)
    finally:
        hung.kill()
        hung.wait()
        hung.stdout.close()


def test_down_stops_the_other_services_past_one_that_outlives_sigkill_and_exits_non_zero(
    tmp_path, monkeypatch
):
    """A process in uninterruptible sleep outlives SIGKILL (``terminate`` says False). `down` says so
    for that service, keeps it recorded, stops the services after it all the same, and the command
    exits non-zero, every time it is run while that lasts."""
    from typer.testing import CliRunner

    from orchestration.cli import app

    monkeypatch.setenv("FUNNELHOUSE_HOME", str(tmp_path))
    for _, replaced_by in stack.SERVICES.values():
        monkeypatch.delenv(replaced_by, raising=False)
    hung, search = (subprocess.Popen(["sleep", "120"], start_new_session=True) for _ in range(2))
    try:
        search_started = state.process_start_time(search.pid)
        state.record_service("smtp", {"pid": hung.pid, "pid_start_time": state.process_start_time(hung.pid)})
        state.record_service("search", {"pid": search.pid, "pid_start_time": search_started})
        real_terminate = state.terminate

        def terminate(pid, *args, **kwargs):
            return False if pid == hung.pid else real_terminate(pid, *args, **kwargs)

        monkeypatch.setattr(state, "terminate", terminate)
        lines = []
        with pytest.raises(RuntimeError) as raised:
            lines.extend(stack.down())  # `down` stops smtp first, then search
        assert lines == [
            f"smtp: still running (pid {hung.pid}) after SIGKILL; it stays recorded, run `funnelhouse down` again",
            "search: stopped",
        ]
        assert not state.process_is(search.pid, search_started)
        assert list(state.read_services(tmp_path)) == ["smtp"]
        assert isinstance(raised.value, stack.NotAllStopped) and raised.value.services == ["smtp"]

        result = CliRunner().invoke(app, ["down"], env={"FUNNELHOUSE_HOME": str(tmp_path), "COLUMNS": "200"})
        assert result.exit_code == 1, result.output
        assert f"smtp: still running (pid {hung.pid})" in result.output
    finally:
        for process in (hung, search):
            process.kill()
            process.wait()


def ignores_sigterm(pid: int) -> bool:
    """Whether process ``pid`` ignores SIGTERM (its /proc status's SigIgn mask)."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    status = dict(line.split(":", 1) for line in lines if ":" in line)
    return bool(int(status["SigIgn"], 16) & (1 << (signal.SIGTERM - 1)))


def _sleeping_python(on_sigterm: str) -> list[str]:
    """A Python that sets SIGTERM's disposition (``on_sigterm``: "SIG_DFL" or "SIG_IGN"), unblocks it,
    says "ready" and sleeps: the test's child stops on SIGTERM (or does not) whatever the worker running
    the test had done to its own signals, which its children would inherit."""
    code = (
        f"import signal, time; signal.signal(signal.SIGTERM, signal.{on_sigterm});"
        " signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM]); print('ready', flush=True);"
        " time.sleep(120)"
    )
    return [sys.executable, "-c", code]


def test_a_started_process_is_ended_and_reaped_keeping_its_exit_status():
    """`end_started_process` ends its Popen through ``terminate`` and reaps it through the Popen: the
    status says it was ended by SIGTERM (not 0, as when reaped behind the Popen's back)."""
    process = subprocess.Popen(_sleeping_python("SIG_DFL"), stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline() == "ready\n"
    process.stdout.close()
    state.end_started_process(process, grace_s=5)
    assert process.returncode == -signal.SIGTERM
    assert not state.pid_alive(process.pid)


def test_a_failed_start_ends_what_is_left_of_its_process_group_once_the_started_process_is_gone():
    """Elasticsearch's bin/elasticsearch runs a launcher JVM that starts the node's JVM as its child, in
    the same process group: the node must not outlive a failed start whose launcher already exited
    (and was reaped, as the search launcher's wait does)."""
    leader = subprocess.Popen(
        ["sh", "-c", "sleep 120 >/dev/null & echo $!"], stdout=subprocess.PIPE, start_new_session=True
    )
    child = int(leader.stdout.readline())
    leader.stdout.close()
    child_started = state.process_start_time(child)
    os.waitpid(leader.pid, 0)  # gone and reaped; its child still runs in its group
    try:
        assert state.process_is(child, child_started)
        state.end_started_process(leader, grace_s=2, group=True)
        assert not state.process_is(child, child_started), "the group's other process was left running"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)


@contextlib.contextmanager
def _group_with_a_member_ignoring_sigterm():
    """(leader, member pid, member start time): a leader in a session of its own, as a search engine's
    launcher is, and a child of it in its group that ignores SIGTERM (as the node JVM may), until the
    ``with`` ends (the member is then killed if it still runs)."""
    command = shlex.join(_sleeping_python("SIG_IGN"))
    leader = subprocess.Popen(
        ["sh", "-c", f"{command} >/dev/null & echo $!; wait"],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    member = int(leader.stdout.readline())
    leader.stdout.close()
    try:
        member_started = state.process_start_time(member)
        for _ in range(100):  # until the member's Python has set its disposition
            if ignores_sigterm(member):
                break
            time.sleep(0.05)
        assert ignores_sigterm(member)
        yield leader, member, member_started
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGKILL)


def test_a_process_group_member_that_ignores_sigterm_is_gone_when_the_failed_start_is_ended():
    """After the grace, SIGKILL ends the group's member; the end waits until it is gone (a SIGKILL is
    delivered, not done, when it is sent), as the next start reuses the ports and data it held."""
    with _group_with_a_member_ignoring_sigterm() as (leader, member, member_started):
        leader.kill()  # the launcher is gone (a failed start); its child still runs in its group
        leader.wait()
        state.end_started_process(leader, grace_s=0.2, group=True)
        assert not state.process_is(member, member_started), "the member outlived the end of its group"


@pytest.mark.parametrize("leader", ["running", "gone"])
def test_stopping_a_group_service_ends_what_is_left_of_its_group(leader, tmp_path):
    """Elasticsearch is recorded by its launcher JVM's pid, and the node JVM it starts (which holds the
    ports) is in its process group: `down` ends the node too, whether the launcher stops on SIGTERM
    first or was gone already, also where the node ignores SIGTERM."""
    with _group_with_a_member_ignoring_sigterm() as (launcher, node, node_started):
        state.record_service(
            "search",
            {"pid": launcher.pid, "pid_start_time": state.process_start_time(launcher.pid)},
            tmp_path,
        )
        if leader == "gone":
            launcher.kill()
        reaper = threading.Thread(target=launcher.wait)  # as init would reap the launcher
        reaper.start()
        state.stop_service("search", tmp_path, grace_s=0.2, group=True)
        reaper.join()
        assert not state.process_is(node, node_started), "the node outlived `down`"
        assert state.read_services(tmp_path) == {}


NOBODY = 65534


def _as_nobody(call: Callable[[], object]) -> str:
    """What ``call`` raised (its type's name and message) or "returned", in a forked child of this
    worker that has become user nobody: a user that may not signal root's processes."""
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        try:
            os.close(read_end)
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            try:
                call()
                outcome = "returned"
            except BaseException as error:  # noqa: BLE001 - the child reports whatever ended it
                outcome = f"{type(error).__name__}: {error}"
            os.write(write_end, outcome.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        outcome = pipe.read().decode()
    os.waitpid(child, 0)
    return outcome


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, to start a group another user may not signal")
def test_a_group_this_user_may_not_signal_is_said_so_and_left_running():
    """A group whose members all belong to another user (here root's, signalled as nobody; in life a
    setuid program a service started): its stop raises NotOursToSignal, a RuntimeError that `down`
    reports for that service before it goes on to the others, not a bare PermissionError's traceback."""
    with _group_with_a_member_ignoring_sigterm() as (leader, member, member_started):
        outcome = _as_nobody(
            lambda: state.terminate(leader.pid, state.process_start_time(leader.pid), 0.2, group=True)
        )
        assert outcome.startswith("NotOursToSignal: "), outcome
        assert f"process group {leader.pid} belongs to another user" in outcome
        assert state.process_is(member, member_started), "nobody could not have ended root's process"
        leader.kill()
        leader.wait()
