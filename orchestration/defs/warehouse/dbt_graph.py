"""Walking dbt's model graph (the manifest's ``child_map`` and ``parent_map``): the models
downstream or upstream of others, for the incremental plan (dbt_plan.py) and the build date
(build_date.py) alike."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

SOURCE = "crm"


def models_downstream_of(
    manifest: Mapping[str, Any], tables: Iterable[str], models: Iterable[str] = ()
) -> set[str]:
    """Names of the models that read (directly or not) any of the crm source ``tables``, and of the
    ``models`` (every version of a versioned one; a seed among them only counts by the models reading
    it) with every model reading them."""
    project = manifest["metadata"]["project_name"]
    children = manifest["child_map"]
    names = set(models)
    starting = {
        unique_id
        for unique_id, node in manifest["nodes"].items()
        if node["resource_type"] in ("model", "seed") and node["name"] in names
    }
    sources = [f"source.{project}.{SOURCE}.{table}" for table in tables]
    reached = _models_reached(children, [*sources, *sorted(starting)])
    reached |= {unique_id for unique_id in starting if unique_id.startswith("model.")}
    return {manifest["nodes"][unique_id]["name"] for unique_id in reached}


def _models_reached(edges: Mapping[str, list[str]], starting: Iterable[str]) -> set[str]:
    """The models reached from ``starting`` (node ids) along ``edges`` (dbt's child_map or
    parent_map), directly or not, through models only; ``starting`` itself not included."""
    pending, reached = list(starting), set()
    while pending:
        for node in edges.get(pending.pop(), ()):
            if node.startswith("model.") and node not in reached:
                reached.add(node)
                pending.append(node)
    return reached


def models_upstream_of(manifest: Mapping[str, Any], models: Iterable[str]) -> set[str]:
    """Names of the models that the ``models`` (every version of a versioned one) read, directly or not."""
    names = set(models)
    starting = [
        unique_id
        for unique_id, node in manifest["nodes"].items()
        if node["resource_type"] == "model" and node["name"] in names
    ]
    reached = _models_reached(manifest["parent_map"], starting)
    return {manifest["nodes"][unique_id]["name"] for unique_id in reached}
