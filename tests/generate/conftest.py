"""Small generated data sets shared by the generator tests (a few seconds each)."""

from __future__ import annotations

import pytest

from ingestion.generate import generate
from tests.generate import landing

CUSTOMERS = 300
SEED = 20261127
BAD_FRACTION = 0.05
# Small blocks and parts so a small run still crosses block and file boundaries.
TUNING = {"block_size": 64, "rows_per_part": 250, "row_group_rows": 1000}


@pytest.fixture(scope="session")
def clean_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("clean")
    generate(out, CUSTOMERS, SEED, **TUNING)
    return out


@pytest.fixture(scope="session")
def clean(clean_dir) -> landing.Dataset:
    return landing.load(clean_dir)


@pytest.fixture(scope="session")
def dirty_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("dirty")
    generate(out, CUSTOMERS, SEED, bad_rows=BAD_FRACTION, **TUNING)
    return out


@pytest.fixture(scope="session")
def dirty(dirty_dir) -> landing.Dataset:
    return landing.load(dirty_dir)
