"""Finding a JDK that a search engine accepts.

Elasticsearch and OpenSearch each support a window of Java versions, and a machine often has
several JDKs side by side (here: the default 17 and a Temurin 25). Each ``release`` file states
its version, so we pick by that instead of trusting whatever ``java`` is first on PATH.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

JVM_ROOTS = (Path("/usr/lib/jvm"), Path("/opt/java"), Path("/usr/local/lib/jvm"))


@dataclass(frozen=True)
class Jdk:
    home: Path
    major: int

    @property
    def java(self) -> Path:
        return self.home / "bin" / "java"


def _major(home: Path) -> int | None:
    release = home / "release"
    if not release.is_file() or not (home / "bin" / "java").exists():
        return None
    match = re.search(r'^JAVA_VERSION="(\d+)', release.read_text(errors="replace"), re.MULTILINE)
    return int(match.group(1)) if match else None


def installed() -> list[Jdk]:
    """Every JDK found: ``$FUNNELHOUSE_SEARCH_JAVA_HOME``, ``$JAVA_HOME``, then the usual roots."""
    candidates = [
        Path(p) for p in (os.environ.get("FUNNELHOUSE_SEARCH_JAVA_HOME"), os.environ.get("JAVA_HOME")) if p
    ]
    for root in JVM_ROOTS:
        if root.is_dir():
            candidates.extend(sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()))
    found, seen = [], set()
    for home in candidates:
        major = _major(home)
        if major is not None and home.resolve() not in seen:
            seen.add(home.resolve())
            found.append(Jdk(home, major))
    return found


class NoSuitableJdk(RuntimeError):
    pass


def choose(engine: str, minimum: int, maximum: int | None = None, prefer_newest: bool = True) -> Jdk:
    """A JDK with ``minimum <= major <= maximum``; an explicit FUNNELHOUSE_SEARCH_JAVA_HOME wins if it fits."""
    jdks = installed()
    fitting = [j for j in jdks if j.major >= minimum and (maximum is None or j.major <= maximum)]
    if not fitting:
        have = ", ".join(f"{j.home} (Java {j.major})" for j in jdks) or "no JDK at all"
        wanted = f"Java {minimum}" + (f" to {maximum}" if maximum else "+")
        raise NoSuitableJdk(
            f"{engine} needs {wanted}; found {have}. Install one (e.g. `apt-get install openjdk-{minimum}-jdk-headless`) "
            "or set FUNNELHOUSE_SEARCH_JAVA_HOME to its home, or point FUNNELHOUSE_SEARCH_URL at a running cluster."
        )
    explicit = os.environ.get("FUNNELHOUSE_SEARCH_JAVA_HOME")
    for jdk in fitting:
        if explicit and jdk.home == Path(explicit):
            return jdk
    return sorted(fitting, key=lambda j: j.major, reverse=prefer_newest)[0]
