"""The dbt exposures name what their consumers really read: a report or a BI user reading another mart
would otherwise be missing from dbt's lineage (and from `dbt ls --select +exposure:...`)."""

from __future__ import annotations

import json

import pytest

from ingestion.reports.data import MARTS_READ
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
    assert exposures["kpi_reports"] == set(MARTS_READ)


def test_the_bi_exposure_is_every_mart(exposures):
    """The read-only user reads every mart, so every mart has that consumer."""
    assert exposures["bi_dashboards"] == set(MARTS)
