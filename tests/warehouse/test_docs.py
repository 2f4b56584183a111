"""dbt's documentation site on the built warehouse: every column ClickHouse holds in a mart is
documented, and the catalog is read from the real tables."""

from __future__ import annotations

import json

from orchestration import environment
from orchestration.defs.warehouse import mart_docs
from orchestration.defs.warehouse.build import MARTS, generate_docs


def test_every_mart_column_in_clickhouse_is_documented(warehouse):
    assert warehouse.dbt_exit_code == 0, warehouse.dbt_output[-2000:]
    target = environment.dbt_target_dir()
    output: list[str] = []
    site = generate_docs(log=output.append)
    assert site == target / "docs" / "index.html" and site.is_file(), "\n".join(output[-20:])
    assert not any("Starting full parse" in line for line in output)  # the build's parse was reused
    catalog = json.loads((site.parent / "catalog.json").read_text())["nodes"]
    manifest = json.loads((site.parent / "manifest.json").read_text())["nodes"]
    for mart in MARTS:
        node = f"model.funnelhouse.{mart}"
        assert catalog[node]["metadata"]["schema"] == warehouse.schema("marts")
        in_clickhouse, documented = set(catalog[node]["columns"]), manifest[node]["columns"]
        assert len(in_clickhouse) >= 3 and in_clickhouse == set(documented), mart
        assert manifest[node]["description"].strip(), mart
        assert all(documented[column]["description"].strip() for column in in_clickhouse), mart
    # The build's own results, whose test outcomes the reports' footer cites, are still the build's.
    build_results = json.loads((target / "run_results.json").read_text())
    assert build_results["args"]["which"] == "build"


def test_the_marts_section_of_the_warehouse_doc_is_the_yaml_rendered():
    """docs/warehouse.md copies every mart's grain and columns from the dbt YAML: regenerated, never
    edited apart (run `.venv/bin/python -m orchestration.defs.warehouse.mart_docs`)."""
    document = mart_docs.WAREHOUSE_DOC.read_text()
    assert document == mart_docs.with_marts_section(document, mart_docs.render())
