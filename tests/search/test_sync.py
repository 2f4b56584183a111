import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from ingestion.search import cursor_store, documents, indexer, sync
from ingestion.search.documents import Cursor, Cursors
from ingestion.search.rebuild import RebuildReport
from tests.search.crm import insert_conversation, seed_people, seed_samples
from tests.search.helpers import NO_LAG, indexed_sources

REPO = Path(__file__).resolve().parents[2]


def test_inserts_updates_and_deletes_arrive_exactly_once(pg_dsn, search_client, search_alias):
    with psycopg.connect(pg_dsn) as conn:
        people = seed_people(conn)
        ids = seed_samples(conn, people)
        first = indexer.synchronise(pg_dsn, search_client, search_alias, lag=NO_LAG)
        assert isinstance(first, RebuildReport) and first.loaded == 8  # no index yet: built in full

        added = insert_conversation(conn, people, "新消息：港股 IPO 什么时候开始认购？")
        conn.execute(
            "UPDATE conversations SET content = %s, sentiment = 'positive' WHERE id = %s",
            ("我改变主意了，准备入金", ids[0]),
        )
        conn.execute("DELETE FROM conversations WHERE id = %s", (ids[1],))
        conn.commit()

        report = sync.run_incremental(pg_dsn, search_client, search_alias, lag=NO_LAG)
        assert (report.indexed, report.deleted) == (2, 1)
        stored = indexed_sources(search_client, search_alias)
        assert set(stored) == (set(ids) - {ids[1]}) | {added}
        assert stored[ids[0]]["content"] == "我改变主意了，准备入金"
        assert stored[ids[0]]["sentiment"] == "positive"

        again = sync.run_incremental(pg_dsn, search_client, search_alias, lag=NO_LAG)
        assert (again.indexed, again.deleted, again.batches) == (0, 0, 0)
        assert not sync.pending(pg_dsn, search_alias, lag=NO_LAG)

        # Replaying everything from the start (a lost cursor) changes nothing in the index.
        with documents.connect(pg_dsn) as state_conn:
            cursor_store.save_progress(state_conn, search_alias, Cursors(), 0, 0)
        replay = sync.run_incremental(pg_dsn, search_client, search_alias, lag=NO_LAG)
        assert replay.indexed + replay.replayed == 8 and replay.deleted + replay.replayed >= 1
        assert indexed_sources(search_client, search_alias) == stored


def test_lagging_rows_wait_for_the_next_run(pg_dsn, search_client, search_alias):
    with psycopg.connect(pg_dsn) as conn:
        people = seed_people(conn)
        indexer.synchronise(pg_dsn, search_client, search_alias, lag=NO_LAG)
        insert_conversation(conn, people, "just now")
    import datetime as dt

    assert sync.run_incremental(pg_dsn, search_client, search_alias, lag=dt.timedelta(hours=1)).indexed == 0
    assert sync.run_incremental(pg_dsn, search_client, search_alias, lag=NO_LAG).indexed == 1


def test_a_change_committed_after_a_later_one_still_arrives(pg_dsn, search_client, search_alias):
    """``updated_at``/``deleted_at`` are stamped when a row is written, not when its transaction
    commits. A sync tick while a slow transaction is open, after later changes committed, must not
    move the cursors past the slow transaction's rows: its update and its delete arrive once it
    commits."""
    with psycopg.connect(pg_dsn) as conn:
        people = seed_people(conn)
        ids = seed_samples(conn, people)
        updated_slowly, deleted_slowly, deleted_quickly = ids[:3]
        indexer.synchronise(pg_dsn, search_client, search_alias, lag=NO_LAG)
        with psycopg.connect(pg_dsn) as slow:
            slow.execute(
                "UPDATE conversations SET content = 'written first' WHERE id = %s", (updated_slowly,)
            )
            slow.execute("DELETE FROM conversations WHERE id = %s", (deleted_slowly,))
            # stamped after the slow transaction's rows, committed before them
            added = insert_conversation(conn, people, "committed first")
            conn.execute("DELETE FROM conversations WHERE id = %s", (deleted_quickly,))
            conn.commit()
            sync.run_incremental(pg_dsn, search_client, search_alias, lag=NO_LAG)  # a tick meanwhile
            slow.commit()
    sync.run_incremental(pg_dsn, search_client, search_alias, lag=NO_LAG)
    stored = indexed_sources(search_client, search_alias)
    assert set(stored) == set(ids) - {deleted_slowly, deleted_quickly} | {added}
    assert stored[updated_slowly]["content"] == "written first"
    assert stored[added]["content"] == "committed first"


def test_rows_stamped_on_a_server_clock_other_than_utc_are_read(pg_dsn):
    """Writers stamp ``updated_at`` in their session's zone, the database's default; the sync's own
    session runs in UTC. Shanghai stamps are eight hours ahead of UTC: a bound taken on the UTC clock
    would hold every change back for eight hours."""
    dbname = psycopg.conninfo.conninfo_to_dict(pg_dsn)["dbname"]
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute(f"ALTER DATABASE \"{dbname}\" SET timezone = 'Asia/Shanghai'")
    with psycopg.connect(pg_dsn) as writer:
        added = insert_conversation(writer, seed_people(writer), "stamped on Shanghai time")
    assert sync.pending(pg_dsn, "conversations_clock_test", lag=NO_LAG)
    with documents.connect(pg_dsn) as conn:
        rows = documents.changed_rows(conn, Cursor(), documents.read_bound(conn), 10)
    assert [row.id for row in rows] == [added]


_KILLABLE_SYNC = """
import sys, datetime as dt
from ingestion.search.client import SearchClient
from ingestion.search.sync import run_incremental
from orchestration.environment import SearchSettings
client = SearchClient.connect(SearchSettings(url=sys.argv[2], flavour=sys.argv[3]))
run_incremental(sys.argv[1], client, sys.argv[4], lag=dt.timedelta(0), batch_size=10)
"""


def test_killed_sync_resumes_without_loss_or_duplicates(pg_dsn, search_engine, search_client, search_alias):
    with psycopg.connect(pg_dsn) as conn:
        people = seed_people(conn)
        indexer.synchronise(pg_dsn, search_client, search_alias, lag=NO_LAG)  # empty index, alias ready
        conn.execute(
            "INSERT INTO conversations (source_message_id, customer_id, employee_id, message_type, direction,"
            " content, platform, sent_at) SELECT 'bulk-' || g, %s, %s, 'text', 'outbound', 'message ' || g,"
            " 'wechat', TIMESTAMP '2025-11-01' + g * INTERVAL '1 minute' FROM generate_series(1, 3000) g",
            (people["CUST_001"], people["EMP_001"]),
        )
        conn.commit()

    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _KILLABLE_SYNC,
            pg_dsn,
            search_engine["url"],
            search_engine["flavour"],
            search_alias,
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        deadline = time.monotonic() + 60
        with documents.connect(pg_dsn) as conn:
            while time.monotonic() < deadline:
                written = cursor_store.load(conn, search_alias).documents_written
                if written >= 200:
                    break
                assert process.poll() is None, "sync ended before it could be killed"
                time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()

    with documents.connect(pg_dsn) as conn:
        killed_at = cursor_store.load(conn, search_alias).documents_written
    assert 200 <= killed_at < 3000, "the kill must land in the middle of the sync"
    _wait_for_killed_session_to_end(pg_dsn)
    resumed = sync.run_incremental(pg_dsn, search_client, search_alias, lag=NO_LAG)
    assert resumed.indexed + resumed.replayed >= 3000 - killed_at
    stored = indexed_sources(search_client, search_alias)
    assert len(stored) == 3000 == search_client.count(search_alias)
    with psycopg.connect(pg_dsn) as conn:
        assert set(stored) == {row[0] for row in conn.execute("SELECT id FROM conversations")}


def _wait_for_killed_session_to_end(dsn, timeout=30.0):
    """PostgreSQL ends a killed client's session only when its backend notices the closed socket
    (at once when idle, after the running statement otherwise); until then the session's advisory
    lock stands and a new sync rightly skips. Production retries on the sensor's next tick."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(dsn, autocommit=True) as conn:
        while conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone()[0]:
            assert time.monotonic() < deadline, "the killed sync's session never ended"
            time.sleep(0.1)


def test_a_tag_too_long_to_index_does_not_block_the_sync(pg_dsn, search_client, search_alias):
    """Lucene refuses a term over 32,766 bytes: without ignore_above the document holding one failed
    every bulk and the cursor never passed it."""
    with psycopg.connect(pg_dsn) as conn:
        people = seed_people(conn)
        seed_samples(conn, people)
        indexer.synchronise(pg_dsn, search_client, search_alias, lag=NO_LAG)
        row_id = insert_conversation(conn, people, "tag pasted by mistake")
        conn.execute(
            "UPDATE conversations SET keywords = %s WHERE id = %s", (json.dumps(["美股" * 12000]), row_id)
        )
        conn.commit()
        report = sync.run_incremental(pg_dsn, search_client, search_alias, lag=NO_LAG)
        assert report.indexed == 1 and not sync.pending(pg_dsn, search_alias, lag=NO_LAG)
        assert row_id in indexed_sources(search_client, search_alias)


class _LiftAfterRefusals(logging.Handler):
    """Calls ``lift`` when the search client has logged its ``times``-th back-off after a 429."""

    def __init__(self, lift, times: int):
        super().__init__(logging.WARNING)
        self.lift, self.times, self.refusals = lift, times, 0

    def emit(self, record: logging.LogRecord) -> None:
        if "rejected with 429" in record.getMessage():
            self.refusals += 1
            if self.refusals == self.times:
                self.lift()


def test_writes_the_engine_refuses_as_overloaded_wait_and_arrive_once(pg_dsn, search_client, search_alias):
    """A real 429 from the engine: the flood-stage disk block (set by the engine itself when a disk
    fills up) refuses every write with TOO_MANY_REQUESTS. The sync backs off and sends again; once
    the block is lifted (disk freed; here after its second back-off) every change arrives, once, and
    the cursor moves only then."""
    with psycopg.connect(pg_dsn) as conn:
        people = seed_people(conn)
        ids = seed_samples(conn, people)
        indexer.synchronise(pg_dsn, search_client, search_alias, lag=NO_LAG)
        added = insert_conversation(conn, people, "磁盘满了也不能丢消息")

    def flood_stage_block(on: bool | None) -> None:
        search_client.put_settings(search_alias, {"blocks.read_only_allow_delete": on})

    client_log = logging.getLogger("ingestion.search.client")
    lifter = _LiftAfterRefusals(lambda: flood_stage_block(None), times=2)
    level = client_log.level
    flood_stage_block(True)
    client_log.addHandler(lifter)
    client_log.setLevel(logging.WARNING)  # whatever the root logger's level
    try:
        report = sync.run_incremental(pg_dsn, search_client, search_alias, lag=NO_LAG)
    finally:
        client_log.setLevel(level)
        client_log.removeHandler(lifter)
        flood_stage_block(None)
    assert lifter.refusals == 2  # refused twice, waited each time, then let through
    assert (report.indexed, report.deleted) == (1, 0)
    assert set(indexed_sources(search_client, search_alias)) == set(ids) | {added}
    assert not sync.pending(pg_dsn, search_alias, lag=NO_LAG)


@pytest.mark.parametrize("search_engine", ["elasticsearch"], indirect=True)
def test_a_failed_statement_is_the_error_the_sync_raises(pg_dsn, search_client, search_alias):
    """A statement that fails aborts the sync's transaction; freeing the alias lock afterwards must
    not replace the error with "current transaction is aborted"."""
    with psycopg.connect(pg_dsn) as conn:
        people = seed_people(conn)
        indexer.synchronise(pg_dsn, search_client, search_alias, lag=NO_LAG)
        added = insert_conversation(conn, people, "waits for a lock")
    dbname = psycopg.conninfo.conninfo_to_dict(pg_dsn)["dbname"]
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute(f"ALTER DATABASE \"{dbname}\" SET lock_timeout = '200ms'")
    with psycopg.connect(pg_dsn) as maintenance:
        maintenance.execute("LOCK TABLE conversations IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            sync.run_incremental(pg_dsn, search_client, search_alias, lag=NO_LAG)
    assert sync.run_incremental(pg_dsn, search_client, search_alias, lag=NO_LAG).indexed == 1
    assert added in indexed_sources(search_client, search_alias)
