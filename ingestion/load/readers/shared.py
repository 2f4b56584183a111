"""What the landing readers of every format share: the chunk they yield, the file's and the
rows' errors, the limit of a row, and the checks of a file's start and of its header's columns.

One module, so that each format's reader (:mod:`.csv_reader`, :mod:`.jsonl_reader`,
:mod:`.parquet_reader`) holds only what is its own."""

from __future__ import annotations

import io
import re
from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

from ingestion.load.landing import LandingFile

# The longest row a reader holds. A CSV row (or JSONL line) is read whole, so without a limit one
# quoted field whose closing quote never comes (`"Big deal,` in a notes column) makes the rest of
# the file one row, held in memory and scanned again with every block: a multi-GB file then runs
# out of memory, the run dies and the file is never recorded (a JSON array export saved as .jsonl
# is one such line). No landing row comes near 64 MiB (a conversation is a few KB): a longer CSV
# row fails the file naming its row and line (where it ends is in doubt); a longer JSONL line, whose
# end is not, is quarantined as malformed without being held whole and the rest of the file loads.
# Tests make it small.
MAX_ROW_BYTES = 64 * 1024 * 1024

# The rule of a row the reader could not split into columns (see MalformedRow).
MALFORMED_ROW = "malformed_row"

# What a file holding UTF-16 looks like: its byte-order mark, or (without one) a NUL byte in its
# first two: a header and a JSONL line start with an ASCII character, which UTF-16 writes with a
# NUL byte (a UTF-8 text never holds one there).
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_UTF16_PROBLEM = (
    'the file is UTF-16 (Excel\'s "Unicode Text" and PowerShell write it), not UTF-8: save it as UTF-8 '
    '(Excel: "CSV UTF-8") and drop it again. Nothing was loaded'
)


def without_row(error: Exception) -> str:
    """Arrow's parse error without the row it quotes ("Expected 12 columns, got 13: <the row>"):
    a row holds contact details, and this message goes to logs and Dagster."""
    return re.sub(r"(Expected \d+ columns, got \d+):.*", r"\1", str(error), flags=re.DOTALL)


class LandingFileError(Exception):
    """The file as a whole cannot be read as a landing file of its table."""

    def __init__(self, file: LandingFile, problem: str):
        super().__init__(f"{file.url}: {problem}")
        self.file = file
        self.problem = problem


@dataclass(frozen=True)
class MalformedRow:
    """A row that cannot be read as the header's columns, kept whole for the rejects table."""

    row: int  # 1-based row number, numbered like the chunk's frame
    reason: str
    text: str  # the row as written (a CSV record, a JSONL line without its line break)


@dataclass
class Chunk:
    frame: pd.DataFrame  # landing columns as text, index = 1-based row numbers
    malformed: list[MalformedRow] = field(default_factory=list)  # rows of the chunk not in frame

    def __len__(self) -> int:
        """Rows of the file in this chunk, malformed ones included (rows in = loaded + rejected)."""
        return len(self.frame) + len(self.malformed)


# A name that can be a column's: what an error message may quote of a header.
_COLUMN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_ ]{0,62}")


def _header_as_shown(present: list[str], columns: list[str]) -> str:
    """The header's names for an error message (which goes to logs and Dagster), as far as they can
    be column names. A file without a header has a data row there (a customer's name, phone number,
    WeChat id): if the line names none of the contract's columns it is not quoted at all, and a name
    of a real header that cannot be a column's is not either."""
    if not present:
        return "nothing"
    if not set(present) & set(columns):
        return (
            f"{len(present)} field(s), none a column of the {len(columns)} the contract names "
            f"({', '.join(columns[:3])}, ...): a file without a header line, or a header in other words "
            "(translated names?): the header must name the contract's columns as written there (the "
            "line is not quoted: it may be data)"
        )
    shown = [name if _COLUMN_NAME.fullmatch(name) else "(a name not shown)" for name in present[:8]]
    return ", ".join(shown) + (" ..." if len(present) > 8 else "")


def require_columns(file: LandingFile, present: list[str], columns: list[str]) -> None:
    """The file's columns must be exactly the contract's, in any order.

    A missing column: not a file of this table. A column outside the contract (a misspelled
    "Country", a database ``id``) or one named twice: loading the others would silently drop its
    values, so the file is refused as a whole (nothing loaded, the file kept) with the names, as a
    JSONL row with such keys is quarantined. A whole-file error rather than every row quarantined:
    the fix is one edit of the header and a re-drop.
    """
    known = set(columns)
    miscased = [
        name
        for name in dict.fromkeys(present)
        if name not in known and name.lower() in known and name.lower() not in present
    ]
    if miscased:
        # Names are matched exactly (as PostgreSQL's unquoted ones are lower-case): say so, rather
        # than "missing column(s)" of a header that names them all. A name next to its lower-case
        # one ("Country" and "country") is a column outside the contract, told below.
        shown = ", ".join(f"{name} (write {name.lower()})" for name in miscased[:3])
        more = f" and {len(miscased) - 3} more" if len(miscased) > 3 else ""
        raise LandingFileError(
            file, f"column names must be lower-case, as in the contract: {shown}{more}. Nothing was loaded"
        )
    missing = [c for c in columns if c not in present]
    if missing:
        raise LandingFileError(
            file,
            f"not a {file.format} file of {file.table}: missing column(s) {', '.join(missing)} "
            f"(found: {_header_as_shown(present, columns)})",
        )
    named = _without_trailing_empty_names(present)
    unknown = [c or "(unnamed)" for c in dict.fromkeys(named) if c not in known]
    repeated = [c for c, n in Counter(named).items() if n > 1 and c]
    if unknown or repeated or len(named) < len(present):
        problems = []
        if len(named) < len(present):
            problems.append(
                f"{len(present) - len(named)} empty column name(s) at the end of the header "
                "(trailing commas?)"
            )
        if unknown:
            problems.append(f"column(s) outside the {file.table} contract: {', '.join(unknown)}")
        if repeated:
            problems.append(f"column(s) named more than once: {', '.join(repeated)}")
        raise LandingFileError(
            file,
            f"{'; '.join(problems)}. Nothing was loaded, as their values would be lost: "
            f"rename or remove them and drop the file again",
        )


def _without_trailing_empty_names(present: list[str]) -> list[str]:
    """The header's names without the empty ones it ends with: Excel writes a comma for every
    column it once held, making ``a,b,c,,,``."""
    named = list(present)
    while named and not named[-1]:
        named.pop()
    return named


def check_not_empty(file: LandingFile, handle) -> None:
    """A file without a byte is no export (even one of no rows has a CSV header).

    A missing final line break is fine (RFC 4180 allows it); a row cut off in transfer shows
    in that last row itself (see :func:`_csv_blocks`, :func:`_jsonl_record`).
    """
    handle.seek(0, io.SEEK_END)
    if handle.tell() == 0:
        raise LandingFileError(file, "empty file (not even a header)")
    handle.seek(0)


def numbered(frame: pd.DataFrame, first_row: int) -> pd.DataFrame:
    frame.index = pd.RangeIndex(first_row, first_row + len(frame))
    return frame


# The most of a CSV file read for its header: the header is its first line, within this.
_HEADER_READ_BYTES = 1024 * 1024


def first_line(file: LandingFile, handle) -> bytes:
    """The file's first line (up to :data:`_HEADER_READ_BYTES`), refused if the file is UTF-16.

    Cut from a bounded ``read`` rather than ``readline(limit)``: fsspec's remote files (S3, GCS,
    HTTP: ``AbstractBufferedFile``) take no limit there, and a file without a line break must not
    be read whole. Leaves the handle at the start of the file.

    UTF-16 is told first: its CRLF (``\\r\\0\\n\\0``) looks like a line ending in CR only, its
    header like names the contract does not have, its JSONL lines like text that is not UTF-8.
    """
    start = handle.read(_HEADER_READ_BYTES)
    end = start.find(b"\n")
    first_line = start if end < 0 else start[: end + 1]
    handle.seek(0)
    if first_line.startswith(_UTF16_BOMS) or b"\0" in first_line[:2]:
        raise LandingFileError(file, _UTF16_PROBLEM)
    return first_line


def size_in_words(size: int) -> str:
    """A size as people read it: "64 MiB" (bytes below a MiB, as tests use)."""
    return f"{size / 2**20:g} MiB" if size >= 2**20 else f"{size} bytes"
