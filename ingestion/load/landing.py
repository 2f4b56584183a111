"""The landing zone: a folder (or any fsspec URL) of ``<table>__<batch>.<csv|jsonl|parquet>`` files.

Files load in :func:`in_load_order`: tables in :func:`load_order`, then a table's batches in
natural order (:func:`batch_order`), the one order of the CLI, the Dagster assets and the sensor.

Everything goes through fsspec, so ``s3://bucket/landing`` works like a local folder. Files are
identified by their sha256: the ledger keys on it, which is how the same content dropped again
under another name is recognised.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import fsspec
from fsspec.core import url_to_fs

from ingestion.contracts import CONTRACTS, load_order

FORMATS = ("csv", "jsonl", "parquet")
# <table>__<batch>.<format>: a table name never holds "__" (so a batch may: customers__a__b.csv is batch
# a__b of customers), and a batch is letters, digits, "_" and "-" (README's landing contract).
_NAME = re.compile(r"^(?P<table>[a-z]+(?:_[a-z]+)*)__(?P<batch>[A-Za-z0-9_-]+)\.(?P<ext>csv|jsonl|parquet)$")
_NAME_RULE = "name is not <table>__<batch>.<csv|jsonl|parquet> (batch: letters, digits, _ and -)"
_BATCH_RULE = "a batch is [A-Za-z0-9_-]+ (README's landing contract: ASCII letters, digits, _ and -)"
_BATCH_CHAR = re.compile(r"[A-Za-z0-9_-]")
_HASH_BLOCK = 8 * 1024 * 1024
_DIGIT_RUNS = re.compile(r"([0-9]+)")
# What uploaders and browsers name a file while writing it, renamed once done (curl's and many
# clients' .part, WinSCP's .filepart, .tmp, Chrome's .crdownload): its size changes every tick, so a
# warning per version would be one per tick, and its finished name is judged once it has it.
_IN_PROGRESS_SUFFIXES = (".part", ".filepart", ".tmp", ".crdownload")
# A marker or copy an uploader or an operator keeps beside a landing file (an upload's .done flag, a
# .bak): never meant to load. Silent after a landing file's name only; a compressed ``b1.csv.gz`` is
# data meant to load that never will (no compression is read): named.
_BESIDE_SUFFIXES = (".done", ".bak")


def default_landing_url() -> str:
    """``$FUNNELHOUSE_LANDING``, else ``<state dir>/landing`` (read when called, never at import)."""
    configured = os.environ.get("FUNNELHOUSE_LANDING")
    if configured:
        return configured
    from devstack import state

    path = state.home() / "landing"
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


@dataclass(frozen=True)
class LandingFile:
    """One landing file. ``url`` is what fsspec opens (a plain path for local files)."""

    url: str
    table: str
    batch: str
    format: str
    size: int | None = None
    modified: str | None = None  # the store's modification stamp, as text (mtime, LastModified ...)

    @property
    def name(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]

    @property
    def modified_at(self) -> float | None:
        """The modification stamp as seconds since the epoch, None when the store gives none (or
        one we cannot read). Stamps are a float (local ``mtime``) or a date-time (``LastModified``
        of S3, ``updated`` of GCS ...); one without a time zone is taken as UTC."""
        return _stamp_seconds(self.modified)

    def open(self, mode: str = "rb"):
        return fsspec.open(self.url, mode).open()

    def checksum(self) -> str:
        digest = hashlib.sha256()
        with self.open() as handle:
            while block := handle.read(_HASH_BLOCK):
                digest.update(block)
        return digest.hexdigest()


def parse_name(name: str) -> tuple[str, str, str] | None:
    """``(table, batch, format)`` for a landing file name of a known table, else None."""
    match = _NAME.match(name)
    if not match or match["table"] not in CONTRACTS:
        return None
    return match["table"], match["batch"], match["ext"]


def batch_order(batch: str) -> tuple:
    """Sort key of a batch name: its runs of digits compared as numbers, the text between them as
    text, so ``9`` comes before ``10`` and ``part2`` before ``part10``, while names of one shape
    whose numbers have the same width (``2026_01``, ``20261130T0100``, ``part0001``) keep their text
    order. The name itself breaks ties (``9`` and ``09``), so the order never depends on how a
    store lists its files.

    Why it matters: the batches of a table are upserts of the same keys, so a batch loaded after a
    newer one would overwrite its values with older ones (text order put ``10`` before ``9``).
    """
    # re.split with a group alternates text and digit runs, text first: the same positions hold
    # the same types in every key, so any two keys compare.
    parts = _DIGIT_RUNS.split(batch)
    return tuple(int(part) if i % 2 else part for i, part in enumerate(parts)), batch


def in_load_order(files: Iterable[LandingFile]) -> list[LandingFile]:
    """``files`` in the order they must load: tables in :func:`load_order` (referenced tables first),
    a table's batches in :func:`batch_order`, a batch's files by URL."""
    rank = {table: i for i, table in enumerate(load_order())}
    return sorted(files, key=lambda f: (rank[f.table], batch_order(f.batch), f.url))


def landing_file(url: str, size: int | None = None, modified: str | None = None) -> LandingFile:
    name = url.rstrip("/").rsplit("/", 1)[-1]
    parsed = parse_name(name)
    if parsed is None:
        why = _skip_reason(name)
        raise ValueError(
            f"{url}: not a landing file name" + (f" ({why})" if why else "") + "; expected "
            f"<table>__<batch>.<csv|jsonl|parquet> with a table among {sorted(CONTRACTS)}"
        )
    return LandingFile(url, *parsed, size=size, modified=modified)


def _modified(info: dict) -> str | None:
    for key in ("mtime", "LastModified", "last_modified", "updated", "created"):
        if info.get(key) is not None:
            return str(info[key])
    return None


def _stamp_seconds(stamp: str | None) -> float | None:
    """A modification stamp as :func:`_modified` keeps it, as seconds since the epoch (or None)."""
    if stamp is None:
        return None
    try:
        return float(stamp)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _absolute(url: str) -> str:
    return url if "://" in url else str(Path(url).expanduser().resolve())


def _with_protocol(fs, path: str, original: str) -> str:
    if "://" not in original:
        return path
    return fs.unstrip_protocol(path)


@dataclass(frozen=True)
class Skipped:
    """A file in a landing folder that looks like data but is not a landing file: never loaded."""

    url: str
    reason: str
    size: int | None = None
    modified: str | None = None  # (with the size, tells a new version of the file: LandingFile's)

    @property
    def name(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]


def _skip_reason(name: str) -> str | None:
    """Why a file in a landing folder is skipped; None for one ignored silently (hidden or
    temporary files, uploads in progress, a marker or a backup beside a landing file, the
    generator's ``_manifest.json``, a name of no table that does not look like data) or for a
    landing file.

    Any other name of a known table (``tags__b9 (1).csv``, ``tags__b1.CSV``, ``customers__1103.xlsx``)
    is reported whatever its extension: someone meant it to load, and it never will under that name."""
    if name.startswith((".", "_")) or parse_name(name) is not None or _not_data(name):
        return None
    table, separator, rest = name.partition("__")  # (a table name never holds "__")
    if separator and table in CONTRACTS:
        return _misnamed_reason(rest)
    if not name.lower().endswith(tuple(f".{ext}" for ext in FORMATS)):
        return None
    match = _NAME.match(name)
    if match:
        return f"unknown table {match['table']!r} (known: {', '.join(sorted(CONTRACTS))})"
    return _NAME_RULE


def _not_data(name: str) -> bool:
    """Whether ``name`` is an upload in progress or a marker or backup of a landing file's name."""
    stem, _, suffix = name.rpartition(".")
    lowered = f".{suffix.lower()}"
    return lowered in _IN_PROGRESS_SUFFIXES or (lowered in _BESIDE_SUFFIXES and parse_name(stem) is not None)


def _misnamed_reason(rest: str) -> str:
    """What is wrong with ``<batch>.<format>``, the part after ``<known table>__`` of a name that
    does not parse: its extension, its batch, or both."""
    batch, extension = _split_extension(rest)
    problems = []
    if extension is None:
        problems.append(f"no extension: expected one of {', '.join(FORMATS)}")
    elif extension not in FORMATS:
        case = " (lower case only)" if extension.lower() in FORMATS else ""
        problems.append(f"extension .{extension} is not one of {', '.join(FORMATS)}{case}")
    if not batch:
        problems.append(f"the batch is empty: {_BATCH_RULE}")
    elif bad := list(dict.fromkeys(char for char in batch if not _BATCH_CHAR.fullmatch(char))):
        named = ["a space" if char == " " else repr(char) for char in bad]
        listed = named[0] if len(named) == 1 else f"{', '.join(named[:-1])} and {named[-1]}"
        problems.append(f"batch {batch!r} has {listed}: {_BATCH_RULE}")
    return "; ".join(problems)


def _split_extension(rest: str) -> tuple[str, str | None]:
    """``(batch, extension)`` of ``rest``; a format's extension followed by another one (a compressed
    ``b31.csv.gz``, a ``b1.csv.bak``) is one extension, so the batch is not blamed for its dot."""
    stem, dot, extension = rest.rpartition(".")
    if not dot:
        return rest, None
    inner_stem, inner_dot, inner = stem.rpartition(".")
    if inner_dot and inner.lower() in FORMATS and extension.lower() not in FORMATS:
        return inner_stem, f"{inner}.{extension}"
    return stem, extension


def _refuse_password(location: str) -> None:
    """A landing URL carrying a password (``ftp://user:secret@host/landing``) is refused: the URL
    of each file is recorded in the ledger (``ingest_files.path``), tagged on Dagster runs and
    printed in logs and messages. fsspec takes a filesystem's credentials from its own settings."""
    # (each link of a chained URL, ``simplecache::ftp://user:secret@host/landing``)
    with_password = [urlsplit(link) for link in location.split("::") if "://" in link]
    with_password = [parts for parts in with_password if parts.password is not None]
    if not with_password:
        return
    parts = with_password[0]
    shown = urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))
    protocol = parts.scheme.upper()
    raise ValueError(
        f"{shown}: a landing URL must not carry a password (it would be recorded with every file "
        f"loaded, and logged); give it in the environment instead: FSSPEC_{protocol}_USERNAME and "
        f"FSSPEC_{protocol}_PASSWORD (fsspec's own settings), or the store's usual variables "
        "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY for s3://)"
    )


def survey(locations: Iterable[str]) -> tuple[list[LandingFile], list[Skipped]]:
    """:func:`discover`, and the files of the listed folders it skips, with why.

    A skipped file is a ``.csv``/``.jsonl``/``.parquet`` whose name does not name a known table
    (``notatable__a.csv``, ``Customers.csv``), or any ``<known table>__...`` name that is not a
    landing file's (``tags__b1.CSV``, ``tags__2026 11 03.csv``, ``customers__b1.xlsx``): someone
    meant it to load, so say it was left out, and why. Names starting with ``_`` or ``.`` (files
    being written, to be renamed), uploads in progress (``tags__b1.csv.part``) and markers or backups
    beside a landing file (``tags__b1.csv.done``) are never listed (:func:`_skip_reason`).
    """
    found: dict[str, LandingFile] = {}
    skipped: dict[str, Skipped] = {}
    for location in locations:
        location = _absolute(str(location))
        _refuse_password(location)
        fs, root = url_to_fs(location)
        if fs.isdir(root):
            for info in fs.ls(root, detail=True):
                path = info["name"]
                if info.get("type") != "file":
                    continue
                name = path.rsplit("/", 1)[-1]
                url = _with_protocol(fs, path, location)
                if parse_name(name):
                    found[url] = landing_file(url, info.get("size"), _modified(info))
                elif (reason := _skip_reason(name)) is not None:
                    skipped[url] = Skipped(url, reason, info.get("size"), _modified(info))
        elif fs.exists(root):
            info = fs.info(root)
            found[location] = landing_file(location, info.get("size"), _modified(info))
        else:
            raise FileNotFoundError(f"{location}: no such landing file or folder")
    return in_load_order(found.values()), sorted(skipped.values(), key=lambda s: s.url)


def discover(locations: Iterable[str]) -> list[LandingFile]:
    """Landing files at the given files/folders/URLs, in :func:`in_load_order`.

    Folders are listed one level deep; names that are not landing files (the generator's
    ``_manifest.json``, temporary files, unknown tables - see :func:`survey`) are skipped there
    but refused when named explicitly.
    """
    return survey(locations)[0]
