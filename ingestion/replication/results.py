"""What replicating one table did: the ``TableResult`` each run returns per table (``replicate.py``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class TableResult:
    table: str
    mode: str
    rows_copied: int
    tombstones: int
    live_rows: int
    seconds: float
    window_start: str
    window_end: str
    # Rows inserted, updated or deleted; for a snapshot, content different from the previous one.
    changed: bool
    # Rows left in quarantine after the run: values ClickHouse cannot read (``quarantine.py``).
    quarantined: int = 0

    def as_dict(self) -> dict:
        return asdict(self)
