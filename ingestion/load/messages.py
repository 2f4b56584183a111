"""What a load tells people about files it could not load and how to load them again (words of
reject reasons, of a file's error, of ``funnelhouse ingest``'s notes), and the lines announcing the
long silent steps of a big file: one module, as the merge SQL, the partitions and the loader all
say them."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ingestion.load.landing import LandingFile


def older_batch_reason(table: str, batch: str, newer: str) -> str:
    """Why a late older batch's row that would change a stored row is quarantined (rule ``older_batch``)."""
    return (
        f"batch {batch} is older than batch {newer} already loaded into {table}: the stored row may hold "
        f"a newer batch's value, so this older one is not applied over it (if no newer batch carried this "
        f"row, as with delta exports, apply it by dropping the row again in a file whose batch sorts "
        f"after {newer})"
    )


@dataclass
class ParentWords:
    """What a reject reason adds about a referenced table's files the run could not load: ``unread``
    (whole words naming the files that may hold the key), ``read`` (words following the name of the
    file whose rejected rows hold it); empty when there are none."""

    unread: str = ""
    read: str = ""


def retry_words(url: str, table: str | None = None) -> str:
    """What loads a row of ``url`` rejected for a key (of ``table``) not loaded yet: the file loaded
    again once that table holds the key (the sensor does not retry a path it tried: ``ledger.handled``)."""
    return (
        f"once {table or 'the table it names'} has loaded the key, run `{ingest_command(url)}` (or drop "
        "the file again under a new name) to load this row: the landing sensor does not retry a path it tried"
    )


def waiting_words(parents: Sequence[str], url: str, *, may: bool = True, table: str | None = None) -> str:
    """'<parents> could not be loaded in this run and may hold the key: ... <retry_words>', the end of
    what is said about the rows of ``url`` rejected for keys those files may hold (the reject reason,
    the file's error, ``funnelhouse ingest``'s notes); ``may`` False: the words after the name of a
    file known to hold the key (its rejected rows do)."""
    held = "may hold the key" if may else "holds the key among its rejected rows"
    named = f"{', '.join(parents)} " if may else ""
    return f"{named}could not be loaded in this run and {held}: fix it; {retry_words(url, table)}"


def ingest_command(url: str) -> str:
    """The command that loads ``url`` again, quoted for a shell (a path may hold spaces or quotes)."""
    return f"funnelhouse ingest {shlex.quote(url)}"


# A file at least this big gets a line before each step that reads it whole with no rows to
# count (hashing it, scanning it for months): seconds to minutes of silence otherwise (a checksum
# of 1 GB takes seconds; a multi-GB file, more). Smaller files stay quiet.
ANNOUNCE_BYTES = 64 * 1024 * 1024


def announce(file: LandingFile, doing: str, on_step: Callable[[str], None] | None) -> None:
    """Tell ``on_step`` (an :class:`~ingestion.load.pipeline.Observer`'s ``step_started``) that
    ``doing`` ('hashing x.csv') begins, when ``file`` is big enough for it to take a while."""
    if on_step and file.size and file.size >= ANNOUNCE_BYTES:
        on_step(f"{doing} ({file.size / 1e6:,.1f} MB)...")
