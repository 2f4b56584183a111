"""The loader on small hand-made files: merge semantics, rejects, malformed files, the ledger."""

from __future__ import annotations

import shutil
import uuid

import fsspec
import fsspec.spec
import psycopg
import pytest
from fsspec.implementations.memory import MemoryFileSystem

from ingestion.contracts import CONTRACTS
from ingestion.load.landing import discover
from ingestion.load.messages import older_batch_reason
from ingestion.load.pipeline import connect, pending
from tests.ingestion import landing_rows as rows


@pytest.fixture
def people(landing, run_ingest):
    """Two employees and three customers, loaded."""
    rows.write(landing, "employees", "b1", [rows.employee(1), rows.employee(2)])
    rows.write(landing, "customers", "b1", [rows.customer(1), rows.customer(2), rows.customer(3)])
    results = run_ingest(landing)
    assert all(r.status == "loaded" for r in results.values()), results
    return landing


def test_reingesting_changes_nothing_and_updates_apply(people, run_ingest, sql, tmp_path):
    before = sql("SELECT customer_code, tier, updated_at FROM customers ORDER BY 1")

    # The same file again, and the same content under a new name: recognised, nothing done.
    again = run_ingest(people / "customers__b1.csv")["customers__b1.csv"]
    shutil.copy(people / "customers__b1.csv", tmp_path / "customers__copy.csv")
    copy = run_ingest(tmp_path / "customers__copy.csv")["customers__copy.csv"]
    assert (again.status, copy.status) == ("duplicate", "duplicate")
    assert copy.duplicate_of == str(people / "customers__b1.csv")

    # An overlapping file: two identical rows, one changed (stage and tier), one new.
    overlap = rows.write(
        tmp_path,
        "customers",
        "b2",
        [
            rows.customer(1),
            rows.customer(2, tier="S", current_stage="Action"),
            rows.customer(3),
            rows.customer(4),
        ],
    )
    result = run_ingest(overlap)["customers__b2.csv"]
    assert (result.status, result.rows_in, result.rows_loaded, result.rows_changed) == ("loaded", 4, 4, 2)
    after = {
        code: (tier, stamp)
        for code, tier, stamp in sql("SELECT customer_code, tier, updated_at FROM customers")
    }
    assert len(after) == 4
    for code, tier, stamp in before:
        if code == "CUST_0002":
            assert after[code][0] == "S" and after[code][1] > stamp
        else:
            assert after[code] == (tier, stamp)  # untouched rows keep updated_at


@pytest.mark.parametrize("only_pending", [False, True], ids=["ingest-path", "pending-in-folder"])
def test_a_newer_batch_bringing_back_older_content_is_merged(landing, run_ingest, sql, only_pending, pg_dsn):
    """Daily full exports of a value going ON, OFF, then ON again: day 3 has day 1's bytes, but is
    the newest batch, so its values stay; it is not skipped as a copy of day 1 (PostgreSQL kept OFF).
    ``only_pending``: the sensor's and the assets' way (the folder, files the ledger has not handled)."""

    def drop(day: str, description: str):
        path = rows.write(landing, "tags", day, [rows.tag(1, description=description)])
        return run_ingest(landing if only_pending else path, only_pending=only_pending).get(path.name)

    def stored():
        return sql("SELECT description, updated_at FROM tags")

    loaded = [drop("20250101", "ON"), drop("20250102", "OFF"), drop("20250103", "ON")]
    assert [(r.status, r.rows_changed) for r in loaded] == [("loaded", 1), ("loaded", 1), ("loaded", 1)]
    [(description, stamp)] = stored()
    assert description == "ON"

    # A true re-drop of day 3 changes nothing and is recorded as a duplicate of day 3's load; the
    # folder has nothing pending. Nor does day 4 repeating day 3 (nothing loaded in between).
    day3 = landing / "tags__20250103.csv"
    again = run_ingest(day3)["tags__20250103.csv"]
    assert (again.status, again.duplicate_of) == ("duplicate", str(day3))
    assert run_ingest(landing, only_pending=True) == {}
    shutil.copy(day3, landing / "tags__20250104.csv")
    assert run_ingest(landing / "tags__20250104.csv")["tags__20250104.csv"].status == "duplicate"
    assert stored() == [("ON", stamp)]
    assert sql("SELECT path, status FROM funnelhouse.ingest_files ORDER BY id") == [
        (str(landing / "tags__20250101.csv"), "loaded"),
        (str(landing / "tags__20250102.csv"), "loaded"),
        (str(day3), "loaded"),
        (str(day3), "duplicate"),
        (str(landing / "tags__20250104.csv"), "duplicate"),
    ]
    # Nor does a retry of what failed (`funnelhouse ingest --via-dagster`): day 4 sorts after every
    # loaded batch, but it was recorded as a duplicate at its path already.
    with connect(pg_dsn) as conn:
        assert pending(conn, discover([str(landing)]), retry_failed=True) == []


def _tagging(customer: int, tag: int) -> dict:
    empty = dict.fromkeys(CONTRACTS["customer_tags"].landing_columns)
    return {
        **empty,
        "tagged_at": "2025-01-03 09:00:00",
        "customer_code": f"CUST_{customer:04d}",
        "tag_name": f"标签{tag}",
    }


@pytest.mark.parametrize("again", ["new-name", "same-path"])
def test_rows_rejected_while_an_upstream_file_had_failed_load_when_dropped_again(
    people, run_ingest, sql, pg_dsn, again
):
    """customer_tags loaded while the tags file naming one of its tags had failed: that row is
    rejected as an unknown reference. Once the tags are fixed, the same customer_tags content
    dropped again (under a new name, or ``funnelhouse ingest PATH``) is no duplicate: the rejected
    row loads. The path already tried stays handled (the sensor does not request it every tick)."""
    landing = people
    assert run_ingest(rows.write(landing, "tags", "r0", [rows.tag(1)]))["tags__r0.csv"].status == "loaded"
    broken = rows.write(landing, "tags", "r1", [rows.tag(1), rows.tag(2)])
    broken.write_bytes(broken.read_bytes().replace("标签2".encode(), '"标签2'.encode()))  # quote never closed
    assert run_ingest(broken)["tags__r1.csv"].status == "failed"

    first = rows.write(landing, "customer_tags", "r1", [_tagging(1, 1), _tagging(2, 2)])
    result = run_ingest(first)[first.name]
    assert (result.status, result.rows_loaded, result.rows_rejected) == ("loaded", 1, 1)
    assert result.reasons == {"reference:tag_name": 1}
    fixed = rows.write(landing, "tags", "r2", [rows.tag(1), rows.tag(2)])
    assert run_ingest(fixed)[fixed.name].status == "loaded"
    with connect(pg_dsn) as conn:
        assert pending(conn, discover([str(landing)])) == []  # the tried path is not requested again

    if again == "new-name":
        shutil.copy(first, landing / "customer_tags__r2.csv")
        with connect(pg_dsn) as conn:
            assert [f.name for f, _ in pending(conn, discover([str(landing)]))] == ["customer_tags__r2.csv"]
        result = run_ingest(landing, only_pending=True)["customer_tags__r2.csv"]
    else:
        result = run_ingest(first)[first.name]
    assert (result.status, result.rows_loaded, result.rows_rejected, result.rows_changed) == (
        "loaded",
        2,
        0,
        1,
    )
    assert sql(
        "SELECT c.customer_code, t.name FROM customer_tags ct JOIN customers c ON c.id = ct.customer_id "
        "JOIN tags t ON t.id = ct.tag_id ORDER BY 1"
    ) == [("CUST_0001", "标签1"), ("CUST_0002", "标签2")]
    # Now loaded cleanly, the content dropped once more is a duplicate again.
    assert run_ingest(first)[first.name].status == "duplicate"


def test_bad_rows_are_quarantined_with_reasons(people, run_ingest, sql):
    batch = [
        rows.customer(10),
        rows.customer(11, tier="Z"),
        rows.customer(12, age="abc"),
        rows.customer(13, created_at="2025-02-30 10:00:00"),
        rows.customer(14, assigned_employee_code="EMP_999"),
        rows.customer(15, referrer_code="CUST_0016"),  # refers to a row later in the same file: fine
        rows.customer(16),
        rows.customer(17, name=None, language="{not json"),
        rows.customer(18, referrer_code="CUST_0011"),  # its referrer is rejected above
    ]
    result = run_ingest(rows.write(people, "customers", "b3", batch))["customers__b3.csv"]
    assert (result.rows_in, result.rows_loaded, result.rows_rejected) == (9, 3, 6)
    rejects = {
        n: (rule, reason)
        for n, rule, reason in sql(
            "SELECT row_number, rule, reason FROM funnelhouse.ingest_rejects WHERE path LIKE '%%b3.csv'"
        )
    }
    assert set(rejects) == {2, 3, 4, 5, 8, 9}
    assert rejects[2] == ("in_set:tier", "tier 'Z' is not one of S, A, B, C")
    assert rejects[3][0] == "type:age" and "'abc' is not an integer" in rejects[3][1]
    assert rejects[4][0] == "calendar:created_at"
    assert rejects[5][0] == "reference:assigned_employee_code" and "EMP_999" in rejects[5][1]
    assert "name is required" in rejects[8][1] and "not valid JSON" in rejects[8][1]
    assert rejects[9][0] == "reference:referrer_code"
    raw = sql("SELECT raw_row FROM funnelhouse.ingest_rejects WHERE row_number = 2 AND path LIKE '%%b3.csv'")[
        0
    ][0]
    assert raw["customer_code"] == "CUST_0011" and raw["tier"] == "Z"
    referrer = sql(
        "SELECT r.customer_code FROM customers c JOIN customers r ON r.id = c.referrer_id "
        "WHERE c.customer_code = 'CUST_0015'"
    )
    assert referrer == [("CUST_0016",)]
    ledger = sql(
        "SELECT status, rows_in, rows_loaded, rows_rejected FROM funnelhouse.ingest_files "
        "WHERE path LIKE '%%b3.csv'"
    )
    assert ledger == [("loaded", 9, 3, 6)]


def test_unique_columns_and_duplicate_keys_in_one_file(landing, run_ingest, sql):
    employees = [
        rows.employee(1),
        rows.employee(2, email="e1@example.com"),
        rows.employee(3),
        rows.employee(3, name="Emp 3 renamed"),
    ]
    result = run_ingest(rows.write(landing, "employees", "b1", employees))["employees__b1.csv"]
    assert (result.rows_loaded, result.rows_rejected, result.rows_superseded) == (3, 1, 1)
    assert sql("SELECT rule FROM funnelhouse.ingest_rejects") == [("unique:email",)]
    assert sql("SELECT name FROM employees WHERE employee_code = 'EMP_003'") == [("Emp 3 renamed",)]


@pytest.mark.parametrize(
    "table, first, later, key",
    [
        # Merged chunk by chunk: the review's case, one deposit_code at 100.00 then 200.00.
        ("deposits", rows.deposit(5, amount="100.00"), rows.deposit(5, amount="200.00"), "deposit_code"),
        # Staged whole (customers refer to customers).
        ("customers", rows.customer(30, tier="A"), rows.customer(30, tier="S"), "customer_code"),
    ],
    ids=["deposits", "customers"],
)
def test_a_key_repeated_in_a_file_keeps_its_later_row_and_the_earlier_one_is_kept_aside(
    people, run_ingest, sql, table, first, later, key
):
    """The later row of a key is the row's state (README); the earlier one is loaded in the sense
    of accepted, never silently gone: counted as superseded (result and ledger) and kept in
    funnelhouse.ingest_superseded with its values as written and the row that replaced it."""
    others = [rows.deposit(6), rows.deposit(7)] if table == "deposits" else [rows.customer(31)]
    path = rows.write(people, table, "rep", [first, *others, later])
    result = run_ingest(path)[path.name]
    rows_in = len(others) + 2
    assert (
        result.status,
        result.rows_in,
        result.rows_loaded,
        result.rows_rejected,
        result.rows_superseded,
    ) == (
        "loaded",
        rows_in,
        rows_in,
        0,
        1,
    )
    assert sql(
        "SELECT rows_in, rows_loaded, rows_rejected, rows_superseded FROM funnelhouse.ingest_files "
        "WHERE path = %s",
        str(path),
    ) == [(rows_in, rows_in, 0, 1)]
    [(number, by, raw)] = sql(
        "SELECT row_number, superseded_by, raw_row FROM funnelhouse.ingest_superseded WHERE path = %s",
        str(path),
    )
    assert (number, by) == (1, rows_in)
    assert raw == {k: (None if v is None else str(v)) for k, v in first.items()}
    assert sql("SELECT count(*) FROM funnelhouse.ingest_rejects") == [(0,)]  # superseded is not refused
    column = "amount::text" if table == "deposits" else "tier"
    stored = "200.00" if table == "deposits" else "S"
    assert sql(f"SELECT {column} FROM {table} WHERE {key} = %s", first[key]) == [(stored,)]


def test_file_of_only_bad_rows_fails_but_keeps_its_rejects(people, run_ingest, sql):
    result = run_ingest(
        rows.write(
            people, "customers", "bad", [rows.customer(30, tier="Q"), rows.customer(31, status="gone")]
        )
    )
    result = result["customers__bad.csv"]
    assert (
        result.status == "failed"
        and "all 2 rows rejected" in result.error
        and "customers__bad.csv" in result.error
        and result.error.endswith(
            f"drop it again or run `funnelhouse ingest {people / 'customers__bad.csv'}`"
        )
        and "ingest_rejects" in result.error
    )
    assert sql("SELECT count(*) FROM funnelhouse.ingest_rejects WHERE path LIKE '%%bad.csv'") == [(2,)]
    assert sql("SELECT status FROM funnelhouse.ingest_files WHERE path LIKE '%%bad.csv'") == [("failed",)]


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda text: text.replace("客户2".encode(), b"\xff\xfe\xfa"), "invalid UTF8"),
        (lambda text: text[:-25], "truncated"),
        (lambda text: b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4 + b"\n", "not"),
        (lambda text: b"<html><body>oops</body></html>\n", "missing column"),
        # a file exported without its header line: its first data row must not reach the message
        (lambda text: text.split(b"\n", 1)[1], "none a column"),
    ],
    ids=["bad-encoding", "truncated", "binary", "not-csv", "no-header"],
)
def test_malformed_file_fails_names_the_file_and_can_be_fixed(
    people, run_ingest, sql, tmp_path, damage, message
):
    good = rows.write(tmp_path / "fixed", "customers", "b9", [rows.customer(40), rows.customer(2, tier="A")])
    broken = tmp_path / "customers__b9.csv"
    broken.write_bytes(damage(good.read_bytes()))
    result = run_ingest(broken)["customers__b9.csv"]
    assert result.status == "failed" and str(broken) in result.error and message in result.error
    assert "CUST_0040" not in result.error and "客户" not in result.error  # no row content
    # It ends with what to do, in the ledger too.
    remedy = f"Nothing was loaded: fix the file, then drop it again or run `funnelhouse ingest {broken}`"
    assert result.error.endswith(remedy), result.error
    assert sql(
        "SELECT status, right(error, %s) FROM funnelhouse.ingest_files WHERE path = %s",
        len(remedy),
        str(broken),
    ) == [("failed", remedy)]
    assert sql("SELECT count(*) FROM customers") == [(3,)]  # nothing of it loaded

    shutil.copy(good, broken)  # the fixed file, dropped under the same name
    fixed = run_ingest(broken)["customers__b9.csv"]
    assert (fixed.status, fixed.rows_loaded) == ("loaded", 2)
    assert sql("SELECT tier FROM customers WHERE customer_code = 'CUST_0002'") == [("A",)]


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_conversations_and_events_in_every_format(people, run_ingest, sql, fmt):
    messages = [rows.conversation(n) for n in range(1, 41)]
    messages.append(rows.conversation(41, sent_at="2031-07-04 08:00:00"))  # a month with no partition yet
    messages.append(rows.conversation(42, quality_score="11"))
    events = [
        rows.conversation_event(1, "MSG_000001"),
        rows.conversation_event(2, "MSG_999999"),
        rows.conversation_event(3, None),
    ]
    results = run_ingest(
        rows.write(people, "conversations", "m1", messages, fmt),
        rows.write(people, "conversation_events", "m1", events, fmt),
    )
    conv, evt = results[f"conversations__m1.{fmt}"], results[f"conversation_events__m1.{fmt}"]
    assert (conv.rows_in, conv.rows_loaded, conv.rows_rejected) == (42, 41, 1)
    assert (evt.rows_loaded, evt.rows_rejected) == (2, 1)
    assert sql("SELECT count(*) FROM ONLY conversations_default") == [(0,)]
    assert sql(
        "SELECT tableoid::regclass::text FROM conversations WHERE source_message_id = 'MSG_000041'"
    ) == [("conversations_2031_07",)]
    linked = sql(
        "SELECT c.source_message_id FROM conversation_events e JOIN conversations c "
        "ON (c.id, c.sent_at) = (e.conversation_id, e.conversation_sent_at) WHERE e.source_key = 'EVT_1'"
    )
    assert linked == [("MSG_000001",)]
    content = sql("SELECT content, keywords FROM conversations WHERE source_message_id = 'MSG_000003'")
    assert content == [('你好 3, "quoted", comma', ["收益"])]
    # A message seen again with another sent_at would be a second row: refused instead.
    moved = run_ingest(
        rows.write(people, "conversations", "m2", [rows.conversation(1, sent_at="2025-03-20 00:00:00")])
    )
    assert moved["conversations__m2.csv"].reasons == {"moved:sent_at": 1}


def test_empty_file_loads_nothing(landing, run_ingest):
    result = run_ingest(rows.write(landing, "employees", "empty", []))["employees__empty.csv"]
    assert (result.status, result.rows_in) == ("loaded", 0)


class _BlockBufferedFile(fsspec.spec.AbstractBufferedFile):
    """A memory file read as s3fs and gcsfs files are: in blocks fetched by byte range, through
    ``AbstractBufferedFile``'s own read, seek and ``readline()`` (which takes no size)."""

    def _fetch_range(self, start: int, end: int) -> bytes:
        return self.fs.cat_file(self.path, start, end)


class _BlockBufferedMemoryFileSystem(MemoryFileSystem):
    """The memory store (files written with ``pipe``), its files opened for reading as a remote
    store's are (:class:`_BlockBufferedFile`): MemoryFileSystem's own are BytesIOs, which take
    calls no remote file does (``readline(size)``)."""

    protocol = "bufferedmemory"

    @classmethod
    def _strip_protocol(cls, path: str) -> str:
        return super()._strip_protocol(path.removeprefix("bufferedmemory://"))

    def _open(self, path, mode="rb", **kwargs):
        if mode != "rb":
            return super()._open(path, mode, **kwargs)
        # Blocks smaller than the header: a line is read across several range fetches.
        return _BlockBufferedFile(self, self._strip_protocol(path), mode, block_size=64)


fsspec.register_implementation("bufferedmemory", _BlockBufferedMemoryFileSystem, clobber=True)


@pytest.fixture
def memory_landing():
    """An empty folder of fsspec's memory store (shared by the process), removed afterwards."""
    memory = fsspec.filesystem("memory")
    folder = f"/fsspec-landing-{uuid.uuid4().hex}"
    yield memory, folder
    if memory.exists(folder):
        memory.rm(folder, recursive=True)


@pytest.mark.parametrize("protocol", ["memory", "bufferedmemory"])
def test_any_fsspec_url_works_like_a_folder(pg_dsn, tmp_path, sql, memory_landing, protocol):
    """The landing zone through fsspec (memory:// here, s3:// in production): same code, same result.

    bufferedmemory:// reads the same files as a remote store does (:class:`_BlockBufferedFile`).
    """
    from ingestion.load.pipeline import ingest_locations

    memory, folder = memory_landing
    local = tmp_path / "files"
    for path in (
        rows.write(local, "employees", "b1", [rows.employee(1)]),
        rows.write(local, "customers", "b1", [rows.customer(1), rows.customer(2)], "jsonl"),
        rows.write(local, "customers", "b2", [rows.customer(3)], "parquet"),
    ):
        memory.pipe(f"{folder}/{path.name}", path.read_bytes())
    location = f"{protocol}:/{folder}"
    results = ingest_locations(pg_dsn, [location], only_pending=True)
    assert [(r.file.url, r.status, r.rows_loaded) for r in results] == [
        (f"{protocol}://{folder}/employees__b1.csv", "loaded", 1),
        (f"{protocol}://{folder}/customers__b1.jsonl", "loaded", 2),
        (f"{protocol}://{folder}/customers__b2.parquet", "loaded", 1),
    ]
    assert ingest_locations(pg_dsn, [location], only_pending=True) == []
    assert sql("SELECT count(*) FROM customers") == [(3,)]


def test_contract_defaults_are_the_database_defaults(sql):
    """A column the contract lets be empty because of its DEFAULT is NOT NULL with that DEFAULT."""
    for table, contract in CONTRACTS.items():
        for column in (c for c in contract.columns if c.default is not None):
            [(nullable, default)] = sql(
                "SELECT is_nullable, column_default FROM information_schema.columns "
                "WHERE table_schema = 'public' AND table_name = %s AND column_name = %s",
                table,
                column.name,
            )
            assert nullable == "NO" and default is not None, (table, column.name)
            assert sql(f"SELECT ({default})::text") == [(column.default,)], (table, column.name)


@pytest.mark.parametrize("chunk_bytes", [100, 8 * 1024 * 1024], ids=["row-per-chunk", "one-chunk"])
def test_an_empty_value_takes_the_default_on_insert_and_keeps_the_stored_one_on_update(
    people, run_ingest, sql, chunk_bytes
):
    """deposits merge chunk by chunk, customers (self-referencing) as a whole file."""
    first = run_ingest(
        rows.write(
            people,
            "deposits",
            "d1",
            [
                rows.deposit(1, currency="EUR", status="confirmed"),
                rows.deposit(2, currency=None, status=None),
            ],
            "jsonl",
        ),
        rows.write(people, "customers", "d1", [rows.customer(4, tier=None, current_stage=None, status=None)]),
        chunk_bytes=chunk_bytes,
    )
    assert {r.rows_rejected for r in first.values()} == {0}
    assert sql("SELECT deposit_code, currency, status FROM deposits ORDER BY 1") == [
        ("DEP_20250101_1", "EUR", "confirmed"),
        ("DEP_20250101_2", "USD", "pending"),
    ]
    assert sql("SELECT tier, current_stage, status FROM customers WHERE customer_code = 'CUST_0004'") == [
        ("C", "Awareness", "active")
    ]
    stamps = dict(sql("SELECT customer_code, updated_at FROM customers"))

    # Re-sent without the values: the stored ones stay (nothing changes, updated_at included);
    # a key repeated in the file keeps what its earlier row gave, wherever the chunks end.
    second = run_ingest(
        rows.write(
            people,
            "deposits",
            "d2",
            [
                rows.deposit(1, currency=None, status=None),
                rows.deposit(2, currency="JPY", status=None),
                rows.deposit(2, currency=None, status="failed", notes="again"),
            ],
        ),
        rows.write(
            people,
            "customers",
            "d2",
            [
                rows.customer(1, tier="S"),
                rows.customer(1, tier=None),
                rows.customer(2, tier=None, status=None),
            ],
        ),
        chunk_bytes=chunk_bytes,
    )
    assert {r.rows_rejected for r in second.values()} == {0}
    assert second["customers__d2.csv"].rows_changed == 1  # CUST_0001's tier; CUST_0002 untouched
    assert sql("SELECT deposit_code, currency, status, notes FROM deposits ORDER BY 1") == [
        ("DEP_20250101_1", "EUR", "confirmed", None),
        ("DEP_20250101_2", "JPY", "failed", "again"),
    ]
    assert sql("SELECT customer_code, tier, status FROM customers ORDER BY 1") == [
        ("CUST_0001", "S", "active"),
        ("CUST_0002", "B", "active"),
        ("CUST_0003", "B", "active"),
        ("CUST_0004", "C", "active"),
    ]
    after = dict(sql("SELECT customer_code, updated_at FROM customers"))
    assert after["CUST_0002"] == stamps["CUST_0002"] and after["CUST_0001"] > stamps["CUST_0001"]


def test_a_refusal_about_the_database_not_the_file_says_to_check_the_database(pg_dsn, tmp_path):
    """A table missing in PostgreSQL (a migration not applied) is not the file's fault: the advice
    recorded is the database's, not "fix the file"; a refusal of the file's data keeps "fix the file"."""
    from ingestion.load.failures import record_failure
    from ingestion.load.landing import landing_file
    from ingestion.load.loader import FileResult

    file = landing_file(str(tmp_path / "tags__b1.csv"))
    refusals = [
        psycopg.errors.UndefinedTable("relation tags does not exist"),
        psycopg.errors.DataError("bad"),
    ]
    with psycopg.connect(pg_dsn) as conn:
        for refusal in refusals:
            result = FileResult(file, "c0ffee", "loaded")
            record_failure(conn, result, refusal, run_id=None)
            errors = [
                result.error,
                conn.execute(
                    "SELECT error FROM funnelhouse.ingest_files WHERE id = %s", (result.file_id,)
                ).fetchone()[0],
            ]
            for error in errors:
                if isinstance(refusal, psycopg.errors.UndefinedTable):
                    assert (
                        "check the database (`funnelhouse migrate`" in error and "fix the file" not in error
                    )
                else:
                    assert "fix the file" in error and "check the database" not in error


def test_a_table_missing_a_contract_column_fails_the_file_and_says_why(run_ingest, pg_dsn, tmp_path):
    """Schema drift (a column of the contract missing in PostgreSQL) fails the file with the column
    named and the database's fix, instead of ending the run."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("ALTER TABLE tags DROP COLUMN description")
    path = rows.write(tmp_path, "tags", "b1", [rows.tag(1, description="ON")])
    result = run_ingest(path)[path.name]
    assert result.status == "failed"
    assert "table tags has no column(s) description" in result.error
    assert "check the database (`funnelhouse migrate`" in result.error


def test_a_late_older_batch_loads_what_changes_nothing_and_quarantines_what_would(landing, run_ingest, sql):
    """customers__2026_11_20 dropped after customers__2026_11_21 was loaded: its new keys and its rows
    identical to the stored ones load; a row that would change a stored value (a referrer too) is
    quarantined with the reason, and the newer value stays. A fixed re-drop of the newest batch applies."""
    rows.write(landing, "employees", "b1", [rows.employee(1), rows.employee(2)])
    newest = [
        rows.customer(1, tier="S"),
        rows.customer(2, tier="A"),
        rows.customer(3, tier="B"),
        rows.customer(6),
        rows.customer(7, assigned_employee_code="EMP_001"),
    ]
    rows.write(landing, "customers", "2026_11_21", newest)
    assert {r.status for r in run_ingest(landing).values()} == {"loaded"}
    stamps = dict(sql("SELECT customer_code, updated_at FROM customers"))

    late = [
        rows.customer(1, tier="B"),  # would change the newer tier: quarantined
        rows.customer(2, tier="A"),  # identical: loaded, unchanged
        rows.customer(3, tier=None),  # empty defaulted value keeps the stored one: identical
        rows.customer(4, referrer_code="CUST_0001"),  # new key: inserted
        rows.customer(5, referrer_code="CUST_0004"),  # new key, its referrer new in the file
        rows.customer(6, referrer_code="CUST_0004"),  # would give a stored row a referrer
        rows.customer(7, assigned_employee_code="EMP_002"),  # would change a reference
    ]
    path = rows.write(landing, "customers", "2026_11_20", late)
    result = run_ingest(path)[path.name]
    assert (result.status, result.rows_in, result.rows_loaded, result.rows_rejected) == ("loaded", 7, 4, 3)
    assert result.reasons == {"older_batch": 3}
    assert result.rows_changed == 2  # CUST_0004 and CUST_0005 inserted (their referrers given)
    rejects = sql(
        "SELECT row_number, rule, reason, raw_row->>'customer_code' FROM funnelhouse.ingest_rejects "
        "WHERE path = %s ORDER BY row_number",
        str(path),
    )
    reason = older_batch_reason("customers", "2026_11_20", "2026_11_21")
    assert rejects == [
        (1, "older_batch", reason, "CUST_0001"),
        (6, "older_batch", reason, "CUST_0006"),
        (7, "older_batch", reason, "CUST_0007"),
    ]
    stored = sql(
        "SELECT c.customer_code, c.tier, r.customer_code, e.employee_code FROM customers c "
        "LEFT JOIN customers r ON r.id = c.referrer_id "
        "LEFT JOIN employees e ON e.id = c.assigned_employee_id ORDER BY 1"
    )
    assert stored == [
        ("CUST_0001", "S", None, "EMP_001"),
        ("CUST_0002", "A", None, "EMP_001"),
        ("CUST_0003", "B", None, "EMP_001"),
        ("CUST_0004", "B", "CUST_0001", "EMP_001"),
        ("CUST_0005", "B", "CUST_0004", "EMP_001"),
        ("CUST_0006", "B", None, "EMP_001"),
        ("CUST_0007", "B", None, "EMP_001"),
    ]
    after = dict(sql("SELECT customer_code, updated_at FROM customers"))
    assert all(after[code] == stamp for code, stamp in stamps.items())  # no stored row touched
    assert sql(
        "SELECT status, rows_in, rows_loaded, rows_rejected FROM funnelhouse.ingest_files WHERE path = %s",
        str(path),
    ) == [("loaded", 7, 4, 3)]

    # A fixed re-drop of the newest batch is not older: its change applies as usual.
    fixed = rows.write(landing, "customers", "2026_11_21", [*newest[1:], rows.customer(1, tier="C")])
    result = run_ingest(fixed)[fixed.name]
    assert (result.status, result.rows_rejected, result.rows_changed) == ("loaded", 0, 1)
    assert sql("SELECT tier FROM customers WHERE customer_code = 'CUST_0001'") == [("C",)]

    # The late file dropped again under a batch name that sorts last applies, as its reason says.
    shutil.copy(path, landing / "customers__2026_11_22.csv")
    result = run_ingest(landing / "customers__2026_11_22.csv")["customers__2026_11_22.csv"]
    assert (result.status, result.rows_rejected) == ("loaded", 0)
    assert sql("SELECT tier FROM customers WHERE customer_code = 'CUST_0001'") == [("B",)]


@pytest.mark.parametrize("chunk_bytes", [100, 8 * 1024 * 1024], ids=["row-per-chunk", "one-chunk"])
def test_a_late_older_batch_merged_chunk_by_chunk(people, run_ingest, sql, chunk_bytes):
    """deposits merge chunk by chunk: a key new to the table, inserted by an earlier chunk of the late
    file, is the file's own and its later row applies; a value the column rounds to the stored one,
    or an empty defaulted value, changes nothing, so the row loads."""
    newest = [rows.deposit(1, amount="10.00", currency="EUR"), rows.deposit(2, status="confirmed")]
    run_ingest(rows.write(people, "deposits", "20261121", newest))
    late = [
        rows.deposit(1, amount="10.000", currency=None),  # equal to the stored 10.00, EUR kept: identical
        rows.deposit(2, status="pending"),  # would change: quarantined
        rows.deposit(3, notes="first"),  # new key
        rows.deposit(3, notes="second"),  # the same new key again, later in the file: it wins
    ]
    path = rows.write(people, "deposits", "20261120", late)
    result = run_ingest(path, chunk_bytes=chunk_bytes)[path.name]
    assert (result.status, result.rows_in, result.rows_loaded, result.rows_rejected) == ("loaded", 4, 3, 1)
    assert result.reasons == {"older_batch": 1}
    assert sql("SELECT row_number, reason FROM funnelhouse.ingest_rejects WHERE path = %s", str(path)) == [
        (2, older_batch_reason("deposits", "20261120", "20261121"))
    ]
    assert sql("SELECT deposit_code, amount::text, currency, status, notes FROM deposits ORDER BY 1") == [
        ("DEP_20250101_1", "10.00", "EUR", "confirmed", None),
        ("DEP_20250101_2", "10.00", "USD", "confirmed", None),
        ("DEP_20250101_3", "10.00", "USD", "confirmed", "second"),
    ]


def test_a_late_older_batch_of_the_partitioned_table(people, run_ingest, sql):
    """conversations (its conflict target includes sent_at): a late batch's changed message is
    quarantined as older, a moved sent_at stays a moved:sent_at reject, a new message loads."""
    run_ingest(rows.write(people, "conversations", "20261121", [rows.conversation(1), rows.conversation(2)]))
    late = [
        rows.conversation(1, content="older text"),
        rows.conversation(2, sent_at="2025-03-20 00:00:00"),
        rows.conversation(3),
        rows.conversation(1, content="older text", quality_score="8"),
    ]
    path = rows.write(people, "conversations", "20261120", late)
    result = run_ingest(path)[path.name]
    assert (result.rows_in, result.rows_loaded, result.rows_rejected) == (4, 1, 3)
    assert result.reasons == {"older_batch": 2, "moved:sent_at": 1}
    assert sql("SELECT source_message_id, content FROM conversations ORDER BY 1") == [
        ("MSG_000001", '你好 1, "quoted", comma'),
        ("MSG_000002", '你好 2, "quoted", comma'),
        ("MSG_000003", '你好 3, "quoted", comma'),
    ]
