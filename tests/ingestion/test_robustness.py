"""A load killed mid-file leaves nothing behind; a 1 GB file loads in bounded memory; a field whose
opening quote is never closed fails its file, not the run."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import psycopg
import pytest

from ingestion.load.readers import csv_reader
from tests.fixtures.postgres import wait_for_count
from tests.ingestion import landing_rows as rows
from tests.ingestion.big_files import write_conversations_csv

FUNNELHOUSE = str(Path(sys.executable).with_name("funnelhouse"))


@pytest.fixture
def parents(landing, run_ingest):
    """The customer and employee every big conversations file refers to."""
    rows.write(landing, "employees", "b1", [rows.employee(1)])
    rows.write(landing, "customers", "b1", [rows.customer(1)])
    assert {r.status for r in run_ingest(landing).values()} == {"loaded"}


def _ingest_process(path: Path, dsn: str) -> subprocess.Popen:
    env = {**os.environ, "FUNNELHOUSE_PG_DSN": dsn}
    return subprocess.Popen(
        [FUNNELHOUSE, "ingest", str(path)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def _peak_rss_mb(process: subprocess.Popen) -> float:
    """The child's peak RSS, sampled (getrusage would count the pre-exec fork of this big test process)."""
    watched = psutil.Process(process.pid)
    peak = 0
    while process.poll() is None:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess):
            peak = max(peak, watched.memory_info().rss)
        time.sleep(0.05)
    return peak / 2**20


def _wait_for_merge(dsn: str, process: subprocess.Popen, timeout: float = 120) -> None:
    """Until the loader is merging rows into conversations (so some chunks are in, more to come)."""

    def loader_alive() -> None:
        assert process.poll() is None, process.stderr.read().decode()

    with psycopg.connect(dsn, autocommit=True) as conn:
        wait_for_count(
            conn,
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'funnelhouse-ingest' "
            "AND query LIKE 'INSERT INTO \"conversations\"%%'",
            "the loader merging rows into conversations",
            timeout,
            loader_alive,
        )


def test_a_load_killed_mid_file_leaves_no_rows_and_the_next_run_loads_it_all(
    parents, tmp_path, pg_dsn, run_ingest, sql
):
    big = write_conversations_csv(tmp_path / "conversations__big.csv", 150_000)
    process = _ingest_process(big, pg_dsn)
    _wait_for_merge(pg_dsn, process)
    time.sleep(1.0)  # a few chunks further into the file
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL

    assert sql("SELECT count(*) FROM conversations") == [(0,)]
    assert sql("SELECT count(*) FROM funnelhouse.ingest_files WHERE table_name = 'conversations'") == [(0,)]
    assert sql("SELECT count(*) FROM funnelhouse.ingest_rejects") == [(0,)]

    # The next run waits for the dead load's server process to roll back, then loads everything.
    result = run_ingest(big)["conversations__big.csv"]
    assert (result.status, result.rows_loaded, result.rows_rejected) == ("loaded", 150_000, 0)
    assert sql("SELECT count(*), count(DISTINCT source_message_id) FROM conversations") == [
        (150_000, 150_000)
    ]


# About 60 s on two cores: a 1 GB file, 250k conversations of 4 KB each (fewer, fatter rows keep the
# database's share of the time down; the reader's memory depends on bytes, not rows).
@pytest.mark.slow
def test_a_1gb_conversations_file_loads_in_bounded_memory(parents, tmp_path, pg_dsn, sql):
    big = write_conversations_csv(tmp_path / "conversations__1gb.csv", 250_000, content_bytes=4200)
    assert big.stat().st_size > 1_000_000_000
    process = _ingest_process(big, pg_dsn)
    peak = _peak_rss_mb(process)
    assert process.returncode == 0, process.stderr.read().decode()
    print(f"peak RSS {peak:.0f} MB")
    assert peak < 500, f"peak RSS {peak:.0f} MB"
    assert sql("SELECT count(*) FROM conversations") == [(250_000,)]


def test_a_quote_never_closed_fails_its_file_naming_the_row_and_the_run_goes_on(
    landing, run_ingest, sql, monkeypatch
):
    """A field's opening quote never closed made the rest of the file one row, held and scanned
    again with every block: memory grew with the file and time with its square, and a multi-GB
    file ended the run with no ledger row (retried by the sensor forever). Past MAX_ROW_BYTES
    (small here) the file fails naming where the quote opened; the rows before it, merged in
    earlier chunks, roll back with it; the next file of the run loads."""
    monkeypatch.setattr(csv_reader, "MAX_ROW_BYTES", 4096)
    stray = rows.write(landing, "tags", "1", [rows.tag(n, description="OPEN") for n in range(1, 400)])
    text = stray.read_text().split("\n")
    text[3] = text[3].replace("OPEN", '"call back Monday')  # data row 3, line 4
    stray.write_text("\n".join(text))
    after = rows.write(landing, "tags", "2", [rows.tag(900)])
    assert stray.stat().st_size > 3 * 4096

    results = run_ingest(stray, after, chunk_bytes=1024)  # rows 1-2 merged in a chunk of their own
    failed = results[stray.name]
    assert failed.status == "failed", failed
    assert "a quoted field opened in data row 3, line 4 is not closed within 4096 bytes" in failed.error
    assert "drop the file again" in failed.error and "call back" not in failed.error
    assert results[after.name].status == "loaded"
    assert sql("SELECT name FROM tags") == [("标签900",)]
    assert sql(
        "SELECT status, rows_in, rows_loaded FROM funnelhouse.ingest_files WHERE path LIKE %s", "%tags__1.csv"
    ) == [("failed", 0, 0)]
    assert sql("SELECT count(*) FROM funnelhouse.ingest_rejects") == [(0,)]


def test_months_covered_by_partitions_of_other_names_load(parents, landing, run_ingest, sql):
    """A month covered by a partition of another name (pg_partman's conversations_p2031_05, attached
    by hand) needs none, and one covered in part cannot get one: its other rows are held by the
    default partition. The loader went by name, made conversations_2031_05, was refused ("would
    overlap") and failed the file, "Nothing was loaded: fix the file", though the file was fine."""
    sql(
        "CREATE TABLE public.conversations_p2031_05 PARTITION OF conversations "
        "FOR VALUES FROM ('2031-05-01') TO ('2031-06-01')"
    )
    sql(
        "CREATE TABLE public.conversations_p2031_07_a PARTITION OF conversations "
        "FOR VALUES FROM ('2031-07-01') TO ('2031-07-16')"
    )
    stamps = ["2031-05-10 08:00:00", "2031-07-03 08:00:00", "2031-07-20 08:00:00"]
    path = rows.write(
        landing, "conversations", "b2", [rows.conversation(n, sent_at=at) for n, at in enumerate(stamps, 1)]
    )
    result = run_ingest(path)["conversations__b2.csv"]
    assert (result.status, result.error) == ("loaded", None)
    assert sql("SELECT sent_at::text, tableoid::regclass::text FROM conversations ORDER BY 1") == [
        ("2031-05-10 08:00:00", "conversations_p2031_05"),
        ("2031-07-03 08:00:00", "conversations_p2031_07_a"),
        ("2031-07-20 08:00:00", "conversations_default"),
    ]
    assert sql(
        "SELECT to_regclass('public.conversations_2031_05'), to_regclass('public.conversations_2031_07')"
    ) == [(None, None)]
