"""Plain output lines for the callbacks the commands hand to code that logs from several threads.

A build replicates tables in parallel and each worker logs its table's line: ``print`` writes the
text and its newline separately, so two threads' lines could run together on one line, followed by
an empty one."""

from __future__ import annotations

import sys
import threading

_writing = threading.Lock()


def print_line(line: str) -> None:
    """``print`` for a ``log`` callback: the line and its newline in one write, under a lock, flushed
    (a pipe, as in ``make demo | tee``, shows each line as it comes)."""
    with _writing:
        sys.stdout.write(f"{line}\n")
        sys.stdout.flush()
