"""What to tell someone whose ingest PostgreSQL ended midway, the same words for the CLI and Dagster.

The loader turns PostgreSQL's refusals of a file's content into a failed file (recorded, the run
goes on: :mod:`ingestion.load.failures`); any other ``psycopg.OperationalError`` ends the run. Those
are of two kinds, and the advice differs:

- the connection is gone (no SQLSTATE: the socket or libpq; class 08; 57P01-57P03, the server
  shutting down, crashed or still starting): wait for PostgreSQL, then run again. Whether the file
  being loaded was rolled back cannot be known if the connection broke as its COMMIT went out, so
  that is said; a re-run finds the content in the ledger if it did commit, and loads it only once.
- PostgreSQL is up but stopped the statement (a lock or statement timeout, a deadlock, a
  serialization failure, a full disk): the server answered, so the file's transaction was rolled
  back for certain; run again (once the lock holder, the disk ... is dealt with).
"""

from __future__ import annotations

import psycopg

# Class 57 "operator intervention" codes that mean the session is over, not that a statement was
# cancelled (57014, query_canceled, is a statement timeout or a cancel request: the server is up).
_SESSION_ENDED = {"57P01", "57P02", "57P03"}  # admin shutdown, crash shutdown, cannot connect now


def connection_lost(error: psycopg.Error) -> bool:
    state = error.sqlstate
    return state is None or state.startswith("08") or state in _SESSION_ENDED


def cause(error: psycopg.Error) -> str:
    """PostgreSQL's primary message and SQLSTATE: never the DETAIL, which can quote a row's values."""
    lines = str(error).strip().splitlines()
    primary = error.diag.message_primary or (lines[0] if lines else type(error).__name__)
    return primary + (f" (SQLSTATE {error.sqlstate})" if error.sqlstate else "")


def stopped_message(error: psycopg.Error, loading: str | None, finished: int, again: str) -> str:
    """The whole message: what stopped the run, where that leaves ``loading`` (the file whose
    transaction was open, None between files), the ``finished`` files (committed), and ``again``,
    what to run (an imperative: "run the same command again: funnelhouse ingest ...")."""
    lost = connection_lost(error)
    if lost:
        what = "The connection to PostgreSQL was lost" + (f" while loading {loading}" if loading else "")
        what += f": {cause(error)}."
    else:
        what = f"PostgreSQL stopped {f'loading {loading}' if loading else 'the ingest'}: {cause(error)}."
    if not loading:
        state = "No file was loading: nothing was left half done."
    elif lost:
        state = (
            f"{loading} was rolled back, nothing of it loaded, unless its commit had already reached "
            "PostgreSQL (then all of it loaded, and a re-run does not load it twice)."
        )
    else:
        state = f"{loading} was rolled back: nothing of it was loaded."
    done = f"{finished} file(s) finished before (committed)."
    to_do = ("Once PostgreSQL is up, " if lost else "") + again
    return " ".join((what, state, done, to_do[0].upper() + to_do[1:]))
