"""``funnelhouse report``: the scheduled KPI reports by hand, for one day or week (files always written)."""

from __future__ import annotations

from datetime import UTC, date
from pathlib import Path

import typer
from rich.table import Column, Table

from orchestration.console import command_error, make_console

console = make_console()


def _parse_day(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date: use YYYY-MM-DD, e.g. 2026-11-25") from None


def _valid(what: str):
    """A callback applying ingestion.reports.recipients' check_<what>: the rule the recipients file (for an
    address, the mail) obeys is the rule the option obeys, and a bad value is a usage error saying why."""

    def callback(value: str | None) -> str | None:
        from ingestion.reports import recipients

        if value is None:
            return None
        try:
            return getattr(recipients, f"check_{what}")(value)
        except recipients.RecipientError as error:
            raise typer.BadParameter(str(error)) from None

    return callback


def _progress(line: str) -> None:
    console.print(f"[yellow]{line}[/]" if line.startswith("warning:") else f"[dim]{line}[/]")


# What a reader opens of a report's folder (pipeline.write_files), in this order; the PDF is missing
# when its rendering was off, and the text part, charts and sample message are the mail's pieces.
READER_FILES = ("report.html", "report.pdf", "leaderboard.csv")


def _report_files(directory: Path) -> str:
    """The reader's files in ``directory`` that exist, as one comma-separated list ("" when none)."""
    return ", ".join(str(directory / name) for name in READER_FILES if (directory / name).is_file())


def _print_written(summary) -> None:
    """Each report this run rendered: its files, as written beside the HTML."""
    for slug, html in summary.files.items():
        console.print(f"{slug}: {_report_files(html.parent)}", highlight=False)


def _print_already_sent(summary, out_dir: Path) -> None:
    """Each report the ledger has as sent already, which this run neither mailed nor rendered again:
    when it went out, to how many, and where its files are (those an earlier run wrote)."""
    from ingestion.reports import delivery, pipeline
    from ingestion.reports.ledger import Ledger
    from orchestration import environment

    skipped: dict[str, list[tuple[str, str]]] = {}
    for outcome in summary.outcomes:
        if outcome.status == delivery.SKIPPED:
            skipped.setdefault(outcome.report_slug, []).append(
                (outcome.recipient.email, outcome.recipient.scope)
            )
    if not skipped:
        return
    sent_at = {
        (row["recipient"], row["scope"]): row["sent_at"]
        for row in Ledger(environment.pg_dsn()).deliveries(summary.period)
    }
    for slug, recipients in skipped.items():
        # no sent_at: another run claimed the delivery and is sending it now
        times = [sent_at[r] for r in recipients if sent_at.get(r)]
        when = f"last at {max(times).astimezone(UTC):%Y-%m-%d %H:%M} UTC" if times else "by another run"
        directory = pipeline.report_dir(out_dir, summary.period, slug)
        where = _report_files(directory) or (
            f"no files in {directory} (an earlier run wrote them elsewhere; without --send they "
            "are written here)"
        )
        console.print(
            f"{slug}: already sent ({when}, to {len(recipients)} recipient(s)), not sent again "
            f"(--resend does); {where}",
            highlight=False,
        )


def register(app: typer.Typer) -> None:
    @app.command("report-delivered")
    def report_delivered(
        day: str = typer.Option(..., "--date", callback=_parse_day, help="The report's day YYYY-MM-DD."),
        weekly: bool = typer.Option(
            False, "--weekly", help="The weekly report of the week containing --date."
        ),
        to: str = typer.Option(..., "--to", callback=_valid("email"), help="The recipient."),
        scope: str | None = typer.Option(
            None,
            callback=_valid("scope"),
            help="The report's scope, if the recipient has undecided deliveries of more than one.",
        ),
        message_id: str | None = typer.Option(
            None,
            "--message-id",
            help="The Message-ID found in the relay's log, if the ledger has none (its run died first).",
        ),
    ) -> None:
        """Record a report whose delivery is unknown (awaiting_decision) as sent: the relay's log shows
        it arrived. Nothing is mailed; no later run sends it again."""
        from ingestion.reports.ledger import Ledger
        from ingestion.reports.periods import Period
        from orchestration import environment

        period = Period.weekly(day) if weekly else Period.daily(day)
        ledger = Ledger(environment.pg_dsn())
        if scope is None:
            scopes = sorted(s for (recipient, s) in ledger.undecided(period) if recipient == to)
            if len(scopes) > 1:
                raise typer.BadParameter(
                    f"{to} has undecided deliveries of the reports of scopes {', '.join(scopes)}: "
                    "say which one arrived with --scope",
                    param_hint="'--scope'",
                )
            scope = scopes[0] if scopes else None
        row_id = ledger.mark_delivered(to, period, scope, message_id) if scope else None
        if row_id is None:
            raise command_error(
                f"no delivery of the {period.kind} report of {period.start} to {to} awaits a decision "
                "(see `funnelhouse report --date ... --send`: it lists them), or it has no Message-ID "
                "recorded: give the one from the relay's log with --message-id"
            )
        console.print(f"recorded as sent: {to}, {period.kind} report of {period.start} (ledger row {row_id})")

    @app.command()
    def report(
        day: str = typer.Option(
            None,
            "--date",
            callback=_parse_day,
            help="Report day YYYY-MM-DD (default: the newest day with any activity in the marts); "
            "--weekly: its week.",
        ),
        weekly: bool = typer.Option(False, "--weekly", help="The Monday-to-Sunday week containing --date."),
        send: bool = typer.Option(
            False, "--send", help="Mail the reports (SMTP from FUNNELHOUSE_SMTP_URL or the sink)."
        ),
        to: str = typer.Option(
            None,
            "--to",
            callback=_valid("email"),
            help="Only this address (its own scope if it is a recipient).",
        ),
        scope: str | None = typer.Option(
            None,
            callback=_valid("scope"),
            help="Only with --to, for an address that is not a recipient (required then): a department, or all.",
        ),
        language: str | None = typer.Option(
            None,
            callback=_valid("language"),
            help="Only with --to, for an unknown address: zh (default) or en.",
        ),
        resend: bool = typer.Option(
            False,
            "--resend",
            help="Mail again even if the ledger says it was sent, or that whether it arrived is "
            "unknown (the connection was lost after the message was handed over: check first).",
        ),
        out: str = typer.Option(
            None,
            "--out",
            help="Where to write the files (default $FUNNELHOUSE_REPORT_DIR, else <state home>/reports).",
        ),
    ) -> None:
        """Render (and with --send, mail) the KPI reports of a period; prints where the files are."""
        from ingestion.reports.periods import Period
        from ingestion.reports.recipients import DEFAULT_LANGUAGE, RecipientError
        from orchestration.defs.reports import runner

        # Without --to they would be ignored: everyone would get their own report instead.
        for value, name in ((scope, "--scope"), (language, "--language")):
            if value is not None and not to:
                raise typer.BadParameter(
                    f"only applies with --to (without it every recipient gets their own report): "
                    f"add --to ADDRESS or drop {name}",
                    param_hint=f"'{name}'",
                )
        when = day  # a date: parsed by _parse_day
        if when is None:
            try:
                when = runner.latest_data_day()
            except runner.NoMarts as exc:
                raise command_error(str(exc)) from None
            if when is None:
                raise command_error("the KPI mart has no activity at all: run `funnelhouse build` first")
            console.print(f"[dim]report day: {when} (the newest day with activity; --date to choose)[/]")
        period = Period.weekly(when) if weekly else Period.daily(when)
        out_dir = Path(out) if out else runner.default_out_dir()
        try:
            summary = runner.run(
                period,
                send=send,
                resend=resend,
                to=to,
                scope=scope,
                language=language or DEFAULT_LANGUAGE,
                out_dir=out_dir,
                progress=_progress,
                require_activity=True,
            )
        except (runner.ScopeNeeded, runner.ScopeNotTheRecipients) as exc:
            raise typer.BadParameter(str(exc), param_hint="'--scope'") from None
        except runner.NoActivity as exc:
            raise typer.BadParameter(str(exc), param_hint="'--date'") from None
        except (RecipientError, runner.NoRecipients, runner.Incomplete, runner.NoMarts) as exc:
            raise command_error(str(exc)) from None
        except OSError as exc:
            # The report's files (pipeline.write_files), all under out_dir: anything else is no
            # trouble of the files'.
            if exc.filename is None or not Path(exc.filename).is_relative_to(out_dir):
                raise
            raise command_error(f"cannot write report files to {out_dir}: {exc.strerror}") from None
        # In a narrow terminal an address or error folds onto the next line rather than losing its end.
        table = Table(
            Column("recipient", overflow="fold"),
            "scope",
            "lang",
            "status",
            "attempts",
            Column("error", overflow="fold"),
        )
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
        _print_written(summary)
        _print_already_sent(summary, out_dir)
        if send:
            console.print(
                f"sent {summary.count('sent')}, already sent {summary.count('skipped')}, "
                f"failed {len(summary.failed)}"
                + (
                    f", awaiting a decision {len(summary.awaiting_decision)} (see the table)"
                    if summary.awaiting_decision
                    else ""
                )
            )
        if summary.failed:
            raise typer.Exit(code=1)
