"""Fixtures of the ingestion tests: a landing folder and a one-call ingest against the test database."""

from __future__ import annotations

import psycopg
import pytest

from ingestion.load.pipeline import ingest_locations


@pytest.fixture
def landing(tmp_path, monkeypatch):
    folder = tmp_path / "landing"
    folder.mkdir()
    monkeypatch.setenv("FUNNELHOUSE_LANDING", str(folder))
    return folder


@pytest.fixture
def run_ingest(pg_dsn):
    """``run_ingest(paths...) -> {file name: FileResult}`` (explicit paths: every file attempted)."""

    def run(*paths, **options):
        return {r.file.name: r for r in ingest_locations(pg_dsn, [str(p) for p in paths], **options)}

    return run


@pytest.fixture
def sql(pg_dsn):
    """``sql(query, *params) -> rows``, autocommit, on the test database."""

    def query(text, *params):
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            cursor = conn.execute(text, params or None)
            return cursor.fetchall() if cursor.description else []

    return query
