"""When a file fails, and what its error then says: the errors that fail one file and let the run go
on (:data:`FAILS_THE_FILE`), the failed file's ledger row and error with what to do about it
(:func:`record_failure`), the error of a file whose every row was rejected (:func:`all_rejected`)
and the words of reject reasons (:func:`describe_reasons`).

Kept apart from :mod:`ingestion.load.loader`, which runs a file's transaction, so that telling a
file's fault from the store's or the database's, and the remedy each gets, is read in one place.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import psycopg

from ingestion.contracts import CONTRACTS
from ingestion.load import ledger
from ingestion.load.messages import ingest_command, retry_words, waiting_words
from ingestion.load.readers.shared import LandingFileError
from ingestion.load.validate import rule_words

if TYPE_CHECKING:
    from ingestion.load.loader import FileResult

# The errors that say the file itself is not there or not ours to read: it fails alone (recorded).
# Any other OSError (a connection reset, a timeout, EIO on S3 or NFS) is the store's, not the
# file's: it propagates, the run fails with no ledger row, and the sensor requests the file again.
NOT_READABLE_BY_US = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)
# PostgreSQL's class 54, "program limit exceeded" (a jsonb string over 256 MB, JSON nested deeper
# than its stack, ...): an OperationalError, like a lost connection, but caused by the file's
# content, so the file fails (its ledger row says why) and the run goes on to the next file.
BEYOND_POSTGRESQL_LIMITS = (
    psycopg.errors.ProgramLimitExceeded,
    psycopg.errors.StatementTooComplex,
    psycopg.errors.TooManyColumns,
    psycopg.errors.TooManyArguments,
)
# Every error that fails the file it came from (recorded by record_failure); any other ends the run.
FAILS_THE_FILE = (
    LandingFileError,
    psycopg.DataError,
    psycopg.IntegrityError,
    psycopg.ProgrammingError,
    *NOT_READABLE_BY_US,
    *BEYOND_POSTGRESQL_LIMITS,
)
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


def all_rejected(result: FileResult) -> str:
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


def record_failure(
    conn: psycopg.Connection, result: FileResult, error: Exception, run_id: str | None
) -> None:
    """``result`` failed with ``error``: its error says why and what to do, and a file whose content
    was read (its checksum known) gets a 'failed' ledger row, in a transaction of its own."""
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
