"""``funnelhouse ingest``: summary, and the exit status (1 only when a file failed)."""

from __future__ import annotations

import io
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
from rich.console import Console
from typer.testing import CliRunner

from ingestion.load import messages
from orchestration.cli import app
from tests.ingestion import landing_rows as rows


def test_ingest_command_reports_rejects_and_fails_only_on_failed_files(landing, pg_dsn, sql):
    rows.write(landing, "employees", "b1", [rows.employee(1), rows.employee(2, role="intern")])
    result = CliRunner().invoke(app, ["ingest", str(landing)])
    assert result.exit_code == 0, result.output
    assert "employees__b1.csv" in result.output and "1 rejected" in result.output
    assert "role: not in the allowed set" in result.output

    (landing / "customers__b1.csv").write_bytes(b"\xff\xfe not a csv\n")
    result = CliRunner().invoke(app, ["ingest", str(landing / "customers__b1.csv")])
    assert result.exit_code == 1
    assert "customers__b1.csv" in result.output and "failed" in result.output
    assert sql("SELECT status FROM funnelhouse.ingest_files WHERE table_name = 'customers'") == [("failed",)]


def test_a_missing_path_is_one_clean_error_not_a_traceback(landing):
    for arguments in (["ingest", "/no/such/path"], ["ingest", "--via-dagster", "/no/such/path"]):
        result = CliRunner().invoke(app, arguments)
        assert result.exit_code == 2, result.output
        assert isinstance(result.exception, SystemExit), result.exception  # not FileNotFoundError
        assert result.output.strip() == "error: /no/such/path: no such landing file or folder"


def test_files_of_unknown_tables_are_skipped_with_a_warning(landing, pg_dsn, sql):
    rows.write(landing, "employees", "b1", [rows.employee(1)])
    (landing / "notatable__a.csv").write_text("x\n1\n")
    (landing / "Employees.csv").write_text("x\n1\n")
    (landing / "_manifest.json").write_text("{}")  # the generator's: skipped silently
    for arguments in (["ingest", str(landing)], ["ingest", "--via-dagster", str(landing)]):
        result = CliRunner().invoke(app, arguments)
        assert result.exit_code == 0, result.output  # a warning, not a failure
        assert "2 file(s) skipped" in result.output, result.output
        assert "notatable__a.csv: unknown table 'notatable'" in result.output
        assert "Employees.csv: name is not <table>__<batch>" in result.output
        assert "_manifest.json" not in result.output
    assert sql("SELECT DISTINCT table_name FROM funnelhouse.ingest_files") == [("employees",)]


def test_via_dagster_retries_files_that_failed_before_as_plain_ingest_does(landing, pg_dsn, sql):
    rows.write(landing, "employees", "b1", [rows.employee(1)])
    (landing / "customers__b1.csv").write_bytes(b"\xff\xfe not a csv\n")
    assert CliRunner().invoke(app, ["ingest", str(landing)]).exit_code == 1

    # Not "files 0" and exit 0: the failed file is attempted again, and fails again.
    result = CliRunner().invoke(app, ["ingest", "--via-dagster", str(landing)])
    assert result.exit_code == 1, result.output
    assert "crm/customers failed" in result.output and "customers__b1.csv" in result.output
    assert sql(
        "SELECT status, count(*) FROM funnelhouse.ingest_files WHERE table_name = 'customers' GROUP BY 1"
    ) == [("failed", 2)]
    # What loaded is left alone (not recorded again as a duplicate, as plain `ingest DIR` would).
    assert sql("SELECT status FROM funnelhouse.ingest_files WHERE table_name = 'employees'") == [("loaded",)]

    # Once fixed, the same folder through Dagster loads it.
    rows.write(landing, "customers", "b1", [rows.customer(1)])
    result = CliRunner().invoke(app, ["ingest", "--via-dagster", str(landing)])
    assert result.exit_code == 0, result.output
    assert "crm/customers: files 1, rows_in 1, rows_loaded 1" in result.output


def test_big_files_say_what_they_do_before_their_rows_small_ones_stay_quiet(landing, pg_dsn, monkeypatch):
    """Hashing a file, and scanning conversations for their months, read the whole file before
    its rows are counted: seconds of silence for a 1 GB file. From messages.ANNOUNCE_BYTES on
    (lowered here), a line says what is going on."""
    small = [
        rows.write(landing, "employees", "b1", [rows.employee(1)]),
        rows.write(landing, "customers", "b1", [rows.customer(1)]),
    ]
    big = rows.write(landing, "conversations", "b1", [rows.conversation(n) for n in range(1, 40)])
    monkeypatch.setattr(messages, "ANNOUNCE_BYTES", max(f.stat().st_size for f in small) + 1)
    assert big.stat().st_size >= messages.ANNOUNCE_BYTES
    size = f"({big.stat().st_size / 1e6:,.1f} MB)..."

    result = CliRunner().invoke(app, ["ingest"])  # the landing zone: files hashed to find the pending
    assert result.exit_code == 0, result.output
    assert f"hashing conversations__b1.csv {size}" in result.output
    assert f"scanning conversations__b1.csv for months {size}" in result.output
    assert "hashing employees" not in result.output and "hashing customers" not in result.output

    result = CliRunner().invoke(app, ["ingest", str(big)])  # a named file is hashed when it loads
    assert result.exit_code == 0, result.output
    assert f"hashing conversations__b1.csv {size}" in result.output
    assert "scanning" not in result.output  # a duplicate: no partitions to create


def test_via_dagster_a_failed_upstream_file_does_not_keep_dependent_tables_from_loading(landing, pg_dsn, sql):
    """As plain `ingest DIR` and the sensor: the failed employees file is recorded and reported,
    and the customers file is still loaded (its rows name an employee loaded before)."""
    rows.write(landing, "employees", "b1", [rows.employee(1)])
    assert CliRunner().invoke(app, ["ingest", str(landing)]).exit_code == 0
    (landing / "employees__x1.csv").write_bytes(b"not,a,landing,file\n1,2,3,4\n")
    rows.write(landing, "customers", "x1", [rows.customer(1)])

    result = CliRunner().invoke(app, ["ingest", "--via-dagster", str(landing)])
    assert result.exit_code == 1, result.output
    assert "crm/employees failed" in result.output and "employees__x1.csv" in result.output
    assert "crm/customers: files 1, rows_in 1, rows_loaded 1" in result.output
    assert "not attempted" not in result.output
    assert sql(
        "SELECT table_name, status FROM funnelhouse.ingest_files WHERE path LIKE '%x1.csv' ORDER BY 1"
    ) == [("customers", "loaded"), ("employees", "failed")]


def test_via_dagster_names_the_tables_a_failed_step_kept_from_running(landing, pg_dsn, monkeypatch):
    """An error outside the files (here a crash in the employees step) fails the step, and Dagster
    then only logs that it skips the dependants: the summary names them, and why."""
    from orchestration.defs.ingestion import assets

    def crash_on_employees(dsn, files, **options):
        if any(file.table == "employees" for file in files):
            raise RuntimeError("connection lost")
        return real_ingest(dsn, files, **options)

    real_ingest = assets.ingest
    monkeypatch.setattr(assets, "ingest", crash_on_employees)
    rows.write(landing, "employees", "b1", [rows.employee(1)])
    rows.write(landing, "customers", "b1", [rows.customer(1)])

    result = CliRunner().invoke(app, ["ingest", "--via-dagster", str(landing)])
    assert result.exit_code == 1, result.output
    assert "crm__employees failed: RuntimeError: connection lost" in result.output
    assert "customers: not attempted: upstream crm/employees failed" in result.output
    assert "conversations: not attempted: upstream crm/employees failed" in result.output


def test_rows_a_later_row_of_their_key_replaced_are_shown_not_silently_counted(landing, pg_dsn, sql):
    """Two rows named DUPT: the later stands (the documented rule), and the summary, the notes and
    the Dagster metadata say that one of the rows loaded was superseded, and where it is kept."""
    rows.write(landing, "tags", "zdup", [rows.tag(1, name="DUPT", color="#111111"), rows.tag(1, name="DUPT")])
    result = CliRunner().invoke(app, ["ingest", str(landing)])
    assert result.exit_code == 0, result.output
    table_row = next(line for line in result.output.splitlines() if "tags__zdup.csv" in line and "│" in line)
    assert [cell.strip() for cell in table_row.split("│")[2:7]] == ["loaded", "2", "2", "0", "1"], table_row
    assert "superseded tags__zdup.csv: 1 of the rows loaded gave a key again later" in result.output
    assert (
        "1 file(s): 2 rows loaded (1 of them superseded, see funnelhouse.ingest_superseded)" in result.output
    )
    assert sql("SELECT row_number, raw_row ->> 'color' FROM funnelhouse.ingest_superseded") == [
        (1, "#111111")
    ]

    rows.write(landing / "again", "tags", "zdup2", [rows.tag(2, name="DUP2"), rows.tag(2, name="DUP2")])
    result = CliRunner().invoke(app, ["ingest", "--via-dagster", str(landing / "again")])
    assert result.exit_code == 0, result.output
    assert "crm/tags: files 1, rows_in 2, rows_loaded 2, rows_rejected 0, rows_superseded 1" in result.output


def lose_the_connection_while_loading(monkeypatch, pg_dsn: str, name: str):
    """From now on, the backend loading the file called ``name`` is terminated from another connection right
    after the file's ledger row is written (inside its transaction); returns the real
    ``ledger.start``, to put back. (Also used by test_dagster.)"""
    from ingestion.load import ledger

    start = ledger.start

    def start_then_lose_the_connection(conn, file, checksum, run_id):
        file_id = start(conn, file, checksum, run_id)
        if file.name == name:
            with psycopg.connect(pg_dsn, autocommit=True) as other:
                pid = conn.info.backend_pid
                assert other.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,)).fetchone() == (True,)
        return file_id

    monkeypatch.setattr(ledger, "start", start_then_lose_the_connection)
    return start


def test_a_connection_lost_mid_load_names_the_file_rolled_back_and_what_to_do(
    landing, pg_dsn, sql, monkeypatch
):
    """The backend is terminated while customers__b1.csv loads: no traceback, the employees file
    done before is reported, the customers file is named as rolled back (unless its commit had got
    through, which a lost connection cannot tell), and the same command is to be run again."""
    from ingestion.load import ledger

    start = lose_the_connection_while_loading(monkeypatch, pg_dsn, "customers__b1.csv")
    rows.write(landing, "employees", "b1", [rows.employee(1)])
    rows.write(landing, "customers", "b1", [rows.customer(1), rows.customer(2)])
    result = CliRunner().invoke(app, ["ingest", str(landing)])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # not psycopg's AdminShutdown
    assert "Traceback" not in result.output
    output = " ".join(result.output.split())
    assert "employees__b1.csv │ loaded" in output  # the file done before, in the summary
    assert (
        "failed: The connection to PostgreSQL was lost while loading customers__b1.csv: terminating "
        "connection due to administrator command (SQLSTATE 57P01). customers__b1.csv was rolled back, nothing of it loaded, unless its commit had "
        "already reached PostgreSQL (then all of it loaded, and a re-run does not load it twice). "
        "1 file(s) finished before (committed). Once PostgreSQL is up, run the same command again: "
        f"funnelhouse ingest {landing}"
    ) in output
    assert sql("SELECT table_name, status FROM funnelhouse.ingest_files") == [("employees", "loaded")]
    assert sql("SELECT count(*) FROM customers") == [(0,)]

    monkeypatch.setattr(ledger, "start", start)
    result = CliRunner().invoke(app, ["ingest", str(landing)])  # the same command again
    assert result.exit_code == 0, result.output
    assert sql("SELECT count(*) FROM customers") == [(2,)]


def test_a_lock_timeout_is_not_told_as_a_lost_connection(landing, pg_dsn, sql, monkeypatch):
    """PostgreSQL is up but stops the deposits file's statement (another session holds the table's
    bulk-writer lock past lock_timeout): the message says what PostgreSQL said, with its SQLSTATE,
    that the file was rolled back for certain, and to run again - not that the connection was lost."""
    rows.write(landing, "employees", "b1", [rows.employee(1)])
    rows.write(landing, "customers", "b1", [rows.customer(1)])
    rows.write(landing, "deposits", "b1", [rows.deposit(1)])
    monkeypatch.setenv("PGOPTIONS", "-c lock_timeout=1s")
    with psycopg.connect(pg_dsn) as holder:  # (a transaction, until the block ends)
        holder.execute("SELECT pg_advisory_xact_lock(hashtext('funnelhouse.ingest:deposits'))")
        result = CliRunner().invoke(app, ["ingest", str(landing)])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    output = " ".join(result.output.split())
    assert "connection to PostgreSQL was lost" not in output and "once PostgreSQL is up" not in output
    assert (
        "failed: PostgreSQL stopped loading deposits__b1.csv: canceling statement due to lock timeout "
        "(SQLSTATE 55P03). deposits__b1.csv was rolled back: nothing of it was loaded. "
        f"2 file(s) finished before (committed). Run the same command again: funnelhouse ingest {landing}"
    ) in output
    assert "customers__b1.csv │ loaded" in output
    assert sql("SELECT count(*) FROM deposits") == [(0,)]

    result = CliRunner().invoke(app, ["ingest", str(landing)])  # the lock is free again
    assert result.exit_code == 0, result.output
    assert sql("SELECT count(*) FROM deposits") == [(1,)]


def test_via_dagster_a_connection_lost_mid_load_names_the_file_and_what_to_do(landing, pg_dsn, monkeypatch):
    """The step's failure is told in the asset's words (the file, rolled back, what to run), not as
    psycopg's AdminShutdown; the tables it kept from running are still named."""
    lose_the_connection_while_loading(monkeypatch, pg_dsn, "customers__b1.csv")
    rows.write(landing, "employees", "b1", [rows.employee(1)])
    rows.write(landing, "customers", "b1", [rows.customer(1)])
    result = CliRunner().invoke(app, ["ingest", "--via-dagster", str(landing)])
    assert result.exit_code == 1, result.output
    output = " ".join(result.output.split())
    assert "AdminShutdown" not in output  # (nor in Dagster's log of the step failure)
    assert "crm__customers failed: The connection to PostgreSQL was lost while loading " in output
    assert "customers__b1.csv was rolled back, nothing of it loaded, unless its commit" in output
    assert "Once PostgreSQL is up, materialise crm/customers again, or run `funnelhouse ingest " in output
    assert "conversations: not attempted: upstream crm/customers failed" in output


def _lines_of(process: subprocess.Popen) -> queue.Queue:
    """The lines ``process`` prints, as they come (None at the end of its output)."""
    lines: queue.Queue = queue.Queue()

    def read() -> None:
        for line in process.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return lines


def _read_until(lines: queue.Queue, seen: list[str], wanted: str, timeout: float = 60.0) -> None:
    """Lines into ``seen`` until one starts with ``wanted``; fails if the output ends or stays silent."""
    deadline = time.monotonic() + timeout
    while not any(line.startswith(wanted) for line in seen):
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"no line {wanted!r} within {timeout}s; printed so far: {seen}") from None
        assert line is not None, f"the output ended without a line {wanted!r}: {seen}"
        seen.append(line)


def test_piped_output_tells_each_file_as_it_goes_not_all_at_the_end(landing, pg_dsn):
    """Output to a pipe (cron, CI, `| tee`) is no terminal: a progress bar there is drawn once, at the
    end. Instead a line says when each file starts, its rows read as it goes (every chunk here:
    --progress-seconds 0) and how it ended, each printed as it happens: while the customers file waits
    for its table's lock (held here), the employees files' lines are already out."""
    rows.write(landing, "employees", "b1", [rows.employee(n) for n in range(1, 151)])
    rows.write(landing, "employees", "b2", [rows.employee(n) for n in range(151, 161)])
    rows.write(landing, "customers", "b1", [rows.customer(1), rows.customer(2, age="not an age")])
    command = [sys.executable, "-m", "orchestration.cli", "ingest", str(landing)]
    command += ["--chunk-bytes", "4096", "--progress-seconds", "0"]
    with psycopg.connect(pg_dsn) as holder:  # (a transaction, until the block ends)
        holder.execute("SELECT pg_advisory_xact_lock(hashtext('funnelhouse.ingest:customers'))")
        process = subprocess.Popen(
            command,
            cwd=Path(__file__).resolve().parents[2],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            lines, seen = _lines_of(process), []
            _read_until(lines, seen, "customers__b1.csv: loading (file 3 of 3")
            assert process.poll() is None  # still loading: the lines came as they happened
        finally:
            holder.commit()  # the lock goes: customers loads
            if process.wait(timeout=120) is None:
                process.kill()
    _read_until(lines, seen, "3 file(s): ")
    assert process.returncode == 0, seen
    started = [line for line in seen if ": loading (file " in line]
    assert [line.split(":")[0] for line in started] == [
        "employees__b1.csv",
        "employees__b2.csv",
        "customers__b1.csv",
    ]
    # employees__b1.csv: ~19 kB, 4 kB a chunk: its rows counted as they are read, before its outcome.
    first = seen[seen.index(started[0]) + 1 : seen.index(started[1])]
    progress = [line for line in first if line.endswith(" rows read so far")]
    assert len(progress) > 2 and progress[-1] == "employees__b1.csv: 150 rows read so far", first
    assert first[-1].startswith("employees__b1.csv: loaded, 150 in, 150 loaded, 0 rejected"), first
    assert any(line.startswith("employees__b2.csv: loaded, 10 in, 10 loaded, 0 rejected") for line in seen)
    assert any(line.startswith("customers__b1.csv: loaded, 2 in, 1 loaded, 1 rejected") for line in seen)
    assert not [line for line in seen if re.search(r"\b[0-3]/3\b", line)]  # no bar drawn into the log


def test_on_a_terminal_the_bar_ends_on_every_file_s_rows(landing, pg_dsn, monkeypatch):
    """The bar's last state counts the rows of the whole run (3 files), not the last file's alone."""
    from orchestration.commands import ingest

    screen = io.StringIO()
    monkeypatch.setattr(ingest, "console", Console(file=screen, force_terminal=True, width=200))
    rows.write(landing, "employees", "b1", [rows.employee(n) for n in range(1, 4)])
    rows.write(landing, "employees", "b2", [rows.employee(4), rows.employee(5)])
    rows.write(landing, "customers", "b1", [rows.customer(1)])
    result = CliRunner().invoke(app, ["ingest", str(landing)])
    assert result.exit_code == 0, screen.getvalue()
    assert re.findall(r"rows read: ([\d,]+)", screen.getvalue())[-1] == "6", screen.getvalue()
    assert "rows read so far" not in screen.getvalue()  # the plain lines are for logs
