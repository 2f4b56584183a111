"""How the warehouse benchmark (warehouse.py) times what it measures: wall-clock seconds of one action."""

from __future__ import annotations

import time


def seconds(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started
