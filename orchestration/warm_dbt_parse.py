"""The warm dbt server's last step before it serves (warm_dbt.serve): one parse of this project.

Importing dbt is not all a dbt process repeats before it reads a project. dbt builds the code that turns
its classes into dicts, JSON and msgpack and back (mashumaro, per class) and its configs' JSON schemas
on their first use in a process, so a command forked from a server that has only imported dbt builds
them again: measured here, a `dbt ls` selecting nothing took 2.6-2.9 s forked after the imports and
0.8-1.2 s forked after a parse in the server. A parse uses all of them: the project and profile
validated, every kind of node parsed, the manifest written, the partial-parse file read as nearly every
command reads it.

The parse goes to a throwaway target and log folder, seeded with the target's partial-parse file when
there is one (else a full parse writes it and a second parse reads it); nothing of it is kept but what
dbt built in its classes. It connects to no server, and it parses without dbt's static parser: that
parser (dbt_extractor, in Rust) starts a pool of native threads the first time it parses a file, and a
command forked from a server holding that pool waits for ever on threads it does not have as soon as it
parses a model itself (the project or profile changed since the target's parse). Rendering each model's
Jinja instead costs the server's start a little and starts no thread. Best effort: a project that does
not parse (a model mid-edit, a FUNNELHOUSE_CLICKHOUSE_URL that cannot be read) leaves the server serving
as before, and says so in its log.
"""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import tempfile
import traceback
from collections.abc import Iterator
from pathlib import Path

PARTIAL_PARSE_FILE = "partial_parse.msgpack"


def warm_up() -> bool:
    """Parse the project as described above; whether it parsed. Objects made so far are then kept out
    of the garbage collector's passes (``gc.freeze``), so a forked command does not copy the pages they
    sit on by touching them."""
    from orchestration.defs.warehouse.dbt_environment import PROFILES_DIR, REPO_ROOT, parse_environment

    try:
        env = parse_environment()
    except Exception:  # noqa: BLE001 -- best effort: see the module docstring
        print("warm dbt: no parse before serving (the environment dbt would parse in):", flush=True)
        traceback.print_exc()
        return False
    parsed = False
    with tempfile.TemporaryDirectory(prefix="warm-dbt-parse-") as scratch, _environment(env):
        target = Path(scratch) / "target"
        target.mkdir()
        seed = Path(env["DBT_TARGET_PATH"]) / PARTIAL_PARSE_FILE
        seeded = seed.is_file() and _copied(seed, target / PARTIAL_PARSE_FILE)
        arguments = [
            "parse",
            "--quiet",
            "--no-static-parser",
            "--project-dir",
            str(REPO_ROOT),
            "--profiles-dir",
            str(PROFILES_DIR),
            "--target-path",
            str(target),
            "--log-path",
            str(Path(scratch) / "logs"),
        ]
        parsed = all(_parse(arguments) for _ in range(1 if seeded else 2))
    gc.collect()
    gc.freeze()
    return parsed


def _copied(source: Path, destination: Path) -> bool:
    try:
        shutil.copyfile(source, destination)
    except OSError:
        return False
    return True


def _parse(arguments: list[str]) -> bool:
    from dbt.cli.main import dbtRunner
    from dbt_common.events.event_manager_client import cleanup_event_logger

    try:
        result = dbtRunner().invoke(arguments)
    except Exception:  # noqa: BLE001 -- best effort: see the module docstring
        traceback.print_exc()
        result = None
    finally:
        cleanup_event_logger()  # the parse's log file, about to be removed, closed
    if result is None or not result.success:
        print(f"warm dbt: the parse before serving failed ({getattr(result, 'exception', None)})", flush=True)
        return False
    return True


@contextlib.contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    """This process's environment replaced by ``env`` for the parse (dbt reads env_var() from it)."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
