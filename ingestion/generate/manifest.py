"""``_manifest.json``: what a generation run wrote, and the ground truth about its bad rows.

Ingestion tests read it to know, per file, which data rows (1-based, header excluded) are
malformed and how. Its name does not match ``<table>__<batch>.<ext>``, so loaders skip it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

MANIFEST_NAME = "_manifest.json"


@dataclass
class BadRow:
    row: int  # 1-based data row: CSV line after the header, JSONL line, Parquet row index + 1
    kind: str
    column: str


@dataclass
class FileEntry:
    file: str
    table: str
    batch: str
    format: str
    rows: int
    bad_rows: list[BadRow] = field(default_factory=list)
    sha256: str = ""


@dataclass
class Manifest:
    seed: int
    customers: int
    days: int
    end_date: str
    bad_rows_fraction: float
    files: list[FileEntry] = field(default_factory=list)
    bad_row_policy: str = "inserted: fresh natural key, one defect, never referenced by good rows"

    def table_rows(self, table: str) -> int:
        return sum(f.rows for f in self.files if f.table == table)

    def files_of(self, table: str) -> list[FileEntry]:
        return [f for f in self.files if f.table == table]

    def to_json(self) -> str:
        body = asdict(self)
        body["files"] = sorted(body["files"], key=lambda f: f["file"])
        body["tables"] = {
            table: {
                "files": len(self.files_of(table)),
                "rows": self.table_rows(table),
                "bad_rows": sum(len(f.bad_rows) for f in self.files_of(table)),
            }
            for table in sorted({f.table for f in self.files})
        }
        return json.dumps(body, ensure_ascii=False, indent=1, sort_keys=False) + "\n"

    def write(self, out_dir: Path) -> Path:
        path = out_dir / MANIFEST_NAME
        path.write_text(self.to_json(), encoding="utf-8")
        return path

    @classmethod
    def read(cls, out_dir: Path) -> Manifest:
        body = json.loads((Path(out_dir) / MANIFEST_NAME).read_text(encoding="utf-8"))
        body.pop("tables", None)
        files = [
            FileEntry(**{**f, "bad_rows": [BadRow(**b) for b in f["bad_rows"]]}) for f in body.pop("files")
        ]
        return cls(**body, files=files)
