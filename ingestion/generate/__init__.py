"""Synthetic funnel data: deterministic landing files for every seed table.

``generate(out_dir, customers, seed, days=..., bad_rows=0.0, progress=None) -> Manifest`` writes
``<table>__<batch>.<csv|jsonl|parquet>`` files following ``ingestion.contracts`` plus
``_manifest.json`` (rows and bad rows per file). See run.py for the flow, bad_rows.py for the
malformed-row policy and writers.py for the file conventions.
"""

from ingestion.generate.config import DEFAULT_DAYS, DEFAULT_END_DATE, GenerateConfig
from ingestion.generate.manifest import MANIFEST_NAME, BadRow, FileEntry, Manifest
from ingestion.generate.run import generate

__all__ = [
    "DEFAULT_DAYS",
    "DEFAULT_END_DATE",
    "MANIFEST_NAME",
    "BadRow",
    "FileEntry",
    "GenerateConfig",
    "Manifest",
    "generate",
]
