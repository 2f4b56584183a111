"""Addresses and credentials as production gives them in the environment."""

from __future__ import annotations

from orchestration import environment


def test_clickhouse_credentials_in_the_url_are_percent_decoded(monkeypatch):
    """A password holding '@' or '/' must be percent-encoded in a URL; the client needs it decoded."""
    monkeypatch.setenv(
        "FUNNELHOUSE_CLICKHOUSE_URL", "https://an%40analyst:p%2Fw%40rd@clickhouse.example:8443"
    )
    monkeypatch.delenv("FUNNELHOUSE_CLICKHOUSE_USER", raising=False)
    monkeypatch.delenv("FUNNELHOUSE_CLICKHOUSE_PASSWORD", raising=False)
    settings = environment.clickhouse_settings()
    assert (settings.username, settings.password) == ("an@analyst", "p/w@rd")
    assert (settings.host, settings.port, settings.secure) == ("clickhouse.example", 8443, True)
