"""Asset keys and groups of dbt nodes: sources become the replication assets, models group by folder."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings

from orchestration.defs.warehouse.replication_assets import raw_asset_key


def model_asset_key(name: str) -> dg.AssetKey:
    """A dbt model's asset key. Model names are unique; the schema is left out of the key because
    tests prefix schemas."""
    return dg.AssetKey([name])


class WarehouseTranslator(DagsterDbtTranslator):
    def __init__(self):
        # dbt tests of models and of sources (the raw tables) both become asset checks.
        super().__init__(
            settings=DagsterDbtTranslatorSettings(
                enable_asset_checks=True, enable_source_tests_as_checks=True
            )
        )

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            # source('crm', t) is the ClickHouse table the replication asset of t writes.
            return raw_asset_key(dbt_resource_props["name"])
        return model_asset_key(dbt_resource_props["name"])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        # fqn: [project, folder, ...]; marts are split into core and reporting.
        folders = dbt_resource_props.get("fqn", [])[1:-1]
        if not folders:
            return super().get_group_name(dbt_resource_props)
        return "_".join(folders[:2]) if folders[0] == "marts" else folders[0]
