"""``funnelhouse search`` and ``funnelhouse reindex``: the conversations index from the command line."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from ingestion.search import indexer, mapping, rebuild
from ingestion.search.client import SearchClient
from ingestion.search.query import HIGHLIGHT_POST, HIGHLIGHT_PRE, Filters, search_conversations
from ingestion.search.rebuild import RebuildReport
from orchestration import environment

console = Console()


def _client() -> SearchClient:
    return SearchClient.connect(environment.search_settings())


def _highlighted(fragment: str) -> str:
    pattern = re.escape(HIGHLIGHT_PRE) + "(.*?)" + re.escape(HIGHLIGHT_POST)
    return re.sub(pattern, lambda m: f"[bold yellow]{m.group(1)}[/]", escape(fragment))


def _day_option(help_text: str):
    return typer.Option(formats=["%Y-%m-%d"], help=help_text)


def register(app: typer.Typer) -> None:
    @app.command()
    def search(
        text: str = typer.Argument("", help="Words to find, Chinese or English (empty: latest matching filters)."),
        customer: str = typer.Option(None, help="Customer code, e.g. CUST_00042."),
        employee: str = typer.Option(None, help="Employee code, e.g. EMP_007."),
        platform: str = typer.Option(None, help="wechat, whatsapp or telegram."),
        sentiment: str = typer.Option(None, help="positive, neutral or negative."),
        since: Annotated[dt.datetime | None, _day_option("Sent on or after this day (UTC).")] = None,
        until: Annotated[dt.datetime | None, _day_option("Sent before this day (UTC).")] = None,
        limit: int = typer.Option(10, min=1, max=100),
        alias: str = typer.Option(mapping.DEFAULT_ALIAS, hidden=True),
    ) -> None:
        """Search customer conversations; prints the best hits with the matching words highlighted."""
        client = _client()
        try:
            filters = Filters(customer, employee, platform, sentiment, since, until)
            result = search_conversations(client, text, filters, alias=alias, size=limit)
        except LookupError as exc:
            console.print(f"[red]{exc}[/]")
            raise typer.Exit(1) from exc
        finally:
            client.close()
        console.print(f"{result.total} conversation(s) in {result.took_ms} ms")
        for hit in result.hits:
            console.print(
                f"[cyan]{hit.sent_at[:16].replace('T', ' ')}[/] {hit.customer_code} ↔ {hit.employee_code} "
                f"[dim]{hit.platform or '-'} · {hit.direction} · {hit.sentiment or '-'} · #{hit.id}[/]"
            )
            fragments = hit.highlights or [hit.content or ""]
            for fragment in fragments:
                console.print("   " + (_highlighted(fragment) if hit.highlights else escape(fragment[:200])))

    @app.command()
    def reindex(
        full: bool = typer.Option(False, "--full", help="Rebuild into a new versioned index and swap the alias."),
        rollback: bool = typer.Option(
            False, "--rollback", help="Point the alias back at the index the last rebuild replaced, and catch it up."
        ),
        alias: str = typer.Option(mapping.DEFAULT_ALIAS, hidden=True),
    ) -> None:
        """Bring the search index up to date with PostgreSQL (incremental unless --full or needed)."""
        if full and rollback:
            raise typer.BadParameter("--full and --rollback exclude each other")
        client = _client()
        dsn = environment.pg_dsn()
        try:
            if rollback:
                report = rebuild.roll_back(dsn, client, alias)
            else:
                report = rebuild.full_rebuild(dsn, client, alias) if full else indexer.synchronise(dsn, client, alias)
        except rebuild.NothingToRollBackTo as exc:
            console.print(f"[red]cannot roll back:[/] {exc}")
            raise typer.Exit(1) from exc
        finally:
            client.close()
        if isinstance(report, rebuild.RollbackReport):
            console.print(
                f"alias {alias} rolled back from {report.left} to [bold]{report.index}[/]; caught up: "
                f"{report.caught_up.indexed} indexed, {report.caught_up.deleted} deleted"
            )
        elif isinstance(report, RebuildReport):
            console.print(
                f"rebuilt [bold]{report.index}[/] ({client.flavour} {client.version}, cjk={report.cjk}): "
                f"{report.loaded} documents verified against PostgreSQL in {report.load_seconds}s "
                f"({report.docs_per_second} docs/s), {report.replayed_indexed} change(s) replayed; "
                f"alias {alias} swapped from {report.previous or 'nothing'}"
            )
        elif report.skipped:
            console.print(f"[yellow]skipped:[/] {report.skipped}")
        else:
            console.print(f"synced: {report.indexed} indexed, {report.deleted} deleted in {report.seconds}s")
