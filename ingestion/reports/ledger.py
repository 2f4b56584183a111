"""``funnelhouse.report_deliveries``: one report per (recipient, period kind, period start, scope),
ever; one more if the first was preliminary. The scope is part of what identifies a delivery: an
address mailed one department's report (or everyone's) has not had another's.

A run claims a row before sending and records the outcome after. The claim is a single
INSERT ... ON CONFLICT DO UPDATE ... WHERE, so two runs at once (a schedule and a manual backfill)
cannot both claim the same delivery. 'sent' rows are only reclaimed with ``resend``, or by a complete
run when what was sent is preliminary (rendered from marts refreshed before the period ended, see
``complete``); 'sending' rows left by a crashed run are reclaimed after ``STALE_CLAIM``, unless that
run had begun handing the message over (``data_started``). Until then the claim is another run's
(the pipeline reports it as in progress, not as sent); once stale, the redelivery sensor's runs
take it up as they do a failure.

'failed' and 'bounced' deliveries are tried again by any later run of their period. The redelivery
sensor's runs (``redeliveries_due``, ``failed``) retry only 'failed' ones a retry may cure, until each
has had ``MAX_RUNS`` runs: not those marked ``permanent`` (bounces; a relay without SMTPUTF8 for a
non-ASCII local part; no address at all), which only another run of the period retries, once someone has changed the
address or the relay (re-materialise the partition without ``redeliver``, or ``funnelhouse report
--date D --send``). 'unknown' ones (the connection was lost after the message was handed over: it may
have arrived) are only sent again with ``resend``, or recorded as sent (``mark_delivered``) once the
relay's log shows they arrived: a possible second copy is for someone to decide, not for a retry loop;
until then every run of the period reports them as awaiting that decision (``undecided``).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import psycopg
from psycopg.rows import dict_row

from ingestion.reports.delivery import SENT, DeliveryResult
from ingestion.reports.periods import Period

STALE_CLAIM = "15 minutes"
# What a redelivery run sends (``failed``, ``redeliveries_due``): a failure a retry may cure, and a
# claim whose run died before it began handing the message over (stale: nobody is sending it, and
# the message never left). One that had begun (``data_started``) may have arrived: ``undecided``.
_RETRYABLE = f"""((status = 'failed' AND NOT permanent)
    OR (status = 'sending' AND data_started_at IS NULL
        AND updated_at < clock_timestamp() - interval '{STALE_CLAIM}'))"""
# Runs that try a delivery before automatic re-delivery gives up: the scheduled one and three more.
MAX_RUNS = 4


@dataclass(frozen=True)
class Redelivery:
    """A period with failed deliveries due for another run. ``key`` changes with every run that
    claims one of the period's deliveries, so each state of the period is asked for once."""

    period_kind: str
    period_start: date
    key: str
    runs: int  # the fewest runs any of its due deliveries has had: what is left of the bound


def backoff(delay_minutes: float, runs: int) -> timedelta:
    """How long after its last run a delivery that has had ``runs`` runs waits for the next one:
    ``delay_minutes``, doubled after each run (30, 60, 120 ... for 30). ``redeliveries_due`` says the
    same in SQL."""
    return timedelta(minutes=delay_minutes * 2 ** (runs - 1))


@dataclass(frozen=True)
class Undecided:
    """A delivery whose outcome nobody knows: the message was being handed over when the connection
    (or the run) was lost. Only someone who checked the relay's log can say whether to send it again."""

    row_id: int  # funnelhouse.report_deliveries.id
    recipient: str
    scope: str
    language: str
    message_id: str | None  # None if the run died before recording it
    handed_over_at: datetime


class Ledger:
    def __init__(self, dsn: str, complete: bool = True):
        """``complete``: whether this run's reports hold their whole period (the marts were refreshed
        after it ended); a preliminary report never stands in for a complete one."""
        self.dsn = dsn
        self.complete = complete

    def claim(self, recipient: str, period: Period, scope: str, language: str, resend: bool = False) -> bool:
        """True if this run may send (and now owns the row); False if it went out already."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            row = conn.execute(
                f"""INSERT INTO funnelhouse.report_deliveries
                        (recipient, period_kind, period_start, scope, language, status, complete)
                    VALUES (%(recipient)s, %(kind)s, %(start)s, %(scope)s, %(language)s, 'sending',
                            %(complete)s)
                    ON CONFLICT (recipient, period_kind, period_start, scope) DO UPDATE
                    SET status = 'sending', language = EXCLUDED.language,
                        complete = EXCLUDED.complete, runs = report_deliveries.runs + 1,
                        data_started_at = NULL, permanent = false, updated_at = clock_timestamp()
                    WHERE report_deliveries.status IN ('bounced', 'failed')
                       OR (report_deliveries.status = 'sending'
                           AND report_deliveries.data_started_at IS NULL
                           AND report_deliveries.updated_at < clock_timestamp() - interval '{STALE_CLAIM}')
                       OR (report_deliveries.status = 'sent' AND NOT report_deliveries.complete
                           AND EXCLUDED.complete)
                       OR %(resend)s
                    RETURNING id""",
                {
                    "recipient": recipient,
                    "kind": period.kind,
                    "start": period.start,
                    "scope": scope,
                    "language": language,
                    "complete": self.complete,
                    "resend": resend,
                },
            ).fetchone()
        return row is not None

    def data_started(self, period: Period, recipient: str, scope: str) -> None:
        """The claimed message is about to be handed over: from now on its fate may be unknown."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(
                """UPDATE funnelhouse.report_deliveries SET data_started_at = clock_timestamp()
                   WHERE recipient = %s AND period_kind = %s AND period_start = %s AND scope = %s
                     AND status = 'sending'""",
                (recipient, period.kind, period.start, scope),
            )

    def record(self, period: Period, scope: str, result: DeliveryResult) -> None:
        """The outcome of the claimed delivery of ``scope``'s report to ``result.recipient``."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(
                """UPDATE funnelhouse.report_deliveries
                   SET status = %(status)s, attempts = attempts + %(attempts)s, error = %(error)s,
                       permanent = %(permanent)s, message_id = COALESCE(%(message_id)s, message_id),
                       size_bytes = %(size)s,
                       sent_at = CASE WHEN %(status)s = %(sent)s THEN clock_timestamp() ELSE sent_at END,
                       updated_at = clock_timestamp()
                   WHERE recipient = %(recipient)s AND period_kind = %(kind)s AND period_start = %(start)s
                     AND scope = %(scope)s""",
                {
                    "status": result.status,
                    "attempts": result.attempts,
                    "error": result.error,
                    "permanent": result.permanent,
                    "message_id": result.message_id,
                    "size": result.size_bytes,
                    "sent": SENT,
                    "recipient": result.recipient,
                    "kind": period.kind,
                    "start": period.start,
                    "scope": scope,
                },
            )

    def mark_delivered(
        self, recipient: str, period: Period, scope: str, message_id: str | None = None
    ) -> int | None:
        """Record an undecided delivery (``undecided``) as sent, once someone found it in the relay's
        log: ``funnelhouse report-delivered``. It counts as sent from when it was handed over. A run
        that died before recording the Message-ID needs the one from the log (``message_id``), as every
        sent row names its message. Returns the ledger row's id, or None if the recipient had no
        undecided delivery of ``scope``'s report in the period (or, without a Message-ID to name, was
        left as it was)."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            row = conn.execute(
                f"""UPDATE funnelhouse.report_deliveries
                    SET status = 'sent', sent_at = data_started_at,
                        message_id = COALESCE(message_id, %(message_id)s),
                        error = 'recorded as delivered by an operator (found in the relay''s log)',
                        updated_at = clock_timestamp()
                    WHERE recipient = %(recipient)s AND period_kind = %(kind)s AND period_start = %(start)s
                      AND scope = %(scope)s AND data_started_at IS NOT NULL
                      AND COALESCE(message_id, %(message_id)s) IS NOT NULL
                      AND (status = 'unknown'
                           OR (status = 'sending'
                               AND updated_at < clock_timestamp() - interval '{STALE_CLAIM}'))
                    RETURNING id""",
                {
                    "recipient": recipient,
                    "kind": period.kind,
                    "start": period.start,
                    "scope": scope,
                    "message_id": message_id,
                },
            ).fetchone()
        return row[0] if row else None

    def already_sent(self, period: Period) -> set[tuple[str, str]]:
        """Who has which scope's report of this period, as (recipient, scope): any, for a preliminary
        run; a complete one, for a complete run."""
        with psycopg.connect(self.dsn) as conn:
            rows = conn.execute(
                """SELECT recipient, scope FROM funnelhouse.report_deliveries
                   WHERE period_kind = %s AND period_start = %s AND status = 'sent'
                     AND (complete OR NOT %s)""",
                (period.kind, period.start, self.complete),
            ).fetchall()
        return {(recipient, scope) for recipient, scope in rows}

    def failed(self, period: Period) -> set[tuple[str, str]]:
        """Whose delivery of which scope's report of this period, as (recipient, scope), failed in a
        way a retry may cure (or was left claimed by a run that died before handing it over), and may
        have another run (fewer than MAX_RUNS): what a redelivery run sends."""
        with psycopg.connect(self.dsn) as conn:
            rows = conn.execute(
                f"""SELECT recipient, scope FROM funnelhouse.report_deliveries
                    WHERE period_kind = %s AND period_start = %s AND {_RETRYABLE} AND runs < %s""",
                (period.kind, period.start, MAX_RUNS),
            ).fetchall()
        return {(recipient, scope) for recipient, scope in rows}

    def redeliveries_due(
        self, delay_minutes: float, recipients: Collection[tuple[str, str]]
    ) -> list[Redelivery]:
        """Periods with a failed delivery that a retry may cure, may have another run and has waited
        long enough since its last one (``backoff``), to one of ``recipients`` ((address, scope): the
        configured ones). A redelivery run sends only to those (``failed``, filtered by the runner):
        a failure of another delivery (a ``--to`` address, a manager who left) would get a run that
        sends nothing."""
        emails, scopes = zip(*recipients, strict=True) if recipients else ((), ())
        with psycopg.connect(self.dsn) as conn:
            rows = conn.execute(
                f"""SELECT period_kind, period_start,
                          (SELECT sum(runs) FROM funnelhouse.report_deliveries every_row
                           WHERE every_row.period_kind = due.period_kind
                             AND every_row.period_start = due.period_start),
                          min(runs)
                   FROM funnelhouse.report_deliveries due
                   WHERE {_RETRYABLE} AND runs < %(max_runs)s
                     AND (recipient, scope) IN
                         (SELECT * FROM unnest(%(emails)s::text[], %(scopes)s::text[]))
                     AND updated_at < clock_timestamp()
                                      - interval '1 minute' * %(delay)s * power(2, runs - 1)
                   GROUP BY period_kind, period_start
                   ORDER BY period_start, period_kind""",
                {
                    "max_runs": MAX_RUNS,
                    "delay": delay_minutes,
                    "emails": list(emails),
                    "scopes": list(scopes),
                },
            ).fetchall()
        # The period's runs in all, not only its failed rows': a run that sends one and fails
        # another again must still change the key.
        return [
            Redelivery(kind, start, f"{kind}-{start}-runs-{runs}", fewest)
            for kind, start, runs, fewest in rows
        ]

    def undecided(self, period: Period) -> dict[tuple[str, str], Undecided]:
        """The period's deliveries whose outcome is unknown, by (recipient, scope): 'unknown' ones, and claims
        left 'sending' by a run that died while handing the message over (``STALE_CLAIM`` ago)."""
        with psycopg.connect(self.dsn) as conn:
            rows = conn.execute(
                f"""SELECT id, recipient, scope, language, message_id, data_started_at
                    FROM funnelhouse.report_deliveries
                    WHERE period_kind = %s AND period_start = %s AND data_started_at IS NOT NULL
                      AND (status = 'unknown'
                           OR (status = 'sending'
                               AND updated_at < clock_timestamp() - interval '{STALE_CLAIM}'))""",
                (period.kind, period.start),
            ).fetchall()
        return {(row[1], row[2]): Undecided(*row) for row in rows}

    def deliveries(self, period: Period) -> list[dict]:
        with psycopg.connect(self.dsn, row_factory=dict_row) as conn:
            return conn.execute(
                """SELECT id, recipient, scope, language, status, permanent, message_id, attempts, error,
                          size_bytes, sent_at, runs, data_started_at
                   FROM funnelhouse.report_deliveries WHERE period_kind = %s AND period_start = %s
                   ORDER BY recipient, scope""",
                (period.kind, period.start),
            ).fetchall()
