"""The artifact cache: engine distributions and jars fetched from Maven Central once, outside the repo.

``$FUNNELHOUSE_CACHE`` (default ``~/.cache/funnelhouse``) is shared by every state home on the machine,
so a second stack or a test session starts without downloading. Preparation runs under a file lock
because two test sessions (or `funnelhouse up` and pytest) may prepare the same engine at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path


def cache_dir() -> Path:
    path = Path(os.environ.get("FUNNELHOUSE_CACHE", "~/.cache/funnelhouse")).expanduser() / "search"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def locked(name: str) -> Iterator[None]:
    with open(cache_dir() / f"{name}.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class MissingTool(RuntimeError):
    pass


class FetchFailed(RuntimeError):
    """Maven ran but could not fetch or build an engine; the first line of the message says why."""


def mvn(*args: str, cwd: Path | None = None, java_home: Path | None = None) -> None:
    """Run Maven in batch mode; the error names what is missing instead of a bare traceback.

    A failure's first line is Maven's own first ``[ERROR]`` and where its full output was kept."""
    executable = shutil.which("mvn")
    if executable is None:
        raise MissingTool(
            "Maven (`mvn`) is needed once to fetch the search engine from Maven Central: "
            "`apt-get install maven`, or point FUNNELHOUSE_SEARCH_URL at a running cluster."
        )
    env = dict(os.environ)
    if java_home is not None:
        env["JAVA_HOME"] = str(java_home)
    result = subprocess.run(
        [executable, "-B", "-q", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        output = result.stdout + result.stderr
        log = cache_dir() / "mvn-failed.log"
        log.write_text(f"$ mvn -B -q {' '.join(args)}\n{output}")
        lines = [line.strip() for line in output.splitlines() if line.strip()]
        errors = [line.removeprefix("[ERROR]").strip() for line in lines if line.startswith("[ERROR]")]
        reason = next((line for line in [*errors, *lines] if line), f"exit status {result.returncode}")[:300]
        raise FetchFailed(
            f"Maven failed to fetch (or build) the search engine from Maven Central: {reason} (full output: {log}; "
            "a proxy goes in ~/.m2/settings.xml)\n" + output[-4000:]
        )


def unzip_keeping_modes(archive: Path, target: Path) -> None:
    """``zipfile`` drops Unix permissions; the engines' bin/ scripts must stay executable."""
    with zipfile.ZipFile(archive) as zipped:
        for info in zipped.infolist():
            extracted = Path(zipped.extract(info, target))
            mode = info.external_attr >> 16
            if mode and not info.is_dir():
                extracted.chmod(mode & 0o777)
