"""Conversation search: PostgreSQL is the source of truth, the search index a rebuildable copy.

Plain Python (no Dagster): ``client`` (one adapter over the elasticsearch and opensearch-py clients),
``mapping``, ``redaction``, ``documents`` (the PostgreSQL side), ``sync`` (incremental, keyset
cursor), ``rebuild`` (versioned index + atomic alias swap) and ``query`` (what `funnelhouse search` runs).
"""
