"""The ``funnelhouse`` command. Each module in ``orchestration.commands`` adds its own subcommands,
so a new domain plugs in without editing this file."""

from __future__ import annotations

import importlib
import pkgutil

import typer

from orchestration import commands, environment

app = typer.Typer(
    name="funnelhouse",
    help="Analytics warehouse for an investment-advisory sales CRM.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold DSNs and passwords
)

for module_info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
    importlib.import_module(f"{commands.__name__}.{module_info.name}").register(app)


def main() -> None:
    """The console script: a service that is neither configured nor running is one line saying what
    to do (``funnelhouse up``), whichever command needed it, not a traceback."""
    try:
        app()
    except environment.ServiceNotRunning as missing:
        typer.echo(f"Error: {missing}", err=True)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
