"""Backups restore: a full backup, a change, an incremental backup, then a server started on the
combined chain holds the change. Retention keeps what a kept backup still needs.

They run against a PostgreSQL server of their own: a physical backup copies the whole cluster, and
the session's shared server holds every other test's data."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from psycopg import sql

from devstack import postgres
from ingestion.maintenance import backups
from orchestration.defs.warehouse.dbt_environment import REPO_ROOT
from tests.warehouse.test_run_dbt_signals import _running


@pytest.fixture(scope="module")
def pg_server(service_dirs):
    """A small cluster of the module's own (shadows the session's shared server)."""
    home = service_dirs("backup-source")
    info = postgres.start(home)
    yield info
    postgres.stop(home)


def test_full_then_incremental_backup_restores_the_latest_state(pg_server, service_dirs, tmp_path):
    dsn = pg_server["dsn"]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS backup_probe (note text)")
        conn.execute("TRUNCATE backup_probe")
        conn.execute("INSERT INTO backup_probe VALUES ('before full')")
    root = tmp_path / "backups"
    full = backups.take_backup(dsn, root, "full")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO backup_probe VALUES ('after full')")
    incremental = backups.take_backup(dsn, root, "incremental")
    assert (full.kind, incremental.kind, incremental.parent) == ("full", "incremental", full.name)
    assert not list(root.glob(".*partial")), "no half-written backup left behind"

    restored_home = service_dirs("restored")
    data = restored_home / "postgres" / "data"
    data.parent.mkdir(parents=True)
    backups.restore(root, data)
    postgres.adopt_data_dir(data)
    shutil.copytree(pg_server_home(pg_server) / "secrets", restored_home / "secrets")
    info = postgres.start(restored_home)
    try:
        with psycopg.connect(info["dsn"]) as conn:
            notes = [row[0] for row in conn.execute("SELECT note FROM backup_probe ORDER BY note")]
        assert notes == ["after full", "before full"]
    finally:
        postgres.stop(restored_home)


def pg_server_home(pg_server):
    """The state home the session server runs in (its secrets are copied to the restored one)."""
    return Path(pg_server["data"]).parents[1]


def test_incremental_without_a_full_backup_becomes_full(pg_server, tmp_path):
    backup = backups.take_backup(pg_server["dsn"], tmp_path, "incremental")
    assert backup.kind == "full" and backup.parent is None


def test_retention_keeps_chains_that_kept_backups_need(pg_server, tmp_path):
    start = datetime(2026, 1, 1, 3, tzinfo=UTC)
    old_full = backups.take_backup(pg_server["dsn"], tmp_path, "full", now=start)
    needed_incremental = backups.take_backup(
        pg_server["dsn"], tmp_path, "incremental", now=start + timedelta(days=20)
    )
    removed = backups.prune(tmp_path, now=start + timedelta(days=40))
    assert removed == [], "the old full backup is the base of a kept incremental one"
    # A month of failed backup runs (retention runs after each): the last restorable chain stays.
    removed = backups.prune(tmp_path, now=start + timedelta(days=60))
    assert removed == [], "the newest backup and its base are kept however old"
    backups.take_backup(pg_server["dsn"], tmp_path, "full", now=start + timedelta(days=60))
    removed = backups.prune(tmp_path, now=start + timedelta(days=60))
    assert removed == [old_full.name, needed_incremental.name]


def test_offsite_copy_lands_whole(pg_server, tmp_path):
    backup = backups.take_backup(pg_server["dsn"], tmp_path / "local", "full")
    assert backups.copy_offsite(backup, f"file://{tmp_path / 'offsite'}") == [backup.name]
    copies = sorted(c.name for c in (tmp_path / "offsite").iterdir())
    assert copies == [f"{backup.name}.json", f"{backup.name}.tar.gz"]
    import tarfile

    with tarfile.open(tmp_path / "offsite" / f"{backup.name}.tar.gz") as tar:
        assert f"{backup.name}/backup_manifest" in tar.getnames()


def test_offsite_copy_keeps_whole_chains_and_the_retention_rule(pg_server, tmp_path):
    """Off-site turned on after a full backup: the first incremental copied brings its base along.
    An interrupted upload (archive without its JSON) is sent again. Old chains are pruned off-site
    by the local rule, never a base a kept backup needs."""
    url = f"file://{tmp_path / 'offsite'}"
    start = datetime(2026, 1, 1, 3, tzinfo=UTC)
    full = backups.take_backup(pg_server["dsn"], tmp_path / "local", "full", now=start)
    incremental = backups.take_backup(
        pg_server["dsn"], tmp_path / "local", "incremental", now=start + timedelta(days=20)
    )
    (tmp_path / "offsite").mkdir()
    (tmp_path / "offsite" / f"{full.name}.tar.gz").write_bytes(b"cut off")

    assert backups.copy_offsite(incremental, url) == [full.name, incremental.name]
    assert [c.name for c in backups.list_offsite(url)] == [full.name, incremental.name]
    assert (tmp_path / "offsite" / f"{full.name}.tar.gz").stat().st_size > len(b"cut off")
    assert backups.copy_offsite(incremental, url) == [], "a second run copies nothing again"

    assert backups.prune_offsite(url, now=start + timedelta(days=40)) == []
    assert backups.prune_offsite(url, now=start + timedelta(days=60)) == [], "the newest chain stays"
    newer = backups.take_backup(pg_server["dsn"], tmp_path / "local", "full", now=start + timedelta(days=60))
    backups.copy_offsite(newer, url)
    assert backups.prune_offsite(url, now=start + timedelta(days=60)) == [full.name, incremental.name]
    assert [c.name for c in backups.list_offsite(url)] == [newer.name]


def _local_archives(root: Path) -> list[str]:
    return sorted(path.name for path in root.glob(".*.tar.gz*"))


def test_a_failed_upload_leaves_no_archive_beside_the_backups(pg_server, tmp_path):
    """An upload that fails (here its temporary name is taken by a folder) fails the copy, and the
    local archive, as big as the backup, is removed with it; the next copy sends it."""
    backup = backups.take_backup(pg_server["dsn"], tmp_path / "local", "full")
    offsite = tmp_path / "offsite"
    (offsite / f"{backup.name}.tar.gz.partial").mkdir(parents=True)

    with pytest.raises(OSError):
        backups.copy_offsite(backup, f"file://{offsite}")
    assert _local_archives(tmp_path / "local") == []
    assert backups.list_offsite(f"file://{offsite}") == []

    (offsite / f"{backup.name}.tar.gz.partial").rmdir()
    assert backups.copy_offsite(backup, f"file://{offsite}") == [backup.name]
    assert _local_archives(tmp_path / "local") == []


def test_a_killed_copys_archive_goes_with_the_next_copy_and_a_live_ones_stays(pg_server, tmp_path, caplog):
    """An archive no run holds (a copy killed mid-upload, by this version or an older one) is removed
    by the next copy, with a warning; one whose copy still holds its lock is left to it."""
    root = tmp_path / "local"
    backup = backups.take_backup(pg_server["dsn"], root, "full")
    (root / ".20260101T030000Z-full.tar.gz").write_bytes(b"killed mid-upload")
    live = root / ".20260102T030000Z-full.tar.gz"
    live.write_bytes(b"being uploaded")
    live_lock = root / f"{live.name}.lock"
    held = backups._try_lock(live_lock)
    try:
        with caplog.at_level(logging.WARNING, logger=backups.__name__):
            assert backups.copy_offsite(backup, f"file://{tmp_path / 'offsite'}") == [backup.name]
        assert _local_archives(root) == [live.name, live_lock.name]
    finally:
        backups._unlock(live_lock, held)
    assert any(".20260101T030000Z-full.tar.gz" in message for message in caplog.messages), caplog.messages


def test_backup_job_runs_in_dagster(pg_server, tmp_path, monkeypatch):
    from orchestration.defs.operations.jobs import postgres_backup_job

    monkeypatch.setenv("FUNNELHOUSE_PG_DSN", pg_server["dsn"])
    monkeypatch.setenv("FUNNELHOUSE_BACKUP_DIR", str(tmp_path / "b"))
    monkeypatch.setenv("FUNNELHOUSE_BACKUP_OFFSITE_URL", f"file://{tmp_path / 'offsite'}")
    result = postgres_backup_job.execute_in_process(
        run_config={"ops": {"take_postgres_backup": {"config": {"kind": "incremental"}}}}
    )
    assert result.success
    assert [b.kind for b in backups.list_backups(tmp_path / "b")] == ["full"]
    assert len(list((tmp_path / "offsite").glob("*.tar.gz"))) == 1
    assert _step_metadata(result)["offsite"] is True


def _step_metadata(result) -> dict:
    (output,) = [event for event in result.all_events if event.event_type_value == "STEP_OUTPUT"]
    return {key: value.value for key, value in output.event_specific_data.metadata.items()}


def test_backup_job_warns_without_an_offsite_copy(pg_server, tmp_path, monkeypatch):
    from orchestration.defs.operations.jobs import postgres_backup_job

    monkeypatch.setenv("FUNNELHOUSE_PG_DSN", pg_server["dsn"])
    monkeypatch.setenv("FUNNELHOUSE_BACKUP_DIR", str(tmp_path / "b"))
    monkeypatch.delenv("FUNNELHOUSE_BACKUP_OFFSITE_URL", raising=False)
    with dg.instance_for_test() as instance:
        result = postgres_backup_job.execute_in_process(instance=instance)
        assert result.success and _step_metadata(result)["offsite"] is False
        warnings = [
            entry.user_message for entry in instance.all_logs(result.run_id) if entry.level == logging.WARNING
        ]
    assert any("FUNNELHOUSE_BACKUP_OFFSITE_URL" in message for message in warnings), warnings


def _run_backup_job(monkeypatch, dsn, root, offsite, kind="full", instance=None):
    from orchestration.defs.operations.jobs import postgres_backup_job

    monkeypatch.setenv("FUNNELHOUSE_PG_DSN", dsn)
    monkeypatch.setenv("FUNNELHOUSE_BACKUP_DIR", str(root))
    monkeypatch.setenv("FUNNELHOUSE_BACKUP_OFFSITE_URL", offsite)
    return postgres_backup_job.execute_in_process(
        run_config={"ops": {"take_postgres_backup": {"config": {"kind": kind}}}},
        instance=instance,
        raise_on_error=False,
    )


def _failure(result) -> str:
    """The step's error with its causes, as the run's failure shows it."""
    assert not result.success
    return result.failure_data_for_node("take_postgres_backup").error.to_string()


def test_backup_job_with_the_offsite_package_missing_fails_naming_it_and_still_prunes(
    pg_server, tmp_path, monkeypatch
):
    """An off-site URL whose fsspec package is not installed (s3:// without s3fs) fails the run
    before pg_basebackup, naming the package to install; a 40-day-old backup is pruned all the same.
    The protocol is registered here, pointing at a package that does not exist, so the test holds
    wherever s3fs happens to be installed."""
    from fsspec.registry import known_implementations

    monkeypatch.setitem(
        known_implementations,
        "absentfs",
        {"class": "funnelhouse_absent_fs.AbsentFileSystem", "err": "Install funnelhouse_absent_fs"},
    )
    root = tmp_path / "b"
    old = backups.take_backup(pg_server["dsn"], root, "full", now=datetime.now(UTC) - timedelta(days=40))

    result = _run_backup_job(monkeypatch, pg_server["dsn"], root, "absentfs://bucket/pg")

    assert "pip install funnelhouse_absent_fs" in _failure(result)
    assert not old.path.exists(), "retention ran although the run failed"
    assert [b.kind for b in backups.list_backups(root)] == ["full"], "the local backup is taken all the same"


def test_missing_s3fs_is_named_with_the_package_to_install():
    """The README's example URL, where s3fs is not installed (it is an optional extra)."""
    import importlib.util

    if importlib.util.find_spec("s3fs"):
        pytest.skip("s3fs is installed here")
    with pytest.raises(backups.OffsiteStoreUnavailable, match="pip install s3fs"):
        backups.check_offsite("s3://bucket/pg")


def test_backup_job_prunes_when_the_offsite_store_fails(pg_server, tmp_path, monkeypatch):
    """An off-site store that cannot be written (here a folder under a plain file) fails the run
    after the local backup; local retention still runs, so full backups never pile up."""
    root = tmp_path / "b"
    old = backups.take_backup(pg_server["dsn"], root, "full", now=datetime.now(UTC) - timedelta(days=40))
    not_a_folder = tmp_path / "not-a-folder"
    not_a_folder.write_text("")

    result = _run_backup_job(monkeypatch, pg_server["dsn"], root, f"file://{not_a_folder}/offsite")

    assert "not-a-folder" in _failure(result)
    assert not old.path.exists(), "retention ran although the off-site copy failed"
    assert [b.kind for b in backups.list_backups(root)] == ["full"], "the new local backup is kept"


def _set_summarize_wal(dsn: str, value: str) -> None:
    """ALTER SYSTEM and reload, then wait until a new session sees it (the reload is asynchronous)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER SYSTEM SET summarize_wal = {}").format(sql.Literal(value)))
        conn.execute("SELECT pg_reload_conf()")
    deadline = time.monotonic() + 30
    while True:
        with psycopg.connect(dsn) as conn:
            if conn.execute("SHOW summarize_wal").fetchone()[0] == value:
                return
        assert time.monotonic() < deadline, f"summarize_wal never became {value}"
        time.sleep(0.1)


def test_incremental_without_wal_summaries_is_a_full_backup_with_a_warning(pg_server, tmp_path, monkeypatch):
    """A server that cannot take an incremental backup (summarize_wal off here; PostgreSQL 14-16
    alike) gets a full one from the 6-hourly run, recorded as full, and the run warns why."""
    dsn = pg_server["dsn"]
    root = tmp_path / "b"
    base = backups.take_backup(dsn, root, "full", now=datetime.now(UTC) - timedelta(hours=6))
    _set_summarize_wal(dsn, "off")
    try:
        with dg.instance_for_test() as instance:
            result = _run_backup_job(
                monkeypatch, dsn, root, f"file://{tmp_path / 'offsite'}", "incremental", instance
            )
            assert result.success
            warnings = [
                entry.user_message
                for entry in instance.all_logs(result.run_id)
                if entry.level == logging.WARNING
            ]
    finally:
        _set_summarize_wal(dsn, "on")

    assert any("summarize_wal" in message for message in warnings), warnings
    (_, taken) = backups.list_backups(root)
    assert (taken.kind, taken.parent, taken.name.endswith("-full")) == ("full", None, True)
    assert taken.name != base.name
    verified = subprocess.run(
        [str(postgres.binary("pg_verifybackup")), "--ignore=funnelhouse_backup.json", str(taken.path)],
        capture_output=True,
        text=True,
    )
    assert verified.returncode == 0, verified.stderr
    assert [copy.kind for copy in backups.list_offsite(f"file://{tmp_path / 'offsite'}")] == ["full"]


def test_connection_string_is_read_as_libpq_reads_it():
    """Percent-encoded URL parts are decoded, query parameters kept; the password only in the environment."""
    from psycopg.conninfo import conninfo_to_dict

    args, env = backups._connection_args("postgresql://app:p%40ss%2Fw@db.internal:6432/crm?sslmode=require")
    assert env["PGPASSWORD"] == "p@ss/w"
    assert args[0] == "-d" and "p@ss" not in args[1] and "p%40ss" not in args[1]
    assert conninfo_to_dict(args[1]) == {
        "host": "db.internal",
        "port": "6432",
        "user": "app",
        "dbname": "crm",
        "sslmode": "require",
    }


def test_backup_with_a_keyword_value_dsn(pg_server, tmp_path):
    """``host=... port=... password=...``, accepted by psycopg everywhere else, backs up that server."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    keyword_dsn = make_conninfo(**conninfo_to_dict(pg_server["dsn"]))
    assert not keyword_dsn.startswith("postgresql://")
    backup = backups.take_backup(keyword_dsn, tmp_path, "full")
    assert (backup.path / "backup_manifest").exists()


# A backup run killed outright (kill -9 of the process running it, the OOM killer). pg_basebackup is
# slowed by its own --max-rate (a wrapper that execs it, so it keeps the pid and the death signal)
# to stay mid-backup for minutes: the test cluster alone would be copied in a second. With a pause, the
# run stops right after starting pg_basebackup, as a run the scheduler leaves waiting on a busy machine
# does, to be killed before it does anything more.
_RUN = """
import os, sys, time
from datetime import datetime
from pathlib import Path
from devstack import postgres
from ingestion.maintenance import backups

slow, root, now, pause = sys.argv[1:]
backups.binary = lambda name: Path(slow) if name == "pg_basebackup" else postgres.binary(name)
start_bound = backups.start_bound

def start_and_pause(*args, **kwargs):
    started = start_bound(*args, **kwargs)
    time.sleep(float(pause))
    return started

backups.start_bound = start_and_pause
backups.take_backup(os.environ["BACKUP_DSN"], Path(root), "full", now=datetime.fromisoformat(now))
"""


def _start_backup_run(dsn: str, root, tmp_path, now: datetime, pause: float = 0) -> subprocess.Popen:
    """A process running ``take_backup`` (pausing ``pause`` seconds once pg_basebackup is started),
    returned once pg_basebackup and the child it forks to stream WAL both write into the run's
    ``.partial``."""
    slow = tmp_path / "slow-backup.sh"
    slow.write_text(f'#!/bin/sh\nexec {postgres.binary("pg_basebackup")} "$@" --max-rate=32k\n')
    slow.chmod(0o755)
    run = subprocess.Popen(
        [sys.executable, "-c", _RUN, str(slow), str(root), now.isoformat(), str(pause)],
        cwd=REPO_ROOT,
        env={**os.environ, "BACKUP_DSN": dsn},  # its password kept out of the process list
    )
    deadline = time.monotonic() + 60
    while len(_basebackups_writing(root)) < 2:
        assert run.poll() is None, f"the backup run ended early ({run.returncode})"
        assert time.monotonic() < deadline, "pg_basebackup never started streaming"
        time.sleep(0.05)
    return run


def _basebackups_writing(root) -> list[int]:
    """pids of the live pg_basebackup processes writing under ``root`` (found in /proc: once their
    parent is killed they are nobody's children any more)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue  # ended meanwhile
        ours = argv[0].endswith(b"pg_basebackup") and any(str(root).encode() in arg for arg in argv)
        if ours and _running(int(proc.name)):
            pids.append(int(proc.name))
    return pids


def _gone(root, seconds: float = 10) -> list[int]:
    """The pg_basebackup processes of ``root`` still alive after waiting up to ``seconds``."""
    deadline = time.monotonic() + seconds
    while (alive := _basebackups_writing(root)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive


def _stop(run: subprocess.Popen, root) -> None:
    """Clean up after a test: the run, and any pg_basebackup of it left running."""
    if run.poll() is None:
        run.kill()
    run.wait()
    for pid in _basebackups_writing(root):
        os.kill(pid, signal.SIGKILL)


# The processes of a run are found in /proc (and pg_basebackup dies with its run by PR_SET_PDEATHSIG).
_linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")


def _partials(root) -> list[str]:
    return sorted(path.name for path in root.glob(".*.partial*"))


@_linux_only
@pytest.mark.parametrize("pause", [0, 60], ids=["mid-backup", "right-after-starting-pg_basebackup"])
def test_a_killed_backup_run_leaves_no_pg_basebackup_running(pg_server, tmp_path, pause):
    root = tmp_path / "b"
    run = _start_backup_run(pg_server["dsn"], root, tmp_path, datetime.now(UTC), pause)
    try:
        run.kill()
        run.wait()
        assert _gone(root) == [], "pg_basebackup (or its WAL-streaming child) outlived the killed run"
    finally:
        _stop(run, root)


@_linux_only
def test_the_next_run_clears_a_killed_runs_partial_and_succeeds(pg_server, tmp_path, caplog):
    root = tmp_path / "b"
    killed_at = datetime.now(UTC) - timedelta(hours=6)
    run = _start_backup_run(pg_server["dsn"], root, tmp_path, killed_at)
    stale = f".{killed_at.strftime(backups._STAMP)}-full.partial"
    try:
        run.kill()
        run.wait()
        # the lock is free once the last process of the run has ended
        assert _gone(root) == [], "pg_basebackup (or its WAL-streaming child) outlived the killed run"
        assert stale in _partials(root)

        with caplog.at_level(logging.WARNING, logger=backups.__name__):
            backup = backups.take_backup(pg_server["dsn"], root, "incremental")
    finally:
        _stop(run, root)

    assert _partials(root) == [], "the killed run's partial (and its lock file) are removed"
    assert any(stale in message and "removed" in message for message in caplog.messages), caplog.messages
    assert (backup.kind, backup.parent) == ("full", None), "nothing builds on the unfinished backup"
    assert backups.list_backups(root) == [backup]


@_linux_only
def test_a_partial_whose_run_is_alive_is_left_alone(pg_server, tmp_path):
    """Another run still writing its backup: a run of another name leaves its partial alone, and one
    of the same name (same second, same kind) refuses instead of deleting it."""
    root = tmp_path / "b"
    now = datetime.now(UTC)
    live = _start_backup_run(pg_server["dsn"], root, tmp_path, now)
    try:
        writers = _basebackups_writing(root)
        with pytest.raises(RuntimeError, match="already being taken by another run"):
            backups.take_backup(pg_server["dsn"], root, "full", now=now)
        backup = backups.take_backup(pg_server["dsn"], root, "full", now=now + timedelta(seconds=1))

        live_partial = root / f".{now.strftime(backups._STAMP)}-full.partial"
        assert (live_partial / "PG_VERSION").exists(), "the live run's partial is untouched"
        assert sorted(_basebackups_writing(root)) == sorted(writers), "its pg_basebackup still runs"
        assert backups.list_backups(root) == [backup]
        assert backups.prune(root, now=now + timedelta(days=90)) == []
    finally:
        _stop(live, root)


def test_a_partial_is_never_taken_for_a_finished_backup(pg_server, tmp_path):
    """A run killed between writing the JSON and the rename, by a version without the lock file:
    listing and retention ignore it, the next incremental run does not build on it, and clears it."""
    root = tmp_path / "b"
    partial = root / ".20260101T030000Z-full.partial"
    partial.mkdir(parents=True)
    taken_at = datetime(2026, 1, 1, 3, tzinfo=UTC)
    (partial / "funnelhouse_backup.json").write_text(
        json.dumps(backups.Backup(partial, "full", taken_at, None).meta())
    )

    assert backups.list_backups(root) == []
    assert backups.prune(root, now=taken_at + timedelta(days=90)) == [] and partial.exists()
    backup = backups.take_backup(pg_server["dsn"], root, "incremental")
    assert (backup.kind, backup.parent) == ("full", None)
    assert _partials(root) == []


def test_backup_schedules_and_retention_are_the_seeds():
    """Seed section 6, 数据备份策略: "**全量备份**: 每天凌晨3点" (a full backup every day at 3 am),
    "**增量备份**: 每6小时一次" (an incremental one every 6 hours), "**备份保留**: 30天" (kept 30 days).
    On the team's clock (FUNNELHOUSE_TIMEZONE, the clock every schedule runs on), not the server's;
    the incremental backups take the other 6-hourly slots, 03:00 being the full backup's."""
    from orchestration import environment
    from orchestration.defs.operations import schedules

    full, incremental = schedules.full_backup_schedule, schedules.incremental_backup_schedule
    assert full.cron_schedule == "0 3 * * *"
    assert incremental.cron_schedule == "0 9,15,21 * * *"
    hours = [
        int(hour) for schedule in (full, incremental) for hour in schedule.cron_schedule.split()[1].split(",")
    ]
    assert sorted(hours) == list(range(3, 24, 6))
    assert full.execution_timezone == incremental.execution_timezone == environment.schedule_timezone()
    assert backups.RETENTION_DAYS == 30
