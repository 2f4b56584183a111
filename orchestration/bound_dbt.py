"""``funnelhouse-bound-dbt``: the dbt executable of Dagster's dbt steps, dbt bound to the step process.

dagster-dbt (``DbtCliResource.cli``) starts its ``dbt_executable`` with a plain Popen: dbt would
outlive a step process killed outright (SIGKILL, the OOM killer) and go on writing to the warehouse
without the writer lock, beside the next run (see processes.py). The resource's executable is this
launcher instead (resources.py). It asks the kernel to kill it when its parent ends
(``processes.bind_to_parent``) and then execs dbt with its arguments: the same process, so the
request holds for dbt and dagster-dbt's signals (a cancelled step) reach dbt itself.

The parent a Dagster step's launcher is bound to is the process that set PARENT_PID_VARIABLE (the
resource, around each dbt command): a step process killed while the launcher's Python was still
starting leaves it reparented, and only the pid it was given tells it so (then it ends without
running dbt). Run by hand, without the variable, its parent is whichever process it finds itself the
child of when it starts.

dagster-dbt also asks its executable ``--version`` before every dbt command (the resource's
``_cli_version``, one per step). dbt answers that after importing itself (~2 s of CPU) and asking PyPI
for newer releases of dbt-core and each adapter (up to a second each: a scheduled step would wait on the
internet, or on its timeouts where there is none). The launcher answers it from the package metadata of
its own environment when the dbt it would run is dbt-core's script run by its Python (``version_answer``): the line
dagster-dbt reads, without the import or the network. Any other dbt (found on PATH) answers itself.

Where there is a warm dbt server (warm_dbt.py: FUNNELHOUSE_WARM_DBT_SOCKET, or the stack's), the bound
launcher has it run dbt instead of exec'ing it: the launcher stays, as the client standing in for dbt.

Kept to the standard library, processes.py, warm_dbt.py and devstack.state: every Dagster dbt command
starts one.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import shutil
import sys
from pathlib import Path
from typing import NoReturn

from devstack import state
from orchestration import processes, warm_dbt

NAME = "funnelhouse-bound-dbt"  # the console script (pyproject.toml)
PARENT_PID_VARIABLE = "FUNNELHOUSE_BOUND_DBT_PARENT_PID"
_DBT_CORE_ENTRY = b"from dbt.cli.main import cli"  # what pip writes into dbt-core's console script


def find_dbt(*folders: Path) -> str:
    """The dbt installed in the first of ``folders`` holding one, else the one on PATH (else "dbt", which
    running says is missing)."""
    for folder in folders:
        if (folder / "dbt").exists():
            return str(folder / "dbt")
    return shutil.which("dbt") or "dbt"


def executable() -> str:
    """This launcher's path: installed beside this Python (the venv's bin, whether or not on PATH), else
    on PATH. Raises if neither, as a project installed before the launcher existed lacks it."""
    beside_python = Path(sys.executable).parent / NAME
    found = str(beside_python) if beside_python.exists() else shutil.which(NAME)
    if not found:
        raise RuntimeError(
            f"{NAME}, the dbt of Dagster's dbt steps, is installed neither beside {sys.executable} nor"
            " on PATH: install the project again (`make venv`, or `pip install -e .`)"
        )
    return found


def parent_environment() -> dict[str, str]:
    """What a process sets in the environment of the launchers it starts itself (PARENT_PID_VARIABLE)."""
    return {PARENT_PID_VARIABLE: str(os.getpid())}


def version_answer(dbt: str) -> str | None:
    """What ``dbt --version`` says of the installed versions (dbt-core's first: the line dagster-dbt
    reads), for the dbt at path ``dbt`` when it is dbt-core's console script run by this Python (so its
    dbt is this environment's, whose package metadata then tells the versions); None for any other dbt
    (another Python's, a dbt that is not dbt-core's), or none installed here."""
    try:
        script = Path(dbt).read_bytes()[:1024]
        core = importlib.metadata.version("dbt-core")
    except (OSError, importlib.metadata.PackageNotFoundError):
        return None
    if not script.startswith(b"#!" + os.fsencode(sys.executable)) or _DBT_CORE_ENTRY not in script:
        return None
    plugins = sorted(_adapter_versions())
    width = max((len(name) for name, _ in plugins), default=0) + 1
    lines = ["Core:", f"  - installed: {core}", "", "Plugins:"]
    lines += [f"  - {name + ':':<{width}} {installed}" for name, installed in plugins]
    lines += ["", f"({NAME}: read from the installed packages, without dbt's check for newer releases)"]
    return "\n".join(lines)


def _adapter_versions() -> list[tuple[str, str]]:
    """(adapter, version) of every dbt adapter installed here: a package dbt/adapters/<name>/ on sys.path
    (found without importing dbt), its version that of the distribution dbt-<name>."""
    found = {}
    for folder in sys.path:
        for version_file in Path(folder or ".").glob("dbt/adapters/*/__version__.py"):
            name = version_file.parent.name
            with contextlib.suppress(importlib.metadata.PackageNotFoundError):
                found.setdefault(name, importlib.metadata.version(f"dbt-{name}"))
    return list(found.items())


def main() -> None:
    # dbt of the same installation: beside this script (both console scripts of one environment), else
    # beside its Python, else on PATH.
    dbt = find_dbt(Path(os.path.abspath(sys.argv[0])).parent, Path(sys.executable).parent)
    if sys.argv[1:] == ["--version"] and (answer := version_answer(dbt)):
        print(answer)
        return
    # The variable is for this launcher alone, not for dbt's environment (os.environ is what execv passes).
    given = os.environ.pop(PARENT_PID_VARIABLE, "")
    parent = int(given) if given.isdigit() else os.getppid()
    try:
        bound = processes.bind_to_parent(parent)
    except OSError as error:
        _not_run(f"cannot have it end with its parent: {error}")
    if not bound:
        _not_run(f"its parent (pid {parent}) ended before dbt started")
    state.default_sigterm()  # dagster-dbt's process may ignore SIGTERM, and dbt would inherit that
    if served_by := warm_dbt.socket_path(dict(os.environ)):
        warm_dbt.run(served_by, dbt, sys.argv[1:])  # ends as dbt ends; starts it cold itself if need be
    try:
        os.execv(dbt, [dbt, *sys.argv[1:]])
    except OSError as error:
        _not_run(f"cannot run {dbt}: {error}")


def _not_run(why: str) -> NoReturn:
    print(f"{NAME}: dbt not run: {why}", file=sys.stderr)
    sys.exit(127)  # as a shell says a command could not run
