"""Produce a period's reports for every recipient, write them locally, and (optionally) send them.

Content is gathered once per scope and rendered once per (scope, language); recipients only get
their own MIME envelope. Each recipient is claimed in the ledger, sent with retries and recorded
on its own: a failure is an outcome in the summary, never an exception that stops the others.

A delivery an earlier run left 'unknown' (it may have arrived) is neither sent nor "skipped": it is
``AWAITING_DECISION``, saying how to find out and how to settle it, and it fails no run (the run that
lost the connection failed already; every later one would otherwise fail until someone acts).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path

from ingestion.reports import content as report_content
from ingestion.reports import delivery, mail, render
from ingestion.reports.data import MartReader
from ingestion.reports.ledger import STALE_CLAIM, Ledger, Undecided
from ingestion.reports.periods import Period
from ingestion.reports.recipients import Recipient, RecipientError, email_problem

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    recipient: Recipient
    report_slug: str
    # sent / bounced / failed / unknown / skipped (already sent) / awaiting_decision (an earlier run's
    # 'unknown') / in_progress (another run's claim, not handed over yet) / written (not sending)
    status: str
    attempts: int = 0
    message_id: str | None = None
    error: str | None = None  # for awaiting_decision: how to find out and settle it
    size_bytes: int | None = None
    permanent: bool = False  # a failure no retry cures: the redelivery sensor leaves it alone


@dataclass
class RunSummary:
    period: Period
    reports: dict[tuple[str, str], render.RenderedReport] = field(default_factory=dict)
    outcomes: list[Outcome] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)  # report slug -> its preview HTML

    @property
    def failed(self) -> list[Outcome]:
        """Not delivered, or not known to be (``delivery.UNKNOWN``), or not by this run and perhaps by
        none (``delivery.IN_PROGRESS``: another run's claim, which that run may not live to send)."""
        not_delivered = (delivery.BOUNCED, delivery.FAILED, delivery.UNKNOWN, delivery.IN_PROGRESS)
        return [o for o in self.outcomes if o.status in not_delivered]

    @property
    def awaiting_decision(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == delivery.AWAITING_DECISION]

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)


def report_dir(out_dir: Path, period: Period, slug: str) -> Path:
    """Where the files of report ``slug`` go: a folder per period, one per report in it."""
    return Path(out_dir) / period.key / slug


def write_files(report: render.RenderedReport, directory: Path, sample: bytes | None) -> Path:
    """The report as a reader gets it: preview HTML, PDF, CSV, charts and one sample .eml."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "report.html").write_text(report.preview_html, encoding="utf-8")
    (directory / "report.txt").write_text(report.text, encoding="utf-8")
    (directory / "leaderboard.csv").write_bytes(report.leaderboard_csv)
    if report.pdf:
        (directory / "report.pdf").write_bytes(report.pdf)
    for name, png in report.charts.items():
        (directory / f"{name}.png").write_bytes(png)
    if sample is not None:
        (directory / "message.eml").write_bytes(sample)
    return directory / "report.html"


def produce_reports(
    period: Period,
    recipients: list[Recipient],
    reader: MartReader,
    *,
    sender: str,
    pg_dsn: str | None = None,
    smtp_settings=None,  # None: render and write only
    ledger: Ledger | None = None,
    out_dir: Path | None = None,
    resend: bool = False,
    retry_policy: delivery.RetryPolicy = delivery.DEFAULT_RETRY,
    with_pdf: bool = True,
    progress: Callable[[str], None] = log.info,
    preliminary: bool = False,
    complete_follows: bool = True,
) -> RunSummary:
    """Render each recipient's report (written to ``out_dir``, sent when ``smtp_settings`` is given,
    once per recipient and period through ``ledger``). ``preliminary``: the marts were refreshed
    before the period ended; the reports say so, and whether the complete report follows by itself
    (``complete_follows``: the recipients are configured ones, whom the scheduled run mails it; False
    for an address given to ``funnelhouse report --to`` alone, which gets it only from that command)."""
    summary = RunSummary(period)
    if smtp_settings is not None and ledger is not None and not resend:
        # A retried schedule run renders nothing for people who already have their report, or whose
        # report may have arrived (someone has to decide about those). A delivery is that of one
        # scope's report: an address mailed another scope's has not had this one.
        done, undecided = ledger.already_sent(period), ledger.undecided(period)
        for r in recipients:
            slug = f"{period.key}-{r.scope}-{r.language}"
            if (r.email, r.scope) in done:
                summary.outcomes.append(Outcome(r, slug, delivery.SKIPPED))
            elif (r.email, r.scope) in undecided:
                summary.outcomes.append(_awaiting_decision(r, slug, period, undecided[r.email, r.scope]))
        settled = done | undecided.keys()
        recipients = [r for r in recipients if (r.email, r.scope) not in settled]
    contents = {}
    for scope in sorted({r.scope for r in recipients}):
        contents[scope] = report_content.gather(reader, scope, period, pg_dsn, preliminary=preliminary)
    for recipient in recipients:
        key = (recipient.scope, recipient.language)
        if key not in summary.reports:
            report = render.render(
                contents[recipient.scope],
                recipient.language,
                with_pdf=with_pdf,
                complete_follows=complete_follows,
            )
            summary.reports[key] = report
            if out_dir is not None:
                summary.files[report.slug] = write_files(
                    report,
                    report_dir(out_dir, period, report.slug),
                    _sample_message(report, recipients, sender),
                )
            progress(f"rendered {report.slug}")
        report = summary.reports[key]
        if smtp_settings is None:
            # Nothing is sent, but whoever the report could not be mailed to is named now, not at 09:00.
            summary.outcomes.append(
                Outcome(recipient, report.slug, "written", error=email_problem(recipient.email))
            )
            continue
        summary.outcomes.append(
            _send(report, recipient, period, sender, smtp_settings, ledger, resend, retry_policy)
        )
        progress(f"{summary.outcomes[-1].status}: {recipient.email} ({report.slug})")
    return summary


def _sample_message(report: render.RenderedReport, recipients: list[Recipient], sender: str) -> bytes | None:
    """The message of the first of ``report``'s recipients it can be built for, as the sample .eml.

    Built outside the per-recipient handling of ``_send``, one recipient's bad address (a domain
    with no IDNA form, say) would otherwise end the run for everybody after it, on every retry; that
    recipient's own delivery reports it as failed instead. None if no recipient's message can be built."""
    for recipient in recipients:
        if (recipient.scope, recipient.language) != (report.scope, report.language):
            continue
        try:
            return mail.build_message(report, recipient, sender).as_bytes()
        except ValueError as error:  # RecipientError, or what the SMTP policy refuses in a header
            log.warning("no sample message of %s for %s: %s", report.slug, recipient.email, error)
    return None


def _awaiting_decision(recipient: Recipient, slug: str, period: Period, row: Undecided) -> Outcome:
    """An earlier run's delivery whose outcome is unknown, with what an operator does about it."""
    look_for = (
        f"Message-ID {row.message_id}"
        if row.message_id
        else f"a message to {recipient.email} (no Message-ID was recorded)"
    )
    resend = (
        f"funnelhouse report --date {period.start}{' --weekly' if period.kind == 'weekly' else ''} "
        f"--send --resend --to {recipient.email} --scope {row.scope} --language {row.language}"
    )
    delivered = (
        f"funnelhouse report-delivered --date {period.start}{' --weekly' if period.kind == 'weekly' else ''} "
        f"--to {recipient.email} --scope {row.scope}"
        + ("" if row.message_id else " --message-id <the Message-ID in the log>")
    )
    return Outcome(
        recipient,
        slug,
        delivery.AWAITING_DECISION,
        message_id=row.message_id,
        error=(
            f"outcome unknown since {row.handed_over_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC (the "
            "connection, or its run, was lost while handing the message over): not sent again by itself. Look "
            f"for {look_for} in the relay's log. Not there: `{resend}`. There: `{delivered}` records it "
            f"as sent (ledger row funnelhouse.report_deliveries id={row.row_id})"
        ),
    )


def _unclaimed(ledger: Ledger, recipient: Recipient, slug: str, period: Period) -> Outcome:
    """The outcome for a delivery this run could not claim: sent, being sent by another run, or left
    'unknown' by one since this run began. Never raises: the row is not this run's to record.

    A claim whose run has not begun handing the message over is no "already sent": that run may
    have died (killed, cancelled) and left nothing delivered. It is ``IN_PROGRESS``, counted as not
    delivered; once the claim is stale the redelivery sensor's runs (or any run of the period) send it."""
    try:
        undecided = ledger.undecided(period).get((recipient.email, recipient.scope))
        row = next(
            (
                r
                for r in ledger.deliveries(period)
                if (r["recipient"], r["scope"]) == (recipient.email, recipient.scope)
            ),
            None,
        )
    except Exception:
        log.exception("could not tell what became of %s's delivery", recipient.email)
        undecided = row = None
    if undecided is not None:
        return _awaiting_decision(recipient, slug, period, undecided)
    if row is not None and row["status"] == "sending" and row["data_started_at"] is None:
        return Outcome(
            recipient,
            slug,
            delivery.IN_PROGRESS,
            error=(
                "not sent by this run: another run holds the claim on this delivery and had not begun "
                "handing the message over. If that run died, nothing was delivered: the claim is taken "
                f"over after {STALE_CLAIM} (the redelivery sensor, or another run of the period, sends it)"
            ),
        )
    return Outcome(recipient, slug, delivery.SKIPPED)


def _send(report, recipient, period, sender, smtp_settings, ledger, resend, retry_policy) -> Outcome:
    try:
        if ledger is not None and not ledger.claim(
            recipient.email, period, recipient.scope, recipient.language, resend
        ):
            return _unclaimed(ledger, recipient, report.slug, period)
        message = mail.build_message(report, recipient, sender)
        result = delivery.deliver(
            smtp_settings,
            message,
            recipient.email,
            retry_policy,
            before_data=(lambda: ledger.data_started(period, recipient.email, recipient.scope))
            if ledger
            else lambda: None,
        )
    except RecipientError as error:  # no address (a file's typo): no retry changes that
        result = delivery.DeliveryResult(
            recipient.email, delivery.FAILED, 0, error=str(error), permanent=True
        )
    except Exception as error:  # a broken row or address must not cost the other recipients their report
        log.exception("report for %s failed", recipient.email)
        result = delivery.DeliveryResult(
            recipient.email, delivery.FAILED, 0, error=f"{type(error).__name__}: {error}"
        )
    # Recorded outside the try: a ledger error after the server accepted the mail must not turn a
    # delivered report into 'failed', which the next run would send again. Unrecorded, the claim
    # stays 'sending' and blocks other runs until it is stale (ledger.STALE_CLAIM).
    if ledger is not None:
        try:
            ledger.record(period, recipient.scope, result)
        except Exception:  # the ledger itself may be what failed
            log.exception("could not record %s for %s in the ledger", result.status, recipient.email)
    return Outcome(
        recipient,
        report.slug,
        result.status,
        result.attempts,
        result.message_id,
        result.error,
        result.size_bytes,
        result.permanent,
    )
