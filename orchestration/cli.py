"""The ``funnelhouse`` command. Each module in ``orchestration.commands`` adds its own subcommands,
so a new domain plugs in without editing this file."""

from __future__ import annotations

import errno
import importlib
import os
import pkgutil
from pathlib import Path

import typer

from devstack import state
from orchestration import commands, environment

app = typer.Typer(
    name="funnelhouse",
    help="Analytics warehouse for an investment-advisory sales CRM.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold DSNs and passwords
)

for module_info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
    importlib.import_module(f"{commands.__name__}.{module_info.name}").register(app)


# Errors that mean the state home cannot be made or written: permissions, a read-only or full disk;
# and a missing parent, but only of the home itself (a file missing under it is a command's own error).
_HOME_NOT_WRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR}


def _home_path() -> Path:
    """The state home as ``state.home()`` names it, without creating it: that is what failed."""
    return Path(os.environ.get("FUNNELHOUSE_HOME", state.DEFAULT_HOME)).expanduser().resolve()


def home_not_writable(error: OSError) -> str | None:
    """One line for an error the state home gave when a command made or wrote it, else None."""
    if not isinstance(error.filename, str | os.PathLike):
        return None
    home, failed = _home_path(), Path(error.filename).resolve()
    creating_home = home.is_relative_to(failed)  # the home itself or a parent of it
    if not (creating_home or failed.is_relative_to(home)):
        return None
    if error.errno not in _HOME_NOT_WRITABLE and not (creating_home and error.errno == errno.ENOENT):
        return None
    where = "" if failed == home else f" ({failed})"
    return f"FUNNELHOUSE_HOME {home} cannot be written or read: {error.strerror}{where}"


def main() -> None:
    """The console script: what is wrong in the environment is one line saying what to do, whichever
    command met it, not a traceback: a service that is neither configured nor running (run
    ``funnelhouse up``), a setting whose value cannot be used (its message names the variable), a
    state home that cannot be written."""
    try:
        app()
    except (environment.ServiceNotRunning, environment.ConfigurationError) as error:
        typer.echo(f"Error: {error}", err=True)
        raise SystemExit(1) from None
    except OSError as error:
        message = home_not_writable(error)
        if message is None:
            raise
        typer.echo(f"Error: {message}", err=True)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
