"""The "Marts" section of docs/warehouse.md, rendered from the marts' dbt YAML (their one source).

Every mart's grain and columns are documented once, in
``dbt_project/models/marts/reporting/_reporting__models.yml``; the Markdown copy is for readers
without a dbt docs site and is regenerated, never edited by hand::

    .venv/bin/python -m orchestration.defs.warehouse.mart_docs   # rewrites docs/warehouse.md

``tests/warehouse/test_docs.py`` fails when the two disagree.
"""

from __future__ import annotations

from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[3]
MARTS_YML = REPO_ROOT / "dbt_project" / "models" / "marts" / "reporting" / "_reporting__models.yml"
WAREHOUSE_DOC = REPO_ROOT / "docs" / "warehouse.md"
HEADING = "## Marts"
INTRO = (
    "Every mart: one table in schema `marts`, contract-enforced types, every column documented in\n"
    "`dbt_project/models/marts/reporting/_reporting__models.yml` (the list below is generated from it:\n"
    "`.venv/bin/python -m orchestration.defs.warehouse.mart_docs`)."
)


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split()).replace("|", "\\|")


def render(marts_yml: Path = MARTS_YML) -> str:
    """The section, from its heading to the end of the document."""
    parts = [HEADING, "", INTRO]
    for model in yaml.safe_load(marts_yml.read_text())["models"]:
        parts += ["", f"### `{model['name']}`", "", _one_line(model.get("description")), ""]
        parts += ["| column | type | meaning |", "|---|---|---|"]
        parts += [
            f"| `{column['name']}` | `{column.get('data_type', '')}` | {_one_line(column.get('description'))} |"
            for column in model.get("columns", [])
        ]
    return "\n".join(parts) + "\n"


def with_marts_section(document: str, section: str) -> str:
    """``document`` with everything from the Marts heading on replaced by ``section``."""
    start = document.index(f"\n{HEADING}\n") + 1
    return document[:start] + section


def main() -> None:
    document = WAREHOUSE_DOC.read_text()
    WAREHOUSE_DOC.write_text(with_marts_section(document, render()))
    print(f"{WAREHOUSE_DOC}: Marts section regenerated from {MARTS_YML.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
