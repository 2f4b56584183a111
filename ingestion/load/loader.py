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
partitions are made by :mod:`ingestion.load.partitions`, a validated chunk's bytes and the writer
thread are :mod:`ingestion.load.chunk_writer`'s, which errors fail a file and what its error says
are :mod:`ingestion.load.failures`', and what reasons and errors say about loading a file again is
:mod:`ingestion.load.messages`'.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd
import psycopg

from ingestion.contracts import CONTRACTS, Reference
from ingestion.load import ledger
from ingestion.load.chunk_writer import ChunkWriter, PreparedChunk, raw_row, raw_text, stage_bytes
from ingestion.load.failures import FAILS_THE_FILE, all_rejected, record_failure
from ingestion.load.landing import LandingFile
from ingestion.load.merge_sql import PARENT_KEYS, STAGE, MergePlan, catalog, unique_keys
from ingestion.load.messages import ParentWords, announce, waiting_words
from ingestion.load.partitions import create_partitions
from ingestion.load.readers import CHUNK_BYTES, read_chunks
from ingestion.load.readers.shared import MALFORMED_ROW, Chunk
from ingestion.load.validate import ChunkValidator
from ingestion.schema.locks import lock_table


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
        writer = ChunkWriter(self.file.name, self.write)
        writer.start()
        try:
            clock = time.perf_counter()
            for chunk in read_chunks(self.file, chunk_bytes):
                self.rows_in += len(chunk)
                clock = self._tick("read", clock)
                prepared = self._prepare(chunk)
                clock = self._tick("prepare", clock)
                writer.put(prepared)
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

    def _prepare(self, chunk: Chunk) -> PreparedChunk:
        frame = chunk.frame
        clock = time.perf_counter()
        verdict = self.validator.validate(frame)
        self.seconds["validate"] += time.perf_counter() - clock
        rejects = [self._reject(m.row, MALFORMED_ROW, m.reason, raw_text(m.text)) for m in chunk.malformed]
        for row, problems in sorted(verdict.failures.items()):
            reason = "; ".join(reason for _, reason in problems)
            rejects.append(self._reject(row, problems[0][0], reason, raw_row(frame, row)))
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
        staged = stage_bytes(good, self.plan.landing) if len(good) else None
        return PreparedChunk(rejects, staged, repeats, fill_defaults)

    def _reject(self, row: int, rule: str, reason: str, raw: str) -> tuple:
        """A row of ``ingest_rejects`` (``raw`` its ``raw_row``), counted under its (first) rule. A NUL in the reason (a key
        outside the contract named with one) becomes U+FFFD, as in :func:`raw_row`: PostgreSQL's
        text cannot hold it, and would fail the file instead of quarantining the row."""
        self.rejected[rule] += 1
        reason = reason.replace("\x00", "\ufffd")
        return (self.file_id, self.file.url, self.file.table, row, rule, reason, raw)

    # -- writer thread ---------------------------------------------------------------------------
    def write(self, prepared: PreparedChunk) -> None:
        with self.conn.cursor() as cursor:
            clock = time.perf_counter()
            if prepared.rejects:
                with cursor.copy(
                    f"COPY {ledger.REJECTS} ({', '.join(ledger.REJECT_COLUMNS)}) FROM STDIN"
                ) as copy:
                    for reject in prepared.rejects:
                        copy.write_row(reject)
            if prepared.staged is not None:
                with cursor.copy(self.plan.copy_stage()) as copy:
                    copy.write(prepared.staged)
            clock = self._tick("db: copy", clock)
        if prepared.staged is None:
            return
        if self.per_chunk:
            self._reject_in_sql(prepared.repeats)
            if prepared.repeats:
                self._supersede(prepared.fill_defaults)
            clock = self._tick("db: checks", clock)
            self.rows_changed += self.conn.execute(self.plan.merge(prepared.fill_defaults)).rowcount
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
                result.error = all_rejected(result)
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
    except FAILS_THE_FILE as error:
        record_failure(conn, result, error, run_id)
    finally:
        result.seconds = time.monotonic() - started
    return result
