"""``funnelhouse generate``: deterministic synthetic landing files for every seed table."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ingestion.generate import DEFAULT_DAYS, DEFAULT_END_DATE, Manifest, generate
from orchestration.console import make_console

console = make_console()
# Given as text, parsed like a typed date, so --help shows it in the format it is typed in.
_DEFAULT_END_TEXT = f"{DEFAULT_END_DATE:%Y-%m-%d}"


def register(app: typer.Typer) -> None:
    @app.command("generate")
    def generate_command(
        out: Annotated[
            Path, typer.Option("--out", help="Directory for the landing files (created if missing).")
        ],
        customers: Annotated[
            int, typer.Option("--customers", min=1, help="Number of customers to simulate.")
        ],
        seed: Annotated[
            int, typer.Option("--seed", min=0, help="Random seed: same seed and options, same bytes.")
        ],
        days: Annotated[
            int, typer.Option("--days", min=7, help="Length of the simulated window in days.")
        ] = (DEFAULT_DAYS),
        end_date: Annotated[
            datetime,
            typer.Option(
                "--end-date",
                formats=["%Y-%m-%d"],
                help="Exclusive end of the window (UTC midnight); fixed so output never depends on today.",
            ),
        ] = _DEFAULT_END_TEXT,
        bad_rows: Annotated[
            float,
            typer.Option(
                "--bad-rows",
                min=0.0,
                max=0.49,
                help="Fraction of malformed rows mixed into every file (listed in _manifest.json).",
            ),
        ] = 0.0,
        overwrite: Annotated[
            bool, typer.Option("--overwrite", help="Replace landing files already in --out.")
        ] = False,
    ) -> None:
        """Write landing files (<table>__<batch>.<csv|jsonl|parquet>) and _manifest.json."""
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as bar:
            tasks: dict[str, int] = {}

            def report(phase: str, done: int, total: int) -> None:
                if phase not in tasks:
                    tasks[phase] = bar.add_task(phase, total=total)
                bar.update(tasks[phase], completed=done)

            try:
                manifest = generate(
                    out,
                    customers,
                    seed,
                    days=days,
                    bad_rows=bad_rows,
                    progress=report,
                    end_date=end_date.date(),
                    overwrite=overwrite,
                )
            except FileExistsError as error:
                console.print(f"[red]{error}[/]")
                raise typer.Exit(1) from None
        _print_summary(manifest, out)


def _print_summary(manifest: Manifest, out: Path) -> None:
    table = Table("table", "format", "files", "rows", "bad rows")
    for name in sorted({f.table for f in manifest.files}):
        files = manifest.files_of(name)
        table.add_row(
            name,
            files[0].format,
            str(len(files)),
            f"{sum(f.rows for f in files):,}",
            f"{sum(len(f.bad_rows) for f in files):,}",
        )
    console.print(table)
    total = sum(f.rows for f in manifest.files)
    console.print(
        f"{len(manifest.files)} files, {total:,} rows in {out} (manifest: {out / '_manifest.json'})"
    )
