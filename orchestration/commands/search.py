"""``funnelhouse search`` and ``funnelhouse reindex``: the conversations index from the command line.

What a user can run into (no engine at the configured address, a rebuild already running, a rebuild
that failed its checks, a search text too long or refused by the engine) ends the command with one
``Error: ...`` line on stderr and exit status 1.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Iterator
from enum import StrEnum
from typing import Annotated, NoReturn

import psycopg
import typer
from rich.markup import escape

from ingestion.contracts import CONTRACTS
from ingestion.search import documents, indexer, mapping, quarantine, rebuild
from ingestion.search.client import BulkFailed, SearchClient
from ingestion.search.query import (
    HIGHLIGHT_POST,
    HIGHLIGHT_PRE,
    Filters,
    QueryRefused,
    count_conversations,
    search_conversations,
)
from ingestion.search.rebuild import RebuildReport
from orchestration import environment
from orchestration.console import command_error, make_console

console = make_console()


def _allowed(column: str) -> type[StrEnum]:
    """The values the landing contract allows in ``conversations.<column>``, as a typer choice."""
    values = CONTRACTS["conversations"].column(column).allowed
    return StrEnum(column.capitalize(), {value: value for value in values})


Platform = _allowed("platform")
Sentiment = _allowed("sentiment")


def _fail(message: str) -> NoReturn:
    raise command_error(message)


def _connection_errors() -> tuple[type[Exception], ...]:
    """Both clients' "could not reach the server" errors (timeouts included)."""
    errors: list[type[Exception]] = []
    with contextlib.suppress(ImportError):
        import elastic_transport

        errors += [elastic_transport.ConnectionError, elastic_transport.ConnectionTimeout]
    with contextlib.suppress(ImportError):
        import opensearchpy

        errors.append(opensearchpy.ConnectionError)  # its ConnectionTimeout is one
    return tuple(errors)


def _reason(exc: BaseException) -> str:
    """The cause in a few words (e.g. "Connection refused"), not the clients' nested urllib3 reprs."""
    text = " ".join([str(exc), *map(str, exc.args)])  # elastic_transport's str() may omit the cause
    found = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if found:
        return found.group(1).strip()
    return "timed out" if "Timeout" in type(exc).__name__ else type(exc).__name__


@contextlib.contextmanager
def _engine() -> Iterator[SearchClient]:
    """A connected client, closed afterwards; an engine that cannot be reached (now or mid-command)
    is one line naming its URL instead of a traceback."""
    try:
        settings = environment.search_settings()
    except (RuntimeError, ValueError) as exc:  # nothing configured and nothing running; a bad flavour
        _fail(str(exc))
    url = re.sub(r"//[^/@]*@", "//", settings.url)  # never print credentials written into the URL
    client = None
    try:
        client = SearchClient.connect(settings)
        yield client
    except _connection_errors() as exc:
        fix = (
            "start it with `funnelhouse up`"
            if settings.embedded
            else "check FUNNELHOUSE_SEARCH_URL, or unset it and run `funnelhouse up` for the embedded engine"
        )
        _fail(f"cannot reach the {settings.flavour} search engine at {url} ({_reason(exc)}): {fix}")
    finally:
        if client is not None:
            client.close()


def _highlighted(fragment: str) -> str:
    pattern = re.escape(HIGHLIGHT_PRE) + "(.*?)" + re.escape(HIGHLIGHT_POST)
    return re.sub(pattern, lambda m: f"[bold yellow]{m.group(1)}[/]", escape(fragment))


def _day_option(help_text: str):
    return typer.Option(formats=["%Y-%m-%d"], help=help_text)


_CODE_EXAMPLES = {"customer": "CUST_0000042", "employee": "EMP_0007"}


def _unknown_people(client: SearchClient, filters: Filters, alias: str) -> list[str]:
    """Why a search found nothing, when a customer or employee code has no conversation at all
    (a mistyped code would otherwise look like any other filter that matched nothing)."""
    hints = []
    for role, example in _CODE_EXAMPLES.items():
        code = getattr(filters, role)
        if code and not count_conversations(client, Filters(**{role: code}), alias=alias):
            hints.append(f"no conversation of {role} {code} in the index (codes look like {example})")
    return hints


def register(app: typer.Typer) -> None:
    @app.command()
    def search(
        text: str = typer.Argument(
            "", help="Words to find, Chinese or English (empty: latest matching filters)."
        ),
        customer: str = typer.Option(None, help=f"Customer code, e.g. {_CODE_EXAMPLES['customer']}."),
        employee: str = typer.Option(None, help=f"Employee code, e.g. {_CODE_EXAMPLES['employee']}."),
        platform: Annotated[Platform | None, typer.Option(help="Messaging platform.")] = None,
        sentiment: Annotated[Sentiment | None, typer.Option(help="Sentiment of the message.")] = None,
        since: Annotated[dt.datetime | None, _day_option("Sent on or after this day (UTC).")] = None,
        until: Annotated[dt.datetime | None, _day_option("Sent before this day (UTC).")] = None,
        limit: int = typer.Option(10, min=1, max=100),
        alias: str = typer.Option(mapping.DEFAULT_ALIAS, hidden=True),
    ) -> None:
        """Search customer conversations; prints the best hits with the matching words highlighted."""
        filters = Filters(
            customer,
            employee,
            platform.value if platform else None,
            sentiment.value if sentiment else None,
            since,
            until,
        )
        with _engine() as client:
            try:
                result = search_conversations(client, text, filters, alias=alias, size=limit)
                unknown = _unknown_people(client, filters, alias) if not result.total else []
            except (LookupError, QueryRefused) as exc:  # no index yet; a text too long, or refused
                _fail(str(exc))
        console.print(f"{result.total} conversation(s) in {result.took_ms} ms")
        for hint in unknown:
            console.print(f"[yellow]hint:[/] {escape(hint)}", highlight=False)
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
        full: bool = typer.Option(
            False, "--full", help="Rebuild into a new versioned index and swap the alias."
        ),
        rollback: bool = typer.Option(
            False,
            "--rollback",
            help="Point the alias back at the index the last rebuild replaced, and catch it up.",
        ),
        alias: str = typer.Option(mapping.DEFAULT_ALIAS, hidden=True),
    ) -> None:
        """Bring the search index up to date with PostgreSQL (incremental unless --full or needed)."""
        if full and rollback:
            raise typer.BadParameter("--full and --rollback exclude each other")
        try:
            dsn = environment.pg_dsn()
        except RuntimeError as exc:  # no PostgreSQL configured and none running
            _fail(str(exc))
        with _engine() as client:
            try:
                if rollback:
                    report = rebuild.roll_back(dsn, client, alias)
                else:
                    report = (
                        rebuild.full_rebuild(dsn, client, alias)
                        if full
                        else indexer.synchronise(dsn, client, alias)
                    )
            except rebuild.NothingToRollBackTo as exc:
                _fail(f"cannot roll back: {exc}")
            except rebuild.RebuildInProgress as exc:
                _fail(f"{exc} (try again when it has finished)")
            except rebuild.RebuildVerificationFailed as exc:
                _fail(f"the rebuild failed its check and was dropped, the alias did not move: {exc}")
            except BulkFailed as exc:
                _fail(
                    f"{str(exc)[:500]}; neither the alias nor the sync cursor moved, so the next run retries"
                )
            except psycopg.OperationalError as exc:
                _fail(f"cannot use PostgreSQL: {str(exc).strip().splitlines()[0]}")
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
        if getattr(report, "quarantined", 0):
            console.print(f"[yellow]{escape(quarantine.notice(report.quarantined))}[/]")

    @app.command("search-quarantine")
    def search_quarantine(
        limit: int = typer.Option(50, min=1, help="Show at most this many documents."),
        alias: str = typer.Option(mapping.DEFAULT_ALIAS, hidden=True),
    ) -> None:
        """Documents the search engine refused for good (the sync moved past them), with the reason."""
        with _engine() as client:
            index = quarantine.index_of(client, alias)  # where the sync records them
        try:
            with documents.connect(environment.pg_dsn()) as conn:
                refused = quarantine.listed(conn, index, limit) if index else []
                total = quarantine.count(conn, index) if index else 0
        except (RuntimeError, psycopg.OperationalError) as exc:
            _fail(f"cannot use PostgreSQL: {str(exc).strip().splitlines()[0]}")
        if not refused:
            console.print(f"no quarantined documents in {index or alias}")
            return
        shown = f", the first {len(refused)}" if total > len(refused) else ""
        console.print(f"[bold]{total}[/] quarantined document(s) in {index}{shown} (conversation id, why):")
        for entry in refused:
            console.print(
                f"#{entry.doc_id} {entry.operation} HTTP {entry.status} x{entry.attempts}, "
                f"last {entry.last_failed_at:%Y-%m-%d %H:%M}: {escape(entry.reason[:300])}"
            )
