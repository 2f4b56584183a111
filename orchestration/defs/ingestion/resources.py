"""Resources of the ingestion assets: where PostgreSQL is and where the landing zone is.

Both resolve their address when a run or a sensor tick asks (``orchestration.environment`` and
``FUNNELHOUSE_LANDING``), never at import: the code location loads without a database, and the
same definitions serve local, CI and prod.
"""

from __future__ import annotations

import dagster as dg

from ingestion.load.landing import default_landing_url
from orchestration import environment


class PostgresResource(dg.ConfigurableResource):
    """The operational PostgreSQL; empty ``dsn`` means the environment's (``environment.pg_dsn()``)."""

    dsn: str = ""

    def resolved_dsn(self) -> str:
        return self.dsn or environment.pg_dsn()


class LandingZone(dg.ConfigurableResource):
    """A folder or fsspec URL of landing files; empty ``url``: ``$FUNNELHOUSE_LANDING`` or the state dir."""

    url: str = ""

    def resolved_url(self) -> str:
        return self.url or default_landing_url()


def ingestion_resources() -> dict:
    """The resources the ingestion assets run with, each resolving its address at run time."""
    return {"postgres": PostgresResource(), "landing_zone": LandingZone()}
