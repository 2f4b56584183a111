"""The PostgreSQL side: which rows become documents, and what a document holds.

A document is one conversation with its customer's code, tier and stage and its employee's code and
department. Names, phone numbers, e-mails, messenger ids and birth dates of customers and employees
are never selected, nor is the conversation's ``source_message_id`` (a platform's message id can hold
the sender's phone number: ``ingestion/replication/tables.py``); a document is found by its ``id``.
The message text goes through ``redaction`` first.

PostgreSQL sends plain columns of the conversation only; Python writes the JSON (``orjson``, in C)
and splices in the customer's and employee's fields, looked up once per id for a whole stream
(``Parties``). A full rebuild shares two cores with the search engine, and this split measured
the least CPU for the pair: PostgreSQL's ``row_to_json`` of the joined row cost it ~7 core-seconds
per million documents more than plain columns, Python's JSON writing less than a third of that.
Each document's ``_source`` is written in one step, redacted message and tags included: building
it in stages (fields, then text, then tags) through intermediate objects cost 1.7 times as much
Python CPU for this step, and a quarter more for a whole rebuild (~22 core-seconds per million
documents, now 15 to 20).

A document's version is the newest ``updated_at`` of its three rows, so a customer's or an
employee's change makes a newer version of every conversation that shows it, and a document read
earlier (a replay, a slower writer) can never overwrite one read later.

Timestamps are ``TIMESTAMP`` without zone; every session here runs in UTC, the zone the embedded
server stamps in, for the times it writes and shows. The upper bound of what a sync reads does not
rely on that: it comes from ``read_bound``, in the zone the triggers stamp with whatever the server's.
That zone's clock can fall back (daylight saving time ends, the server's TimeZone is changed), stamping
new rows earlier than the cursors: the cursors keep the UTC offset of the bound they were read up to,
and are moved back by as much as the offset shrank since (``Cursors.rewound_for``).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import orjson
import psycopg
from psycopg.rows import dict_row, tuple_row

from ingestion.load.readers.json_text import exact_json
from ingestion.replication import cursor as replication_cursor
from ingestion.replication.cursor import Bound, exact_bound_of, window_start
from ingestion.search.redaction import redact, redact_all

EPOCH = dt.datetime(1970, 1, 1)

# Microseconds since the epoch, exact (numeric ``extract`` since PostgreSQL 14).
_VERSION_SQL = "(extract(epoch FROM {}) * 1000000)::bigint"

# One row per conversation: its keyset position and version, the fields of its document, the ids
# of its customer and employee, and the free text (message, tags) that is redacted.
_SELECT = f"""
SELECT c.id, c.updated_at, {_VERSION_SQL.format("c.updated_at")}, c.customer_id, c.employee_id,
       c.platform, c.message_type, c.direction, c.media_url IS NOT NULL, c.sentiment,
       coalesce(c."is_反问", false), c.script_used_id, c.quality_score, c.sent_at, c.created_at,
       c.content, c.keywords::text, c.intention_signals::text, c.risk_keywords::text
FROM conversations c
"""
FREE_TEXT_TAGS = ("keywords", "intention_signals", "risk_keywords")

# "now" in UTC wall-clock (``database_now``: how long the oldest change not yet indexed has waited).
NOW = "(clock_timestamp() AT TIME ZONE 'UTC')"


@dataclass(frozen=True)
class Party:
    """A table whose row every document of its conversations quotes: document field -> column."""

    table: str
    foreign_key: str  # the conversations column that points at it
    fields: dict[str, str]


CUSTOMER = Party(
    "customers",
    "customer_id",
    {
        "customer_code": "customer_code",
        "customer_tier": "tier",
        "customer_stage": "current_stage",
    },
)
EMPLOYEE = Party(
    "employees", "employee_id", {"employee_code": "employee_code", "employee_department": "department"}
)
# The PostgreSQL tables a document is read from: the conversation and the rows it quotes.
INDEXED_TABLES = ("conversations", CUSTOMER.table, EMPLOYEE.table)


class DocumentRow(NamedTuple):
    """One conversation ready for ``bulk_lines``: where it stands in the keyset, its version, and
    its document (``_source``) as JSON, contact details already redacted."""

    id: int
    cursor_at: dt.datetime
    version: int
    source: bytes


def _strings(value) -> list[str]:
    """JSONB tags to a flat list of strings ("keywords": ["美股"], or {"signal": score} objects)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [str(k) for k in value]
    if isinstance(value, list):
        flat: list[str] = []
        for item in value:
            if isinstance(item, dict):
                flat.extend(str(v) for v in item.values() if isinstance(v, str))
            elif item is not None:
                flat.append(str(item))
        return flat
    return [str(value)]


_TAG_KEYS = tuple(b',"%s":' % tag.encode() for tag in FREE_TEXT_TAGS)


@functools.lru_cache(maxsize=16384)
def redacted_tag_fields(*raw_json: str | None) -> bytes:
    """The tag fields of a document (``,"keywords":[...]`` and so on), redacted. Tags repeat across
    messages (a small vocabulary), so each distinct combination is redacted and serialised once."""
    return b"".join(
        key + orjson.dumps(redact_all(_strings(_tag_value(raw) if raw is not None else None)))
        for key, raw in zip(_TAG_KEYS, raw_json, strict=True)
    )


def _tag_value(raw: str):
    """A tag column's jsonb text, decoded. jsonb keeps any number's digits (a landing file may carry
    1e400), and orjson refuses one beyond a double: such a text is decoded exactly instead, its
    numbers as written (a number among tags is a tag of its digits, as str() makes of any other)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return exact_json(raw, str)


# orjson writes a naive datetime as ISO 8601; these mark it UTC ("2025-11-03T10:00:00Z").
_JSON_OPTIONS = orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z
# Customers (or employees) remembered by one stream before it starts over: ~200 bytes each.
_REMEMBERED_PER_PARTY = 200_000


@dataclass
class Parties:
    """The customer and employee fields of documents, each id read once per stream of rows (in the
    caller's transaction, so a snapshot's documents quote the snapshot's customers)."""

    conn: psycopg.Connection
    _known: dict[str, dict[int, tuple[bytes, int]]] = field(default_factory=dict)

    def _of(self, party: Party, ids: Iterable[int]) -> dict[int, tuple[bytes, int]]:
        """id -> (the party's fields as JSON members, its version), reading ids not seen yet."""
        wanted = set(ids)
        known = self._known.get(party.table, {})
        if len(known) > _REMEMBERED_PER_PARTY:  # memory stays bounded however many customers there are
            known = {row_id: known[row_id] for row_id in wanted if row_id in known}
        self._known[party.table] = known
        if missing := wanted - known.keys():
            columns = ", ".join(party.fields.values())
            with self.conn.cursor(row_factory=tuple_row, binary=True) as cursor:
                for row_id, version, *values in cursor.execute(
                    f"SELECT id, {_VERSION_SQL.format('updated_at')}, {columns} FROM {party.table}"
                    " WHERE id = ANY(%s)",
                    (list(missing),),
                ):
                    known[row_id] = (
                        orjson.dumps(dict(zip(party.fields, values, strict=True)))[1:-1],
                        version,
                    )
        return known

    def documents(self, rows: Sequence[tuple]) -> list[DocumentRow]:
        """Conversation rows (``_SELECT``'s columns) to documents. A row whose customer or employee
        is gone was deleted with them after it was read; its tombstone removes it from the index."""
        customers = self._of(CUSTOMER, (row[3] for row in rows))
        employees = self._of(EMPLOYEE, (row[4] for row in rows))
        documents: list[DocumentRow] = []
        for (
            row_id,
            updated_at,
            version,
            customer_id,
            employee_id,
            platform,
            message_type,
            direction,
            has_media,
            sentiment,
            is_counter_question,
            script_used_id,
            quality_score,
            sent_at,
            created_at,
            content,
            keywords,
            intention_signals,
            risk_keywords,
        ) in rows:
            if (customer := customers.get(customer_id)) is None or (
                employee := employees.get(employee_id)
            ) is None:
                continue
            own = orjson.dumps(
                {
                    "id": row_id,
                    "platform": platform,
                    "message_type": message_type,
                    "direction": direction,
                    "has_media": has_media,
                    "sentiment": sentiment,
                    "is_counter_question": is_counter_question,
                    "script_used_id": script_used_id,
                    "quality_score": quality_score,
                    "sent_at": sent_at,
                    "created_at": created_at,
                    "updated_at": updated_at,
                    "content": redact(content),
                },
                option=_JSON_OPTIONS,
            )
            documents.append(
                DocumentRow(
                    row_id,
                    updated_at,
                    max(version, customer[1], employee[1]),
                    b"".join(
                        (
                            own[:-1],
                            b",",
                            customer[0],
                            b",",
                            employee[0],
                            redacted_tag_fields(keywords, intention_signals, risk_keywords),
                            b"}",
                        )
                    ),
                )
            )
        return documents


@dataclass(frozen=True)
class Cursor:
    """A keyset position: everything at or before (at, id) has been applied to the index."""

    at: dt.datetime = EPOCH
    id: int = 0

    def as_tuple(self) -> tuple[dt.datetime, int]:
        return (self.at, self.id)


@dataclass(frozen=True)
class Cursors:
    """Where the sync stands in each table it follows: conversations, their tombstones, and the
    customers and employees whose attributes documents copy; and how far the stamps' clock was ahead
    of UTC at the bound they were read up to (None: not known yet)."""

    changes: Cursor = Cursor()
    deletions: Cursor = Cursor()
    customers: Cursor = Cursor()
    employees: Cursor = Cursor()
    utc_offset_seconds: int | None = None

    def rewound_for(self, bound: Bound) -> Cursors:
        """The cursors a read up to ``bound`` starts from. If the stamps' clock fell back since they
        were read (its offset shrank by D), rows written since are stamped up to D before them: each
        moves back by D (``cursor.window_start``), and the rows stamped in between are read again,
        which leaves the index as it was (documents carry their version). Either way they now
        belong to ``bound``'s offset."""
        offset = self.utc_offset_seconds

        def rewound(cursor: Cursor) -> Cursor:
            if offset is None:
                return cursor
            start = window_start(Bound(cursor.at, offset), bound)
            return cursor if start == cursor.at else Cursor(start, 0)

        return Cursors(
            rewound(self.changes),
            rewound(self.deletions),
            rewound(self.customers),
            rewound(self.employees),
            bound.utc_offset_seconds,
        )

    @classmethod
    def all_at(cls, cursor: Cursor, utc_offset_seconds: int | None = None) -> Cursors:
        return cls(cursor, cursor, cursor, cursor, utc_offset_seconds)

    def of(self, table: str) -> Cursor:
        return getattr(self, table)

    def moved(self, table: str, cursor: Cursor) -> Cursors:
        return replace(self, **{table: cursor})


def connect(dsn: str, **kwargs) -> psycopg.Connection:
    conn = psycopg.connect(dsn, row_factory=dict_row, **kwargs)
    conn.execute("SET TIME ZONE 'UTC'")
    conn.commit()
    return conn


def version_of(timestamp: dt.datetime) -> int:
    """External document version: the row timestamp in microseconds, so newer always wins
    (integer arithmetic, equal to ``_VERSION_SQL``)."""
    return (timestamp - EPOCH) // dt.timedelta(microseconds=1)


def read_bound(conn: psycopg.Connection, lag: dt.timedelta = dt.timedelta(0)) -> dt.datetime:
    """The bound as the stamps show it (``exact_read_bound``)."""
    return exact_read_bound(conn, lag).local


def exact_read_bound(conn: psycopg.Connection, lag: dt.timedelta = dt.timedelta(0)) -> Bound:
    """The exclusive upper bound of the ``updated_at``/``deleted_at`` a sync may read now.

    They are stamped when a row is written, not when its transaction commits: a row may become
    visible after rows stamped later were synced, and a cursor already past it would never read it.
    So reads stop at the replication's ``visible_bound``: the start of the oldest transaction that
    has written and is still open (every row stamped before it is committed). ``lag`` only holds
    changes back further (tests); no fixed lag can know how long a transaction stays open. Call at
    the start of a transaction (PostgreSQL's view of other sessions is fixed per transaction). With
    the UTC offset of the stamps' clock at the bound (``Cursors.rewound_for``)."""
    bound = exact_bound_of(conn)
    return Bound(bound.local - lag, bound.utc_offset_seconds)


def changed_rows(
    conn: psycopg.Connection, after: Cursor, bound: dt.datetime, limit: int
) -> list[DocumentRow]:
    """Rows changed after the cursor and before ``bound`` (``read_bound``), oldest first."""
    with conn.cursor(row_factory=tuple_row, binary=True) as cursor:
        rows = cursor.execute(
            _SELECT + "WHERE (c.updated_at, c.id) > (%s, %s) AND c.updated_at < %s "
            "ORDER BY c.updated_at, c.id LIMIT %s",
            (after.at, after.id, bound, limit),
        ).fetchall()
    return Parties(conn).documents(rows)


def deleted_rows(conn: psycopg.Connection, after: Cursor, bound: dt.datetime, limit: int) -> list[dict]:
    """Tombstones of deleted conversations after the cursor and before ``bound`` (``read_bound``)."""
    return conn.execute(
        f"SELECT id, row_id, deleted_at, {_VERSION_SQL.format('deleted_at')} AS version FROM sync_deletions "
        "WHERE table_name = 'conversations' AND (deleted_at, id) > (%s, %s) AND deleted_at < %s "
        "ORDER BY deleted_at, id LIMIT %s",
        (after.at, after.id, bound, limit),
    ).fetchall()


def last_truncation(
    conn: psycopg.Connection, start: dt.datetime, bound: dt.datetime
) -> tuple[str, dt.datetime] | None:
    """The latest TRUNCATE of a table documents are read from, stamped in ``[start, bound)``: (table,
    when), or None. TRUNCATE fires no row trigger, so the conversations it removes leave no tombstone,
    only a marker (``sync_truncations``, migration 0023, read as replication reads it: a TRUNCATE of a
    partition of conversations names ``conversations``), stamped and bounded like the tombstones."""
    found = [
        (at, table)
        for table in INDEXED_TABLES
        if (at := replication_cursor.last_truncation(conn, table, start, bound)) is not None
    ]
    if not found:
        return None
    at, table = max(found)
    return table, at


def _stream(
    conn: psycopg.Connection, name: str, sql: str, params: Sequence, batch_rows: int
) -> Iterator[list[DocumentRow]]:
    """Documents in batches through a server-side cursor (constant memory at any size). Call inside
    a transaction the caller commits afterwards."""
    parties = Parties(conn)
    with conn.cursor(name=name, row_factory=tuple_row, binary=True) as cursor:
        cursor.itersize = batch_rows
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(batch_rows):
            yield parties.documents(rows)


def stream_all(conn: psycopg.Connection, batch_rows: int = 5000) -> Iterator[list[DocumentRow]]:
    """Every conversation (inside the caller's snapshot transaction)."""
    return _stream(conn, "search_rebuild", _SELECT, (), batch_rows)


def stream_conversations_of(
    conn: psycopg.Connection, foreign_key: str, row_ids: list[int], batch_rows: int
) -> Iterator[list[DocumentRow]]:
    """Every conversation of these customers (``customer_id``) or employees (``employee_id``): one
    customer may have thousands, so they are streamed, never loaded at once."""
    if foreign_key not in ("customer_id", "employee_id"):
        raise ValueError(f"not a conversations foreign key: {foreign_key!r}")
    return _stream(
        conn, "search_related", _SELECT + f"WHERE c.{foreign_key} = ANY(%s)", (row_ids,), batch_rows
    )


def documents_of(conn: psycopg.Connection, ids: list[int]) -> list[DocumentRow]:
    """The documents of these conversations as PostgreSQL has them now, quoting their customers and
    employees as it has them now (one whose customer or employee is gone is left out, as
    ``Parties.documents`` leaves it). For a few thousand ids: they are read at once."""
    with conn.cursor(row_factory=tuple_row, binary=True) as cursor:
        rows = cursor.execute(_SELECT + "WHERE c.id = ANY(%s) ORDER BY c.id", (ids,)).fetchall()
    return Parties(conn).documents(rows)


def count_all(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) AS n FROM conversations").fetchone()["n"]


def counts_per_day(conn: psycopg.Connection) -> dict[str, int]:
    rows = conn.execute(
        "SELECT sent_at::date AS day, count(*) AS n FROM conversations GROUP BY 1 ORDER BY 1"
    ).fetchall()
    return {row["day"].isoformat(): row["n"] for row in rows}


def pending_changes(conn: psycopg.Connection, changes: Cursor) -> tuple[set[str], list[int]]:
    """Days with changes the index has not seen yet (what a per-day comparison may legitimately
    miss), and the ids of those conversations: one whose ``sent_at`` changed since is still counted
    on its old day by the index (those days are found there, ``query.counts_per_day``)."""
    rows = conn.execute(
        "SELECT id, sent_at::date AS day FROM conversations WHERE (updated_at, id) > (%s, %s)",
        changes.as_tuple(),
    ).fetchall()
    return {row["day"].isoformat() for row in rows}, [row["id"] for row in rows]


def present_conversations(conn: psycopg.Connection, ids: Sequence[int]) -> set[int]:
    """Which of these conversations exist (again: a deleted id can be inserted anew)."""
    rows = conn.execute("SELECT id FROM conversations WHERE id = ANY(%s)", (list(ids),)).fetchall()
    return {row["id"] for row in rows}


def pending_deletions(conn: psycopg.Connection, deletions: Cursor) -> list[int]:
    """Ids of conversations deleted after the deletions cursor: still in the index until the next sync
    (their days are found in the index, ``query.counts_per_day``: PostgreSQL no longer has them)."""
    rows = conn.execute(
        "SELECT DISTINCT row_id FROM sync_deletions WHERE table_name = 'conversations' AND (deleted_at, id) > (%s, %s)",
        deletions.as_tuple(),
    ).fetchall()
    return [row["row_id"] for row in rows]


def oldest_pending_change(conn: psycopg.Connection, changes: Cursor) -> dt.datetime | None:
    """When the oldest change the index has not seen was written (None: it has seen them all)."""
    return conn.execute(
        "SELECT min(updated_at) AS at FROM conversations WHERE (updated_at, id) > (%s, %s)",
        changes.as_tuple(),
    ).fetchone()["at"]


def database_now(conn: psycopg.Connection) -> dt.datetime:
    return conn.execute(f"SELECT {NOW} AS now").fetchone()["now"]
