"""Elasticsearch from the ``integ-test-zip`` distribution on Maven Central.

That zip is a real server (core, HTTP transport, x-pack core/security) without a bundled JDK and
without analysis-common, so no ``cjk`` analyzer: the indexer detects that and uses ``standard``.
9.2.0 is the default (9.x needs Java 21+; the JDK is chosen by version, see ``java.py``); set
``FUNNELHOUSE_ES_VERSION`` to use another one, e.g. 8.19.21 where only Java 17 is present.

Elasticsearch refuses to run as root. When we are root it runs in a user namespace where it has an
ordinary uid (``unshare --map-user``): the files it writes still belong to us outside, and no
system user or chown is needed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from devstack.search import artifacts, java

NAME = "elasticsearch"
DEFAULT_VERSION = "9.2.0"
_COORDINATES = "org.elasticsearch.distribution.integ-test-zip:elasticsearch:{version}:zip"
_NAMESPACE_UID = "1000"


def version() -> str:
    return os.environ.get("FUNNELHOUSE_ES_VERSION", DEFAULT_VERSION)


def _java_range(engine_version: str) -> tuple[int, int | None]:
    return (21, None) if int(engine_version.split(".")[0]) >= 9 else (17, None)


def jdk() -> java.Jdk:
    """The JDK this version runs on; raises ``java.NoSuitableJdk`` (checked before any download)."""
    minimum, maximum = _java_range(version())
    return java.choose("Elasticsearch " + version(), minimum, maximum)


def prepare() -> Path:
    """The unpacked distribution in the cache, fetched on first use."""
    engine_version = version()
    install = artifacts.cache_dir() / f"elasticsearch-{engine_version}"
    with artifacts.locked(f"elasticsearch-{engine_version}"):
        if (install / "lib").is_dir():
            return install
        downloads = artifacts.cache_dir() / "downloads"
        downloads.mkdir(exist_ok=True)
        archive = downloads / f"elasticsearch-{engine_version}.zip"
        if not archive.exists():
            artifacts.mvn(
                "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy",
                f"-Dartifact={_COORDINATES.format(version=engine_version)}",
                f"-DoutputDirectory={downloads}",
            )
        staging = artifacts.cache_dir() / f".elasticsearch-{engine_version}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        artifacts.unzip_keeping_modes(archive, staging)
        (staging / f"elasticsearch-{engine_version}").rename(install)
        shutil.rmtree(staging, ignore_errors=True)
    return install


def command(
    install: Path, instance: Path, http_port: int, transport_port: int, heap: str
) -> tuple[list[str], dict[str, str]]:
    """argv and environment for one node whose config, data and logs live under ``instance``."""
    java_home = jdk().home
    config = instance / "config"
    if not config.exists():
        shutil.copytree(install / "config", config)
    for sub in ("data", "logs", "tmp"):
        (instance / sub).mkdir(parents=True, exist_ok=True)
    (config / "elasticsearch.yml").write_text(
        "\n".join(
            [
                "cluster.name: funnelhouse",
                "node.name: funnelhouse-1",
                f"path.data: {instance / 'data'}",
                f"path.logs: {instance / 'logs'}",
                "network.host: 127.0.0.1",
                f"http.port: {http_port}",
                f"transport.port: {transport_port}",
                "discovery.type: single-node",
                # a local development node: no TLS or users, loopback only
                "xpack.security.enabled: false",
                "cluster.routing.allocation.disk.threshold_enabled: false",
                "action.destructive_requires_name: true",
            ]
        )
        + "\n"
    )
    env = {
        **os.environ,
        "ES_PATH_CONF": str(config),
        "ES_JAVA_HOME": str(java_home),
        "ES_JAVA_OPTS": f"-Xms{heap} -Xmx{heap}",
        "ES_TMPDIR": str(instance / "tmp"),
    }
    env.pop("JAVA_HOME", None)
    argv = [str(install / "bin" / "elasticsearch")]
    if os.geteuid() == 0:
        unshare = shutil.which("unshare")
        if unshare is None:
            raise artifacts.MissingTool(
                "Elasticsearch refuses to run as root and `unshare` (util-linux) is missing to give it "
                "an ordinary uid: install util-linux, run as a normal user, or use --search opensearch."
            )
        argv = [unshare, "--user", f"--map-user={_NAMESPACE_UID}", f"--map-group={_NAMESPACE_UID}", *argv]
    return argv, env
