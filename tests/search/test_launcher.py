import os
import subprocess
import sys
from pathlib import Path

import pytest

from devstack import state
from devstack.search import java, launcher


def test_engine_is_recorded_and_start_is_idempotent(search_engine):
    home = Path(search_engine["state_home"])
    recorded = launcher.status(home)
    assert recorded["pid"] == search_engine["pid"]
    assert recorded["flavour"] == search_engine["flavour"]
    again = launcher.start(home, search_engine["flavour"])
    assert again["pid"] == search_engine["pid"] and again["url"] == search_engine["url"]
    other = "opensearch" if search_engine["flavour"] == "elasticsearch" else "elasticsearch"
    with pytest.raises(RuntimeError, match="already runs"):
        launcher.start(home, other)


def test_missing_jvm_is_named(monkeypatch, tmp_path):
    monkeypatch.setattr(java, "JVM_ROOTS", (tmp_path,))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.delenv("FUNNELHOUSE_SEARCH_JAVA_HOME", raising=False)
    with pytest.raises(
        java.NoSuitableJdk, match=r"OpenSearch 2\.19\.6 needs Java 17 to 21; found no JDK at all"
    ):
        java.choose("OpenSearch 2.19.6", 17, 21)


def test_embedded_engine_runs_the_version_the_launcher_names(search_engine, search_client):
    """The default Elasticsearch is a 9.x server, spoken to natively by the pinned 9.x client."""
    from devstack.search import elasticsearch, opensearch

    expected = elasticsearch.version() if search_engine["flavour"] == "elasticsearch" else opensearch.VERSION
    assert search_client.version == expected
    if search_engine["flavour"] == "elasticsearch" and "FUNNELHOUSE_ES_VERSION" not in os.environ:
        assert search_client.version.startswith("9.")
        assert search_client.raw.transport.server_major == 9


def test_no_jdk_is_reported_before_the_engine_is_fetched(monkeypatch, tmp_path):
    monkeypatch.setattr(java, "JVM_ROOTS", (tmp_path,))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.delenv("FUNNELHOUSE_SEARCH_JAVA_HOME", raising=False)
    for flavour, engine in launcher.FLAVOURS.items():
        monkeypatch.setattr(engine, "prepare", lambda: pytest.fail("fetched before the JDK was checked"))
        with pytest.raises(java.NoSuitableJdk, match="found no JDK at all"):
            launcher.start(tmp_path / "home", flavour)
    assert launcher.status(tmp_path / "home") is None
    assert issubclass(java.NoSuitableJdk, launcher.START_ERRORS)


def test_a_recorded_engine_that_runs_but_never_answers_is_not_started_twice(monkeypatch, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    hung = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        state.record_service(
            launcher.SERVICE,
            {
                "flavour": "elasticsearch",
                "url": "http://127.0.0.1:9",
                "pid": hung.pid,
                "log": str(tmp_path / "log"),
            },
            home,
        )
        monkeypatch.setattr(launcher, "START_TIMEOUT_S", 0.5)
        monkeypatch.setattr(
            launcher.elasticsearch, "prepare", lambda: pytest.fail("a second engine was started")
        )
        with pytest.raises(launcher.EngineDidNotStart, match="not healthy"):
            launcher.start(home, "elasticsearch")
    finally:
        hung.kill()
        hung.wait()
