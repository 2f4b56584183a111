"""OpenSearch 2.19 assembled from Maven Central jars, run by a small Java launcher (opensearch-launcher/).

There is no downloadable distribution here, but ``org.opensearch:opensearch`` and the modules we need
(netty4 HTTP transport, analysis-common for ``cjk``) are on Maven Central. The launcher is compiled
into the artifact cache with its dependencies beside it (never shaded: a fat jar merges Lucene's
codec service files). OpenSearch 2.x runs on Java 17-21.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from devstack.search import artifacts, java

NAME = "opensearch"
VERSION = "2.19.6"
LAUNCHER_SOURCE = Path(__file__).parent / "opensearch-launcher"
MAIN_CLASS = "dev.funnelhouse.search.OpenSearchLauncher"


def jdk() -> java.Jdk:
    """The JDK OpenSearch runs on; raises ``java.NoSuitableJdk`` (checked before any download)."""
    # 2.19 is built for 17 and tested up to 21; the oldest fitting JDK is the safest.
    return java.choose(f"OpenSearch {VERSION}", 17, 21, prefer_newest=False)


def _fingerprint() -> str:
    """Rebuild the launcher when its sources change (the cache outlives checkouts)."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(LAUNCHER_SOURCE.rglob("*")):
        if path.is_file() and "target" not in path.parts:
            digest.update(path.relative_to(LAUNCHER_SOURCE).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def prepare() -> Path:
    """The compiled launcher and its jars in the cache, built on first use."""
    fingerprint = _fingerprint()
    build = artifacts.cache_dir() / f"opensearch-launcher-{VERSION}-{fingerprint}"
    with artifacts.locked(f"opensearch-launcher-{VERSION}"):
        if (build / "ready").exists():
            return build
        shutil.rmtree(build, ignore_errors=True)
        artifacts.mvn(
            f"-Dlauncher.build.directory={build}",
            "compile",
            "dependency:copy-dependencies",
            cwd=LAUNCHER_SOURCE,
            java_home=jdk().home,
        )
        (build / "ready").write_text(VERSION)
    return build


def command(
    build: Path, instance: Path, http_port: int, transport_port: int, heap: str
) -> tuple[list[str], dict[str, str]]:
    runtime = jdk()
    home = instance / "home"
    (home / "config").mkdir(parents=True, exist_ok=True)
    (home / "plugins").mkdir(exist_ok=True)
    for sub in ("data", "logs", "tmp"):
        (instance / sub).mkdir(parents=True, exist_ok=True)
    settings = {
        "path.home": home,
        "path.data": instance / "data",
        "path.logs": instance / "logs",
        "cluster.name": "funnelhouse",
        "node.name": "funnelhouse-1",
        "network.host": "127.0.0.1",
        "http.port": http_port,
        "transport.port": transport_port,
        "discovery.type": "single-node",
        "cluster.routing.allocation.disk.threshold_enabled": "false",
        "action.destructive_requires_name": "true",
    }
    argv = [
        str(runtime.java),
        f"-Xms{heap}",
        f"-Xmx{heap}",
        "-XX:+UseG1GC",
        f"-Djava.io.tmpdir={instance / 'tmp'}",
        "-Dfile.encoding=UTF-8",
        "-Dlog4j2.formatMsgNoLookups=true",
        "-Dio.netty.noUnsafe=true",
        "-cp",
        f"{build / 'classes'}:{build / 'dependency'}/*",
        MAIN_CLASS,
        *(f"{key}={value}" for key, value in settings.items()),
    ]
    return argv, dict(os.environ)
