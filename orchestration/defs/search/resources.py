"""The search resource: where the engine and PostgreSQL are, read from ``orchestration.environment``
when a run or sensor tick asks, never when Dagster imports the code location."""

import datetime as dt

import dagster as dg

from ingestion.search import mapping
from ingestion.search.client import SearchClient
from orchestration import environment


class SearchResource(dg.ConfigurableResource):
    alias: str = mapping.DEFAULT_ALIAS
    # Held back beyond the sync's read bound (the oldest open writing transaction): none is needed.
    lag_seconds: float = 0.0
    batch_size: int = 1000
    replicas: int = 0

    @property
    def lag(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.lag_seconds)

    def pg_dsn(self) -> str:
        return environment.pg_dsn()

    def client(self, timeout: float = 60.0) -> SearchClient:
        """A client whose requests give up after ``timeout`` seconds (a sensor tick asks for less)."""
        return SearchClient.connect(environment.search_settings(), timeout=timeout)
