"""The dbt exposures name what their consumers really read: a report or a BI user reading another mart
would otherwise be missing from dbt's lineage (and from `dbt ls --select +exposure:...`)."""

from __future__ import annotations

import inspect
import json
import re

import pytest

from ingestion.reports import data
from orchestration.defs.warehouse.build import MARTS
from orchestration.defs.warehouse.dbt_environment import MANIFEST


@pytest.fixture(scope="module")
def exposures() -> dict[str, set[str]]:
    if not MANIFEST.exists():
        pytest.skip("no dbt manifest (run `make manifest` or `funnelhouse build`)")
    manifest = json.loads(MANIFEST.read_text())
    return {
        exposure["name"]: {node.split(".")[-1] for node in exposure["depends_on"]["nodes"]}
        for exposure in manifest["exposures"].values()
    }


def test_the_reports_exposure_is_what_the_reports_read(exposures):
    """Every query of the reports' reader names its table through ``self._table(<constant>)``."""
    source = inspect.getsource(data)
    assert "FROM {self._table(" in source
    assert len(re.findall(r"FROM \{(?!self\._table\()", source)) == 0  # no table read another way
    read = {getattr(data, name) for name in re.findall(r"self\._table\((\w+)\)", source)}
    assert exposures["kpi_reports"] == read


def test_the_bi_exposure_is_every_mart(exposures):
    """The read-only user reads every mart, so every mart has that consumer."""
    assert exposures["bi_dashboards"] == set(MARTS)
