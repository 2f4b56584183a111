from __future__ import annotations

import datetime as dt

from ingestion.search.client import SearchClient

NO_LAG = dt.timedelta(0)


def indexed_sources(client: SearchClient, alias: str) -> dict[int, dict]:
    client.refresh(alias)
    response = client.search(alias, {"query": {"match_all": {}}, "size": 10_000})
    return {hit["_source"]["id"]: hit["_source"] for hit in response["hits"]["hits"]}
