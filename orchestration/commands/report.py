"""``funnelhouse report``: the scheduled KPI reports by hand, for one day or week (files always written)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def register(app: typer.Typer) -> None:
    @app.command()
    def report(
        day: str = typer.Option(
            None, "--date", help="Report day YYYY-MM-DD (default: the marts' newest day); --weekly: its week."
        ),
        weekly: bool = typer.Option(False, "--weekly", help="The Monday-to-Sunday week containing --date."),
        send: bool = typer.Option(
            False, "--send", help="Mail the reports (SMTP from FUNNELHOUSE_SMTP_URL or the sink)."
        ),
        to: str = typer.Option(None, "--to", help="Only this address (its own scope if it is a recipient)."),
        scope: str | None = typer.Option(
            None,
            help="With --to for an address that is not a recipient (required then): a department, or all.",
        ),
        language: str = typer.Option("zh", help="With --to for an unknown address: zh or en."),
        resend: bool = typer.Option(
            False, "--resend", help="Mail again even if the ledger says it was sent."
        ),
        out: str = typer.Option(
            None, "--out", help="Where to write the files (default <state home>/reports)."
        ),
    ) -> None:
        """Render (and with --send, mail) the KPI reports of a period; prints where the files are."""
        from ingestion.reports.periods import Period
        from orchestration.defs.reports import runner

        when = date.fromisoformat(day) if day else runner.latest_data_day()
        if when is None:
            raise typer.BadParameter("the KPI mart is empty: run `funnelhouse build` first, or pass --date")
        period = Period.weekly(when) if weekly else Period.daily(when)
        try:
            summary = runner.run(
                period,
                send=send,
                resend=resend,
                to=to,
                scope=scope,
                language=language,
                out_dir=Path(out) if out else None,
                progress=lambda line: console.print(f"[dim]{line}[/]"),
            )
        except runner.ScopeNeeded as exc:
            raise typer.BadParameter(str(exc), param_hint="--scope") from exc
        table = Table("recipient", "scope", "lang", "status", "attempts", "error")
        for outcome in summary.outcomes:
            table.add_row(
                outcome.recipient.email,
                outcome.recipient.scope,
                outcome.recipient.language,
                outcome.status,
                str(outcome.attempts),
                outcome.error or "",
            )
        console.print(table)
        for slug, path in summary.files.items():
            console.print(f"{slug}: {path}")
        if send:
            console.print(
                f"sent {summary.count('sent')}, already sent {summary.count('skipped')}, "
                f"failed {len(summary.failed)}"
            )
        if summary.failed:
            raise typer.Exit(code=1)
