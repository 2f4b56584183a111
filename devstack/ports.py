"""Starting a local server on ports found free, and again on the next free ones when one was taken.

A port found free (``state.free_port``) may be taken by another stack starting at the same moment
(two test sessions, `make demo` beside `make test`) before our server binds it; the server then logs
``Address already in use`` and exits. PostgreSQL and the search engine both start through
``start_on_free_ports``, which tells that race (start again, on ports chosen afresh) from any other
failure (fail at once, with the lines the server logged about it).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

PORT_TAKEN = "Address already in use"
ATTEMPTS = 5
_LOGGED_LINES = 20
# Java stack frames ("\tat org...", "\t... 12 more") say where a server failed, not why; dropping them
# keeps the exception lines ("BindTransportException: Failed to bind to ...") in the excerpt.
_STACK_FRAME = re.compile(r"^\s+(at |\.\.\. \d+ more)")

Started = TypeVar("Started")


def start_on_free_ports(
    start: Callable[[], Started],
    log_file: Path,
    *,
    server: str,
    retry: bool = True,
    failure: type[Exception] = RuntimeError,
) -> Started:
    """Call ``start`` (which chooses its ports, starts ``server`` logging to ``log_file`` and raises
    ``failure`` if it does not come up) until it succeeds; again only while the server logged that a
    port was taken and ``retry`` (no port was fixed by the caller), at most ``ATTEMPTS`` times. Raises
    ``failure`` carrying what the server logged during the last attempt."""
    logged = ""
    for _ in range(ATTEMPTS):
        logged_before = log_file.stat().st_size if log_file.exists() else 0
        try:
            return start()
        except failure as error:
            logged = logged_since(log_file, logged_before)
            if not retry or PORT_TAKEN not in logged:
                raise failure(f"{error}\n{log_file}:\n{logged}") from None
    raise failure(f"{server} found no free port in {ATTEMPTS} attempts ({log_file}):\n{logged}")


def logged_since(log_file: Path, offset: int) -> str:
    """What the server wrote to ``log_file`` after its first ``offset`` bytes: its last lines, Java stack
    frames left out."""
    try:
        with open(log_file, "rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
    except OSError:
        return ""
    lines = [line for line in text.splitlines() if not _STACK_FRAME.match(line)]
    return "\n".join(lines[-_LOGGED_LINES:])
