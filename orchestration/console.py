"""The consoles the commands print with.

On a terminal rich fits what it prints to the window. Anywhere else (a pipe, a CI log,
``make demo | tee demo.log``) it would wrap at 80 columns and cut paths, addresses and e-mail
addresses in two, so the path a command prints to say where to look could not be copied from the
log: there lines are left whole and tables as wide as their content. ``COLUMNS``, when set, wins.
"""

from __future__ import annotations

import os

import typer
from rich.console import Console

# Wide enough for any path or address the commands print; a table is only as wide as its content.
WIDTH_AWAY_FROM_A_TERMINAL = 240


def make_console(*, stderr: bool = False) -> Console:
    console = Console(stderr=stderr)
    if console.is_terminal or os.environ.get("COLUMNS"):
        return console
    return Console(stderr=stderr, width=WIDTH_AWAY_FROM_A_TERMINAL, soft_wrap=True)


def command_error(message: str) -> typer.Exit:
    """One line on stderr and a non-zero exit to raise: for what is wrong in the environment, not an
    option (typer's usage errors cover those)."""
    typer.echo(f"Error: {message}", err=True)
    return typer.Exit(code=1)
