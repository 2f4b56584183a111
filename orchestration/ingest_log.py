"""A load told as plain log lines: the Dagster run log of the ``crm/*`` assets, and ``funnelhouse
ingest`` when its output is no terminal (cron, CI, ``| tee``, ``docker logs``), where a progress bar
would only be drawn once, at the end.

A line when a file starts, the rows read so far every ``every_seconds`` while it loads (not per
chunk: a log would drown), and its outcome - each line as it happens, so a log cut short (a killed
run) still says how far the load got."""

from __future__ import annotations

import time

from ingestion.load.loader import FileResult
from ingestion.load.pipeline import Observer, unreadable_note

# A multi-GB file loads for minutes: its log says how far it got at most this often.
PROGRESS_EVERY_SECONDS = 15.0


class LogObserver(Observer):
    """The lines of a load, to ``log`` (anything with ``info`` and ``warning``: Dagster's
    ``context.log``, or the command's printer)."""

    def __init__(self, log, every_seconds: float = PROGRESS_EVERY_SECONDS, clock=time.monotonic):
        self.log = log
        self.every_seconds = every_seconds
        self.clock = clock
        self.name, self.rows, self.reported_at = "", 0, 0.0
        self.unreadable: list[str] = []  # files held because they could not be read (unreadable_note)
        # What a load PostgreSQL ends can say: the file whose transaction was open, and the files done.
        self.loading: str | None = None
        self.finished = 0

    def file_unreadable(self, file, error: OSError) -> None:
        note = unreadable_note(file, error)
        self.unreadable.append(note)
        self.log.warning(note)

    def file_started(self, file, index: int, total: int) -> None:
        self.name, self.rows, self.reported_at = file.name, 0, self.clock()
        self.loading = file.url
        size = f", {file.size / 1e6:,.1f} MB" if file.size else ""
        self.log.info(f"{file.name}: loading (file {index + 1} of {total}{size})")

    def rows_read(self, count: int) -> None:
        self.rows += count
        if self.clock() - self.reported_at >= self.every_seconds:
            self.reported_at = self.clock()
            self.log.info(f"{self.name}: {self.rows:,} rows read so far")

    def step_started(self, message: str) -> None:
        self.log.info(message)

    def file_finished(self, result: FileResult) -> None:
        self.loading = None
        self.finished += 1
        self.log.info(
            f"{result.file.name}: {result.status}, {result.rows_in:,} in, {result.rows_loaded:,} loaded, "
            f"{result.rows_rejected:,} rejected, {result.rows_superseded:,} superseded, "
            f"{result.rows_changed:,} changed ({result.seconds:.1f}s)"
            + (f" - {result.error}" if result.error else "")
        )
