"""The dbt exposures name what their consumers really read: a report or a BI user reading another mart
would otherwise be missing from dbt's lineage (and from `dbt ls --select +exposure:...`). The report
assets depend on the same marts in Dagster: a report run before a mart it reads was refreshed would
mail stale numbers."""

from __future__ import annotations

import inspect
import json
import re

import pytest

from ingestion.reports import data
from orchestration.defs.reports.assets import daily_kpi_reports, weekly_kpi_reports
from orchestration.defs.warehouse.build import MARTS
from orchestration.defs.warehouse.dbt_environment import MANIFEST
from orchestration.defs.warehouse.translator import WarehouseTranslator


@pytest.fixture(scope="module")
def exposures() -> dict[str, set[str]]:
    if not MANIFEST.exists():
        pytest.skip("no dbt manifest (run `make manifest` or `funnelhouse build`)")
    manifest = json.loads(MANIFEST.read_text())
    return {
        exposure["name"]: {node.split(".")[-1] for node in exposure["depends_on"]["nodes"]}
        for exposure in manifest["exposures"].values()
    }


def tables_the_reports_read() -> set[str]:
    """The marts the queries of the reports' reader name: each through ``self._table(<constant>)``."""
    source = inspect.getsource(data)
    assert "FROM {self._table(" in source
    assert len(re.findall(r"FROM \{(?!self\._table\()", source)) == 0  # no table read another way
    return {getattr(data, name) for name in re.findall(r"self\._table\((\w+)\)", source)}


def test_the_reports_exposure_is_what_the_reports_read(exposures):
    assert exposures["kpi_reports"] == tables_the_reports_read()


def test_the_report_assets_depend_on_what_the_reports_read():
    """Dagster runs a report after the marts it reads: each report asset's upstream assets are the dbt
    models of those marts (MART_TABLES, which the reader's _table accepts alone), and nothing else."""
    read = tables_the_reports_read()
    assert set(data.MART_TABLES) == read
    translator = WarehouseTranslator()
    marts = {translator.get_asset_key({"resource_type": "model", "name": table}) for table in read}
    for report in (daily_kpi_reports, weekly_kpi_reports):
        assert set(report.asset_deps[report.key]) == marts, report.key


def test_the_reader_names_only_mart_tables():
    """A query naming a mart left out of MART_TABLES fails instead of reading it behind Dagster's back."""
    reader = data.MartReader(client=None, database="marts")
    assert reader._table(data.KPI_DAILY_TABLE) == "`marts`.`mart_kpi_employee_daily`"
    with pytest.raises(ValueError, match="mart_funnel_daily"):
        reader._table("mart_funnel_daily")


def test_the_bi_exposure_is_every_mart(exposures):
    """The read-only user reads every mart, so every mart has that consumer."""
    assert exposures["bi_dashboards"] == set(MARTS)
