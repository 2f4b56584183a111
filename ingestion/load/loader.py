"""Load one landing file: validated rows merged by natural key, in one transaction, exactly once.

First, for a partitioned table (conversations), the partitions of the months the file's rows
fall in are created, each in a short transaction of its own: creating one locks the whole table,
which the file's transaction must not hold for the length of a load.

Then per file, inside a single transaction:

1. an advisory lock per table (two loads of one table never interleave their merges) and the
   ledger check by content checksum (a copy of loaded content is recorded as 'duplicate');
2. the file is streamed chunk by chunk: each chunk is validated (:mod:`validate`), its bad rows
   and the rows the reader could not split into columns (``malformed_row``, their text - its
   start, if long - kept in ``raw_row._raw_text``) are COPYed into ``funnelhouse.ingest_rejects``
   and its good rows, still as text, are COPYed into a TEMP staging table;
3. checks that need the database run as SQL over the staging table: references (business keys
   present in PostgreSQL, or for a self-reference anywhere in this file), other unique keys (an
   employee's email), a conversation's key loaded before, or given earlier in the file, with
   another ``sent_at`` (it would be a second row, as the partitioned table's unique key includes
   sent_at: the first ``sent_at`` stands, later ones are rejected). Failing rows move from
   staging to the rejects table with the reason in words. A file of a batch older than the table's
   newest loaded batch (arriving late) also has its rows that would change a row stored by an
   earlier load rejected (``older_batch``): the newer batch's values stay, while its new keys and
   its rows identical to the stored ones load. Then a key repeated within the file keeps its last
   remaining row: the earlier ones count as loaded and as ``rows_superseded``, and move to
   ``funnelhouse.ingest_superseded`` (row number, the row that replaced them, values as written).
   Staging holds one chunk of a table merged chunk by chunk (below): a key repeated in a later
   chunk updates the row its earlier chunk merged, with the same outcome, but is not counted (that
   would take every key of the file kept aside for the whole load);
4. ``INSERT ... SELECT`` from staging with business keys joined to ids, ``ON CONFLICT (natural
   key) DO UPDATE ... WHERE (columns) IS DISTINCT FROM (new values)``: new rows are inserted,
   changed rows updated (and ``updated_at`` moves, by trigger), identical rows untouched - so a
   re-run, or an overlapping file, changes nothing and duplicates nothing. An empty value of a
   column with a DEFAULT in PostgreSQL is stored as that DEFAULT (``is_vip`` FALSE, a count 0),
   except in a NOT NULL column with a DEFAULT (``tier``, ``currency``, statuses), where it is
   "not given": a new row takes the DEFAULT, an existing one keeps its value
   (:meth:`MergePlan.sourced`);
5. the ledger row is finished (rows in = loaded + rejected, enforced by a CHECK; superseded rows
   are among the loaded) and the
   transaction commits. A kill at any point before that leaves no trace at all.

Steps 3-4 run per chunk (staging holds one chunk), in a writer thread that overlaps the reading
and validating of the next chunk, except for a table that references itself (customers), staged
whole and merged at the end. Memory is bounded by the chunk size, never by the file's.

A file that cannot be read, or that PostgreSQL refuses (its data, or content beyond its limits),
rolls back and is then recorded as 'failed' with the error; a file whose every row was rejected
commits its rejects as 'failed'.

A file of a table it references that the run could not load (``parents_not_loaded``, given by
:mod:`pipeline`) may have held the keys a row names: such a row is still quarantined as an unknown
reference (never loaded against what did load), and its reason, the file's result and, if every
row was rejected, its error name that file (:func:`waiting_words`) - one whose rows were read only
for a key among its rejected rows, one never read as one that may hold it - and what happens next:
the dependant has nothing to fix itself: a row rejected for a key not loaded yet loads when the
file is loaded again once the table it names holds the key (:func:`retry_words`). The landing sensor
does not request content already tried at its path again: ``funnelhouse ingest PATH`` does, or the
same file dropped under a new name.

This module runs a file's transaction; the SQL it runs is :mod:`ingestion.load.merge_sql`'s, the
partitions are made by :mod:`ingestion.load.partitions`, and what reasons and errors say about
loading a file again is :mod:`ingestion.load.messages`'.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import orjson
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.csv as pa_csv

from ingestion.contracts import CONTRACTS, Reference
from ingestion.load import ledger
from ingestion.load.landing import LandingFile
from ingestion.load.merge_sql import PARENT_KEYS, STAGE, MergePlan, catalog, unique_keys
from ingestion.load.messages import ParentWords, announce, ingest_command, retry_words, waiting_words
from ingestion.load.partitions import create_partitions
from ingestion.load.readers import CHUNK_BYTES, read_chunks
from ingestion.load.readers.shared import MALFORMED_ROW, Chunk, LandingFileError
from ingestion.load.validate import ChunkValidator, rule_words
from ingestion.schema.locks import lock_table

# The key of a malformed row's raw_row: the row's text as written (it has no columns to name).
RAW_TEXT = "_raw_text"
# Of a malformed row's text, raw_row keeps the first MAX_RAW_TEXT_CHARS characters and, when that
# cuts it, its full length (characters) under RAW_TEXT_LENGTH. Quarantine is there to say why a row was refused and to find
# it (the row number, the start of its text), not to hold it: the landing file has it whole. A
# malformed row can be anything up to the readers' MAX_ROW_BYTES (a 64 MiB JSONL line, a JSON
# array export saved as .jsonl), and a jsonb string over 256 MB would make PostgreSQL refuse the
# whole file.
MAX_RAW_TEXT_CHARS = 64 * 1024
RAW_TEXT_LENGTH = "_raw_text_length"
# PostgreSQL's class 54, "program limit exceeded" (a jsonb string over 256 MB, JSON nested deeper
# than its stack, ...): an OperationalError, like a lost connection, but caused by the file's
# content, so the file fails (its ledger row says why) and the run goes on to the next file.
_BEYOND_POSTGRESQL_LIMITS = (
    psycopg.errors.ProgramLimitExceeded,
    psycopg.errors.StatementTooComplex,
    psycopg.errors.TooManyColumns,
    psycopg.errors.TooManyArguments,
)


@dataclass
class FileResult:
    file: LandingFile
    checksum: str | None  # None: the file could not be read
    status: str  # loaded | failed | duplicate
    rows_in: int = 0
    rows_loaded: int = 0
    rows_rejected: int = 0
    rows_changed: int = 0
    rows_superseded: int = 0
    reasons: Counter = field(default_factory=Counter)  # rule id -> rows rejected by it (first failure)
    error: str | None = None
    seconds: float = 0.0
    file_id: int | None = None
    duplicate_of: str | None = None
    validation: dict = field(default_factory=dict)
    # Reading thread: read, validate, prepare (validation included), wait for database; writer
    # thread: db: copy, db: checks, db: merge. The threads overlap, so steps add up to more than seconds.
    seconds_by_step: Counter = field(default_factory=Counter)
    # URLs of files of referenced tables the run could not load that hold (among their rejected
    # rows) or may hold (never read) keys of rows rejected as unknown (rejected_for_parents of them,
    # among rows_rejected), which load once those files have (waiting_words).
    waiting_for: list[str] = field(default_factory=list)
    rejected_for_parents: int = 0

    @property
    def ok(self) -> bool:
        return self.status != "failed"


class ParentFile(NamedTuple):
    """A file of a referenced table the run could not load (see load_file): ``file_id`` its ledger
    row when its rows were read and its rejects kept (every row rejected), so the keys it holds are
    known; None when it could not be read, or was refused whole (undecodable, rolled back)."""

    url: str
    file_id: int | None = None


def _stage_bytes(frame: pd.DataFrame, columns: list[str]) -> memoryview:
    """Good rows as CSV for COPY: nulls unquoted-empty, every string quoted (so '' stays '').

    Written into an Arrow buffer and handed over without a copy: a chunk exists once in memory.
    """
    table = pa.table(
        {
            "_row": pa.array(frame.index.to_numpy(dtype=np.int64)),
            **{c: pa.array(frame[c], type=pa.string(), from_pandas=True) for c in columns},
        }
    )
    sink = pa.BufferOutputStream()
    pa_csv.write_csv(table, sink, pa_csv.WriteOptions(include_header=False, quoting_style="needed"))
    return memoryview(sink.getvalue())


def _raw_row(frame: pd.DataFrame, row: int) -> str:
    """The row as JSON for ``raw_row``; a NUL (rejected for that very reason) becomes U+FFFD, as
    jsonb cannot hold it and would fail the file instead of quarantining the row."""
    values = frame.loc[row]
    return orjson.dumps(
        {k: (None if pd.isna(v) else str(v).replace("\x00", "\ufffd")) for k, v in values.items()}
    ).decode()


def _raw_text(text: str) -> str:
    """A row the reader could not split into columns, as ``raw_row``: its text, cut to
    :data:`MAX_RAW_TEXT_CHARS` (NUL made U+FFFD, as in :func:`_raw_row`)."""
    raw: dict[str, str | int] = {RAW_TEXT: text[:MAX_RAW_TEXT_CHARS].replace("\x00", "\ufffd")}
    if len(text) > MAX_RAW_TEXT_CHARS:
        raw[RAW_TEXT_LENGTH] = len(text)
    return orjson.dumps(raw).decode()


@dataclass
class _Batch:
    """One validated chunk, ready for the database."""

    rejects: list[tuple]  # rows of ingest_rejects
    staged: memoryview | None  # the good rows as COPY input
    repeats: bool  # a key occurs more than once among the good rows
    fill_defaults: bool  # a good row leaves a kept_when_empty column empty (see MergePlan.sourced)


class _Writer(threading.Thread):
    """Sends validated chunks to PostgreSQL while the next chunk is read and validated.

    The two sides run at the same time (Arrow, pandas and psycopg's socket I/O release the GIL,
    and PostgreSQL is another process), so a file takes about as long as the slower of them
    rather than their sum. The queue holds one chunk: memory stays bounded.
    """

    def __init__(self, load: _FileLoad):
        super().__init__(name=f"ingest-writer-{load.file.name}", daemon=True)
        self.load = load
        self.queue: queue.Queue[_Batch | None] = queue.Queue(maxsize=1)
        self.error: BaseException | None = None

    def run(self) -> None:
        while (batch := self.queue.get()) is not None:
            if self.error is None:
                try:
                    self.load.write(batch)
                except BaseException as error:  # handed to the reading thread, which re-raises it
                    self.error = error

    def put(self, batch: _Batch) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(batch)

    def close(self) -> None:
        self.queue.put(None)
        self.join()
        if self.error is not None:
            raise self.error


class _FileLoad:
    """One file's transaction.

    Tables without a self-reference are merged chunk by chunk (staging holds one chunk at a time,
    checked and merged before the next arrives), so merging overlaps reading and validating.
    A table that references itself (customers.referrer_code) is staged whole and merged at the
    end: a referrer may come later in the file than the row naming it.
    """

    def __init__(
        self,
        conn: psycopg.Connection,
        file: LandingFile,
        file_id: int,
        parents_not_loaded: Mapping[str, Sequence[ParentFile]] | None = None,
    ):
        self.conn, self.file, self.file_id = conn, file, file_id
        self.parents = {table: list(files) for table, files in (parents_not_loaded or {}).items() if files}
        # Referenced table -> ParentWords of its files the run could not load (see load_file).
        self.waiting = {
            table: ParentWords(
                unread=waiting_words(self._unread(table), file.url, table=table)
                if self._unread(table)
                else "",
                read=waiting_words([], file.url, may=False, table=table) if self._read(table) else "",
            )
            for table in self.parents
        }
        self._keep_parent_keys()
        contract = CONTRACTS[file.table]
        self.plan = MergePlan(contract, catalog(conn, file.table), unique_keys(conn, file.table))
        self.validator = ChunkValidator(file.table, self.plan.db)
        self.per_chunk = not self.plan.self_references
        self.rows_in = self.rows_changed = self.rows_superseded = 0
        self.rejected: Counter[str] = Counter()  # by the reading thread
        self.rejected_in_sql: Counter[str] = Counter()  # by the writer thread
        self.key_hashes: list[np.ndarray] = []
        self.fill_defaults = False  # whole-file mode: some row leaves a kept_when_empty column empty
        self.params = {"file_id": file_id, "path": file.url, "table": file.table}
        # A late file of a batch older than one loaded: its changes to stored rows are quarantined.
        newer = ledger.newer_batch_loaded(conn, file.table, file.batch)
        self.older_batch = (file.batch, newer) if newer else None
        self.seconds: Counter[str] = Counter()  # see FileResult.seconds_by_step

    def _unread(self, table: str) -> list[str]:
        return [parent.url for parent in self.parents.get(table, ()) if parent.file_id is None]

    def _read(self, table: str) -> list[int]:
        return [parent.file_id for parent in self.parents.get(table, ()) if parent.file_id is not None]

    def _references_to_read_parents(self) -> list[Reference]:
        return [r for r in CONTRACTS[self.file.table].references if self._read(r.table)]

    def _keep_parent_keys(self) -> None:
        """:data:`PARENT_KEYS`: the keys of the rows rejected from the failed files of referenced
        tables whose rows were read, so a reason names such a file only for a key it holds."""
        refs = self._references_to_read_parents()
        if not refs:
            return
        self.conn.execute(
            f"CREATE TEMP TABLE {PARENT_KEYS} (table_name text, key_column text, key text, path text) "
            "ON COMMIT DROP"
        )
        for table, key_column in sorted({(r.table, r.key_column) for r in refs}):
            self.conn.execute(
                f"""INSERT INTO {PARENT_KEYS}
                    SELECT %s, %s, raw_row ->> %s, path FROM {ledger.REJECTS} WHERE file_id = ANY(%s)""",
                (table, key_column, key_column, self._read(table)),
            )
        self.conn.execute(f"CREATE INDEX ON {PARENT_KEYS} (table_name, key_column, key)")
        self.conn.execute(f"ANALYZE {PARENT_KEYS}")

    def waiting_for(self, reasons: Counter) -> tuple[int, list[str]]:
        """Of the rows rejected as unknown references, how many name a failed parent file (one that
        may hold their key, or whose rejected rows hold it), and those files' URLs."""
        count, urls = 0, []
        for ref in CONTRACTS[self.file.table].references:
            rule = f"reference:{ref.landing_column}"
            if not reasons.get(rule) or ref.table not in self.parents:
                continue
            named = self._unread(ref.table)
            if named:
                count += reasons[rule]
            elif self._read(ref.table):
                rejected, paths = self.conn.execute(
                    f"""SELECT count(DISTINCT r.id), array_agg(DISTINCT p.path) FILTER (WHERE p.path IS NOT NULL)
                        FROM {ledger.REJECTS} r JOIN {PARENT_KEYS} p ON p.table_name = %s
                             AND p.key_column = %s AND p.key = r.raw_row ->> %s
                        WHERE r.file_id = %s AND r.rule = %s""",
                    (ref.table, ref.key_column, ref.landing_column, self.file_id, rule),
                ).fetchone()
                count += rejected
                named = [p.url for p in self.parents[ref.table] if p.url in (paths or ())]
            urls.extend(url for url in named if url not in urls)
        return count, urls

    # -- reading thread ------------------------------------------------------------------------
    def run(self, chunk_bytes: int, on_rows: Callable[[int], None] | None) -> None:
        self.conn.execute(self.plan.create_stage())
        writer = _Writer(self)
        writer.start()
        try:
            clock = time.perf_counter()
            for chunk in read_chunks(self.file, chunk_bytes):
                self.rows_in += len(chunk)
                clock = self._tick("read", clock)
                batch = self._prepare(chunk)
                clock = self._tick("prepare", clock)
                writer.put(batch)
                clock = self._tick("wait for database", clock)
                if on_rows:
                    on_rows(len(chunk))
        finally:
            writer.close()
        if not self.per_chunk:
            clock = time.perf_counter()
            self._settle_file()
            self._tick("db: checks and merge", clock)

    def _tick(self, step: str, since: float) -> float:
        now = time.perf_counter()
        self.seconds[step] += now - since
        return now

    def _prepare(self, chunk: Chunk) -> _Batch:
        frame = chunk.frame
        clock = time.perf_counter()
        verdict = self.validator.validate(frame)
        self.seconds["validate"] += time.perf_counter() - clock
        rejects = [self._reject(m.row, MALFORMED_ROW, m.reason, _raw_text(m.text)) for m in chunk.malformed]
        for row, problems in sorted(verdict.failures.items()):
            reason = "; ".join(reason for _, reason in problems)
            rejects.append(self._reject(row, problems[0][0], reason, _raw_row(frame, row)))
        good = frame.loc[~frame.index.isin(list(verdict.failures))] if verdict.failures else frame
        key = list(self.plan.contract.natural_key)
        # Repeated keys stay staged until the SQL checks have run: dropping the earlier rows here
        # would lose one (neither loaded nor quarantined) whose later repeat is then rejected.
        repeats = bool(good.duplicated(subset=key).any())
        kept = self.plan.kept_when_empty
        fill_defaults = bool(kept) and bool(good[kept].isna().to_numpy().any())
        if not self.per_chunk and len(good):
            self.key_hashes.append(pd.util.hash_pandas_object(good[key], index=False).to_numpy())
            self.fill_defaults |= fill_defaults
        staged = _stage_bytes(good, self.plan.landing) if len(good) else None
        return _Batch(rejects, staged, repeats, fill_defaults)

    def _reject(self, row: int, rule: str, reason: str, raw_row: str) -> tuple:
        """A row of ``ingest_rejects``, counted under its (first) rule. A NUL in the reason (a key
        outside the contract named with one) becomes U+FFFD, as in :func:`_raw_row`: PostgreSQL's
        text cannot hold it, and would fail the file instead of quarantining the row."""
        self.rejected[rule] += 1
        reason = reason.replace("\x00", "\ufffd")
        return (self.file_id, self.file.url, self.file.table, row, rule, reason, raw_row)

    # -- writer thread ---------------------------------------------------------------------------
    def write(self, batch: _Batch) -> None:
        with self.conn.cursor() as cursor:
            clock = time.perf_counter()
            if batch.rejects:
                with cursor.copy(
                    f"COPY {ledger.REJECTS} ({', '.join(ledger.REJECT_COLUMNS)}) FROM STDIN"
                ) as copy:
                    for reject in batch.rejects:
                        copy.write_row(reject)
            if batch.staged is not None:
                with cursor.copy(self.plan.copy_stage()) as copy:
                    copy.write(batch.staged)
            clock = self._tick("db: copy", clock)
        if batch.staged is None:
            return
        if self.per_chunk:
            self._reject_in_sql(batch.repeats)
            if batch.repeats:
                self._supersede(batch.fill_defaults)
            clock = self._tick("db: checks", clock)
            self.rows_changed += self.conn.execute(self.plan.merge(batch.fill_defaults)).rowcount
            self.conn.execute(f"TRUNCATE {STAGE}")
            self._tick("db: merge", clock)

    # -- SQL steps -----------------------------------------------------------------------------------
    def _reject_in_sql(self, repeats: bool) -> None:
        """The SQL checks; ``repeats``: some key occurs more than once in staging."""
        groups = self.plan.checks(self.file.url, self.older_batch, self.waiting)
        if repeats and self.plan.partition:
            groups.append(("partition key in file", self.plan.moved_in_file()))
        for name, group in groups:
            sql = self.plan.reject_sql(group)
            while True:
                rules = [r[0] for r in self.conn.execute(sql, self.params).fetchall()]
                self.rejected_in_sql.update(rules)
                if not rules or name != "self references":
                    break

    def _supersede(self, fill_defaults: bool) -> None:
        """Keep the last staged row of each repeated key (empty kept_when_empty values carried over)."""
        if fill_defaults and self.plan.kept_when_empty:
            self.conn.execute(self.plan.carry_stored_values())
        self.rows_superseded += self.conn.execute(self.plan.drop_superseded(), self.params).rowcount

    def _settle_file(self) -> None:
        """Whole-file mode: checks, repeated keys, merge, self-references."""
        hashes = np.concatenate(self.key_hashes) if self.key_hashes else np.empty(0)
        repeats = len(np.unique(hashes)) < len(hashes)  # a hash collision only costs a statement or two
        self._reject_in_sql(repeats)
        if repeats:
            self._supersede(self.fill_defaults)
        self.conn.execute(f"ANALYZE {STAGE}")
        # A new row that is then given its referrer is one changed row, not two: count the ids.
        merge = self.plan.merge(self.fill_defaults) + " RETURNING t.id"
        changed = {row_id for (row_id,) in self.conn.execute(merge)}
        for statement in self.plan.merge_self_references():
            changed.update(row_id for (row_id,) in self.conn.execute(statement + " RETURNING t.id"))
        self.rows_changed += len(changed)

    @property
    def reasons(self) -> Counter:
        return self.rejected + self.rejected_in_sql


def checksum_of(file: LandingFile, on_step: Callable[[str], None] | None = None) -> str:
    """``file.checksum()``, announced for a big file: hashing reads all of it."""
    announce(file, f"hashing {file.name}", on_step)
    return file.checksum()


def load_file(
    conn: psycopg.Connection,
    file: LandingFile,
    checksum: str | None = None,
    *,
    run_id: str | None = None,
    chunk_bytes: int = CHUNK_BYTES,
    on_rows: Callable[[int], None] | None = None,
    on_step: Callable[[str], None] | None = None,
    parents_not_loaded: Mapping[str, Sequence[ParentFile]] | None = None,
) -> FileResult:
    """Ingest one file on ``conn`` (which must not be inside a transaction); never raises for bad data.

    ``on_rows`` gets the rows read, chunk by chunk; ``on_step`` a line before the long steps of a
    big file that come before them (:func:`announce`). ``parents_not_loaded``: URLs of the files
    of tables ``file`` references that the run could not load, by table (see the module's doc)."""
    started = time.monotonic()
    result = FileResult(file, checksum, "loaded")
    try:
        # (in the try: a file gone since it was listed, or one we may not read, fails alone)
        result.checksum = checksum = checksum or checksum_of(file, on_step)
        create_partitions(conn, file, checksum, chunk_bytes, on_step)
        with conn.transaction():
            conn.execute("SET LOCAL work_mem = '64MB'")
            # A killed loader's server process notices the dead client within seconds instead of
            # finishing its statement first; its transaction is rolled back either way.
            conn.execute("SET LOCAL client_connection_check_interval = '2s'")
            lock_table(conn, file.table)
            earlier = ledger.duplicate_of(conn, file, checksum)
            if earlier:
                result.status, result.duplicate_of = "duplicate", earlier[1]
                result.file_id = ledger.record(
                    conn, file, checksum, status="duplicate", run_id=run_id, duplicate_of=earlier[0]
                )
                return result
            result.file_id = ledger.start(conn, file, checksum, run_id)
            load = _FileLoad(conn, file, result.file_id, parents_not_loaded)
            load.run(chunk_bytes, on_rows)
            result.rows_changed, result.rows_superseded = load.rows_changed, load.rows_superseded
            result.rows_in = load.rows_in
            result.seconds_by_step = load.seconds
            result.reasons = load.reasons
            result.rows_rejected = sum(result.reasons.values())
            result.rows_loaded = result.rows_in - result.rows_rejected
            result.validation = load.validator.summary()
            result.rejected_for_parents, result.waiting_for = load.waiting_for(result.reasons)
            if result.rows_in and not result.rows_loaded:
                result.status = "failed"
                result.error = _all_rejected(result)
            ledger.finish(
                conn,
                result.file_id,
                status=result.status,
                rows_in=result.rows_in,
                rows_loaded=result.rows_loaded,
                rows_rejected=result.rows_rejected,
                rows_changed=result.rows_changed,
                rows_superseded=result.rows_superseded,
                validation=result.validation,
                error=result.error,
            )
    except (
        LandingFileError,
        psycopg.DataError,
        psycopg.IntegrityError,
        psycopg.ProgrammingError,
        *NOT_READABLE_BY_US,
        *_BEYOND_POSTGRESQL_LIMITS,
    ) as error:
        _record_failure(conn, result, error, run_id)
    finally:
        result.seconds = time.monotonic() - started
    return result


# The errors that say the file itself is not there or not ours to read: it fails alone (recorded).
# Any other OSError (a connection reset, a timeout, EIO on S3 or NFS) is the store's, not the
# file's: it propagates, the run fails with no ledger row, and the sensor requests the file again.
NOT_READABLE_BY_US = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)
# What to do about a failed file, the end of its error (ledger, CLI, Dagster): a fixed file has a
# new checksum, so the sensor picks it up where it was dropped; `ingest PATH` retries at once.
_TO_RETRY = "fix the file, then drop it again or run `{command}`"
# A refusal about the database rather than the file (a table or column missing, a grant): the file is
# not at fault, and the fix is the database's.
_SCHEMA_OR_GRANTS = (
    psycopg.errors.UndefinedTable,
    psycopg.errors.UndefinedColumn,
    psycopg.errors.InsufficientPrivilege,
)
_TO_RETRY_AFTER_THE_DATABASE = (
    "check the database (`funnelhouse migrate` applies missing migrations; the loading role needs its "
    "grants), then run `{command}`"
)
# The readers' messages that name their own fix ("close the quote ... and drop the file again").
_OWN_REMEDY = "drop the file again"


def _all_rejected(result: FileResult) -> str:
    """The error of a file whose every row was rejected: what to fix, or what to wait for (rows
    rejected for a key not loaded yet load when the file is loaded again: retry_words)."""
    url = result.file.url
    error = (
        f"{url}: all {result.rows_in} rows rejected ({describe_reasons(result.reasons)}). "
        "The rows and why are in funnelhouse.ingest_rejects"
    )
    references = sum(n for rule, n in result.reasons.items() if rule.startswith("reference:"))
    named = {
        r.table
        for r in CONTRACTS[result.file.table].references
        if result.reasons[f"reference:{r.landing_column}"]
    }
    parts = []
    if result.rejected_for_parents:
        parts.append(
            f"{result.rejected_for_parents} of them name keys missing because "
            f"{waiting_words(result.waiting_for, url)}"
        )
    if unknown := references - result.rejected_for_parents:
        parts.append(
            f"{unknown} of them name keys not loaded yet: {retry_words(url, ' or '.join(sorted(named)))}"
        )
    fix = _TO_RETRY.format(command=ingest_command(url))
    if not parts:  # no row waits for a key: the file itself is to fix
        return f"{error}: {fix}"
    if others := result.rows_rejected - references:
        parts.append(f"for the other {others}, {fix}")
    return f"{error}; " + "; ".join(parts)


def _record_failure(
    conn: psycopg.Connection, result: FileResult, error: Exception, run_id: str | None
) -> None:
    message = shown = str(error)
    if isinstance(error, OSError):
        message = shown = f"{result.file.url}: unreadable: {error}"
    elif isinstance(error, psycopg.Error):
        # The full text stays in the ledger, inside PostgreSQL; its DETAIL can quote the row
        # ("Failing row contains (... e-mail, phone ...)"), so logs and Dagster get the primary
        # message only.
        refused = f"{result.file.url}: PostgreSQL refused the file: "
        message = refused + message.strip()
        shown = refused + (error.diag.message_primary or str(error).strip() or type(error).__name__)
        if error.sqlstate:
            shown += f" (SQLSTATE {error.sqlstate})"
    if _OWN_REMEDY not in message:
        to_retry = _TO_RETRY_AFTER_THE_DATABASE if isinstance(error, _SCHEMA_OR_GRANTS) else _TO_RETRY
        remedy = f". Nothing was loaded: {to_retry.format(command=ingest_command(result.file.url))}"
        message, shown = message.rstrip(". ") + remedy, shown.rstrip(". ") + remedy
    # A NUL (in a column name the error quotes) becomes U+FFFD: PostgreSQL's text cannot hold it,
    # and recording the failure would fail in turn, ending the run with the file unrecorded.
    message, shown = message.replace("\x00", "\ufffd"), shown.replace("\x00", "\ufffd")
    result.status, result.error = "failed", shown
    result.rows_in = result.rows_loaded = result.rows_rejected = result.rows_changed = 0
    result.rows_superseded = result.rejected_for_parents = 0
    result.reasons, result.waiting_for = Counter(), []
    if result.checksum is None:
        return  # never read (gone, or not ours to read): the ledger keys on content, the result tells
    with conn.transaction():
        result.file_id = ledger.record(
            conn, result.file, result.checksum, status="failed", run_id=run_id, error=message
        )


def describe_reasons(reasons: Counter, limit: int = 5) -> str:
    """'3 x tier: not in the allowed set, 1 x age: out of range' (the most frequent first)."""
    shown = [f"{count} x {rule_words(rule)}" for rule, count in reasons.most_common(limit)]
    more = len(reasons) - limit
    return ", ".join(shown) + (f", and {more} more rule(s)" if more > 0 else "")
