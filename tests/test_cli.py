"""The ``funnelhouse`` console script as a user meets it in a shell."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_console_script_is_the_guarded_entry_point():
    (script,) = metadata.entry_points(group="console_scripts", name="funnelhouse")
    assert script.value == "orchestration.cli:main"


def _funnelhouse(home: Path, *arguments: str, **env: str) -> subprocess.CompletedProcess:
    """The command as a shell runs it, on a stack home of its own, its output read through a pipe."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("FUNNELHOUSE_") and name != "COLUMNS"
    }
    environment.update(FUNNELHOUSE_HOME=str(home), **env)
    return subprocess.run(
        [sys.executable, "-m", "orchestration.cli", *arguments],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_command_needing_a_service_nobody_started_says_to_run_up(tmp_path):
    """No ClickHouse configured and none running: one line saying what to do, no traceback."""
    result = _funnelhouse(tmp_path, "marts", COLUMNS="200")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "╭" not in result.stderr, result.stderr
    assert result.stderr.startswith("Error: no clickhouse address configured and no embedded clickhouse"), (
        result.stderr
    )
    assert "`funnelhouse up`" in result.stderr


def test_services_recorded_before_a_crash_are_not_trusted(tmp_path):
    """services.json outlives a reboot: its servers' processes are gone. Each command needing one says
    in one line to start it again (not a refused connection's traceback); status shows them stopped and
    asks no absent ClickHouse for refresh marks (its driver would warn on stderr)."""
    from devstack import state

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    address = {"host": "127.0.0.1", "port": 1, "user": "default", "password": "unused", "pid": gone.pid}
    state.record_service(
        "postgres", {**address, "dsn": "postgresql://default:unused@127.0.0.1:1/crm"}, tmp_path
    )
    state.record_service("clickhouse", address, tmp_path)

    status = _funnelhouse(tmp_path, "status", COLUMNS="200")
    assert status.returncode == 0 and status.stderr == "", status.stderr
    assert "clickhouse │ stopped" in status.stdout and "postgres   │ stopped" in status.stdout, status.stdout
    for command, service in (("migrate", "postgres"), ("marts", "clickhouse")):
        result = _funnelhouse(tmp_path, command, COLUMNS="200")
        assert result.returncode == 1, result.stderr
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.startswith(f"Error: {service} is not running: "), result.stderr
        assert f"(pid {gone.pid})" in result.stderr and "`funnelhouse up`" in result.stderr


def test_production_never_falls_back_to_the_embedded_stack(tmp_path):
    """FUNNELHOUSE_ENV=prod with a service's variable forgotten: the command stops naming the variable,
    even with an embedded server recorded as running in the state home (here: this test's process),
    instead of reading and writing that stack as if it were production."""
    from devstack import state

    address = {"host": "127.0.0.1", "port": 1, "user": "default", "password": "unused", "pid": os.getpid()}
    state.record_service("clickhouse", address, tmp_path)
    result = _funnelhouse(tmp_path, "marts", COLUMNS="200", FUNNELHOUSE_ENV="prod")
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("Error: FUNNELHOUSE_ENV=prod needs FUNNELHOUSE_CLICKHOUSE_URL set"), (
        result.stderr
    )


def test_up_in_production_starts_nothing_embedded(tmp_path):
    """`funnelhouse up` under FUNNELHOUSE_ENV=prod with a variable missing: one line naming every
    missing variable, and no embedded server started for it."""
    from devstack import state

    result = _funnelhouse(
        tmp_path,
        "up",
        COLUMNS="200",
        FUNNELHOUSE_ENV="prod",
        FUNNELHOUSE_PG_DSN="postgresql://u@127.0.0.1:1/crm",
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("Error: FUNNELHOUSE_ENV=prod starts no embedded service: set "), (
        result.stderr
    )
    for variable in ("FUNNELHOUSE_CLICKHOUSE_URL", "FUNNELHOUSE_SEARCH_URL", "FUNNELHOUSE_SMTP_URL"):
        assert variable in result.stderr
    assert "FUNNELHOUSE_PG_DSN" not in result.stderr
    assert "FUNNELHOUSE_WARM_DBT_SOCKET" not in result.stderr  # optional: without it dbt starts cold
    assert state.read_services(tmp_path) == {}


def test_status_checks_that_a_configured_server_answers(tmp_path):
    """A configured address is not shown running on the strength of its variable: status tries it
    (here a port nobody listens on), says so, and asks the absent ClickHouse nothing."""
    result = _funnelhouse(tmp_path, "status", COLUMNS="200", FUNNELHOUSE_CLICKHOUSE_URL="http://127.0.0.1:1")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert "clickhouse │ stopped │ FUNNELHOUSE_CLICKHOUSE_URL (configured, not answering)" in result.stdout, (
        result.stdout
    )


def test_status_tries_the_port_the_client_takes_for_a_url_without_one(monkeypatch):
    """A ClickHouse URL without a port means 8123 (http) or 8443 (https) to the clients, not HTTP's
    80 or 443 (a fixed port cannot be listened on here: a test server may hold it)."""
    from devstack import stack

    tried = []

    def refuse(address, timeout):
        tried.append(address)
        raise ConnectionRefusedError

    monkeypatch.setattr(stack.socket, "create_connection", refuse)
    for url in ("http://ch.internal", "https://ch.internal"):
        assert stack._accepts_connections("clickhouse", url) is False
    assert stack._accepts_connections("smtp", "smtps://mail.internal") is False
    assert tried == [("ch.internal", 8123), ("ch.internal", 8443), ("mail.internal", 465)]


def test_a_state_home_that_cannot_be_made_is_one_line():
    """A FUNNELHOUSE_HOME under a path nobody can create in: one line naming the home and why, exit 1
    as for any other fault of the environment, not the traceback of the mkdir deep in the stack. (Why
    depends on who asks: root is told /proc has no such file, anyone else that permission is denied.)"""
    for home, cause in (("/proc/fhtest", ""), ("/proc/fhtest/stack", " (/proc/fhtest)")):
        result = _funnelhouse(Path(home), "status", COLUMNS="200")
        assert result.returncode == 1, result.stderr
        first, *more = result.stderr.splitlines()
        assert not more and first.startswith(f"Error: FUNNELHOUSE_HOME {home} cannot be written or read: "), (
            result.stderr
        )
        assert first.endswith(cause), first


def test_output_into_a_pipe_or_log_keeps_paths_whole(tmp_path):
    """Away from a terminal (`make demo | tee`, CI logs) a path a command prints to say where to look
    stays on one line: rich would otherwise wrap it at 80 columns, mid-name."""
    home = tmp_path / ("a-state-home-with-a-name-long-enough-to-pass-eighty-columns" + "-" * 30)
    result = _funnelhouse(home, "status")
    assert result.returncode == 0, result.stderr
    assert f"passwords of the embedded services: {home / 'secrets'} (never printed)\n" in result.stdout


def test_status_names_a_search_url_that_answers(tmp_path):
    """The engine's address is its clients' base URL, where the stack's Elasticsearch answers a GET
    with 405: status says what to curl instead. No engine is started: the services file records one
    running as this process."""
    from typer.testing import CliRunner

    from devstack import state
    from orchestration.cli import app

    state.record_service("search", {"url": "http://127.0.0.1:9211", "pid": os.getpid()}, tmp_path)
    result = CliRunner().invoke(app, ["status"], env={"FUNNELHOUSE_HOME": str(tmp_path), "COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "`curl http://127.0.0.1:9211/_cluster/health?pretty`" in result.output, result.output


def test_dbt_show_leaves_out_the_tests_of_what_it_selects(monkeypatch):
    """`funnelhouse dbt show --select dim_customers` (as the README says) would also show the model's
    tests, one of which dbt-clickhouse ends in a `settings` clause dbt's `limit` cannot follow."""
    from orchestration.commands.warehouse import dbt_arguments

    monkeypatch.delenv("DBT_INDIRECT_SELECTION", raising=False)
    assert dbt_arguments(["show", "--select", "dim_customers"]) == [
        "show",
        "--select",
        "dim_customers",
        "--indirect-selection",
        "empty",
    ]
    # A mode the user chose is theirs; other commands (even one selecting a model named "show") keep
    # their tests.
    for arguments in (
        ["show", "-s", "dim_customers", "--indirect-selection", "eager"],
        ["show", "-s", "dim_customers", "--indirect-selection=cautious"],
        ["build", "--select", "dim_customers"],
        ["ls", "--select", "show"],
    ):
        assert dbt_arguments(arguments) == arguments
    monkeypatch.setenv("DBT_INDIRECT_SELECTION", "buildable")
    assert dbt_arguments(["show", "-s", "dim_customers"]) == ["show", "-s", "dim_customers"]


def test_docs_serve_generates_the_site_only_when_the_one_there_is_not_current(tmp_path):
    """`funnelhouse docs --serve` serves the site as it is when each of its files is newer than the
    manifest builds and dbt commands write; otherwise it says why it generates it again."""
    from orchestration.commands.warehouse import DOCS_SITE_FILES, docs_out_of_date

    site, manifest = tmp_path / "docs", tmp_path / "manifest.json"
    assert docs_out_of_date(site, manifest) == f"none in {site} yet"
    site.mkdir()
    for age, name in enumerate(DOCS_SITE_FILES):
        (site / name).write_text("{}")
        os.utime(site / name, (1_000 + age, 1_000 + age))
    assert docs_out_of_date(site, manifest) == f"no {manifest} to tell whether the ones there are current"
    manifest.write_text("{}")
    os.utime(manifest, (999, 999))
    assert docs_out_of_date(site, manifest) is None
    os.utime(manifest, (1_001, 1_001))  # rewritten after the site's first file was generated
    assert (
        docs_out_of_date(site, manifest) == "the ones there were older than the last dbt command's manifest"
    )
    (site / "catalog.json").unlink()
    assert docs_out_of_date(site, manifest) == f"none in {site} yet"


class _SlowStream(io.StringIO):
    """A stdout on which a thread is likely to be switched out between two writes."""

    def write(self, text: str) -> int:
        written = super().write(text)
        time.sleep(0.0001)
        return written


def test_lines_logged_from_many_threads_never_run_together(monkeypatch):
    """A build's replication workers log through the callback at once: each line stays whole."""
    from orchestration.output import print_line

    stream = _SlowStream()
    monkeypatch.setattr(sys, "stdout", stream)
    expected = {f"thread {thread}: line {line} " + "x" * 40 for thread in range(8) for line in range(50)}

    def log_lines(thread: int) -> None:
        for line in range(50):
            print_line(f"thread {thread}: line {line} " + "x" * 40)

    workers = [threading.Thread(target=log_lines, args=(thread,)) for thread in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    lines = stream.getvalue().split("\n")
    assert lines.pop() == ""  # the last line's newline
    assert len(lines) == len(expected) and set(lines) == expected


def test_options_are_checked_first_and_shown_as_typed():
    from typer.testing import CliRunner

    from ingestion.generate import DEFAULT_END_DATE
    from orchestration.cli import app

    # A usage error (exit 2), before any server is asked for no rows.
    result = CliRunner().invoke(app, ["marts", "--rows", "0"], env={"COLUMNS": "200"})
    assert result.exit_code == 2 and "--rows" in result.output, result.output
    result = CliRunner().invoke(app, ["generate", "--help"], env={"COLUMNS": "200"})
    assert f"[default: {DEFAULT_END_DATE:%Y-%m-%d}]" in result.output, result.output


def test_a_mail_relay_url_that_cannot_be_used_is_one_line_naming_it(tmp_path, pg_dsn):
    """`report --send` with FUNNELHOUSE_SMTP_URL of another scheme, or with a port that is no number:
    one line naming the variable, exit 1, no traceback, and nothing of a password written into it."""
    for url, says in (
        ("mailto://relay:25", "must start with smtp:// or smtps://, not mailto://"),
        ("smtp://mailer:s3cret-pass@127.0.0.1:notaport", "has a port that is no number"),
    ):
        result = _funnelhouse(
            tmp_path,
            *("report", "--date", "2026-11-25", "--send"),
            COLUMNS="200",
            FUNNELHOUSE_PG_DSN=pg_dsn,
            FUNNELHOUSE_SMTP_URL=url,
        )
        assert result.returncode == 1, result.stderr
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.startswith(f"Error: FUNNELHOUSE_SMTP_URL {says}"), result.stderr
        assert "s3cret" not in result.stderr + result.stdout


def test_marts_on_a_stack_never_built_says_to_build_them(tmp_path, clickhouse_server):
    """ClickHouse answers but has no marts database: one line saying what to do, not the driver's
    UNKNOWN_DATABASE traceback."""
    result = _funnelhouse(
        tmp_path,
        "marts",
        FUNNELHOUSE_CLICKHOUSE_URL=f"http://{clickhouse_server['host']}:{clickhouse_server['port']}",
        FUNNELHOUSE_CLICKHOUSE_USER=clickhouse_server["user"],
        FUNNELHOUSE_CLICKHOUSE_PASSWORD=clickhouse_server["password"],
        FUNNELHOUSE_SCHEMA_PREFIX="zz_",  # a database nothing was built into
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip() == "Error: no marts in zz_marts: run `funnelhouse build` first", (
        result.stderr
    )
