"""Mailing an alert and recording what became of it, on its run: apart from the sensors, since
``funnelhouse alerts resend`` mails through the same path.

Alerts go through the reports' sender (``ingestion.reports.delivery``), with the project's SMTP
settings (the embedded sink locally), read at failure time, not import.

Never twice: the state is written before the message is handed over (sending) and after (sent); an
alert left 'sending' (the connection lost after the handover, or the daemon stopped meanwhile) may
have arrived and is not sent again, as with the reports (``ingestion.reports.delivery``). A refusal
no retry changes (a bounced address) is logged and not retried."""

from __future__ import annotations

import os
from email.message import EmailMessage
from email.utils import make_msgid

import dagster as dg

from orchestration.alerts.history import failed_checks, failure_message, judge_run
from orchestration.alerts.settings import ALERT_EMAIL_ENV, retry_hours, utc_minute
from orchestration.alerts.state import NOT_SENT, PENDING, SENDING, SENT, Alert, alert_of, record_alert
from orchestration.alerts.text import alert_text, run_alert_text

# A sensor evaluation has a time limit: two quick tries, not the reports' patient back-off, and a
# relay that does not answer is given up on within seconds (the next tick tries again).
_ALERT_RETRY_ATTEMPTS = 2
_ALERT_SMTP_TIMEOUT = 10.0


class AlertNotDelivered(RuntimeError):
    """The relay did not take the alert; ``retryable`` unless no later try can change that (a bounce)
    or the message may have arrived (``may_have_arrived``: connection lost after the handover)."""

    def __init__(self, message: str, retryable: bool, may_have_arrived: bool = False):
        super().__init__(message)
        self.retryable = retryable
        self.may_have_arrived = may_have_arrived


def _notify(subject: str, body: str, before_data=lambda: None, run_id: str = "") -> bool:
    """Mail the alert through the reports' sender (``delivery.deliver``: verified TLS, no retry once
    the server has the message; ``before_data`` before each handover); an alert that cannot be
    delivered raises ``AlertNotDelivered``. False when no FUNNELHOUSE_ALERT_EMAIL is set. Its
    Message-ID holds ``run_id``: what to look for in the relay's log when its delivery is unknown."""
    recipient = os.environ.get(ALERT_EMAIL_ENV)
    if not recipient:
        return False
    from ingestion.reports import delivery
    from orchestration import environment

    try:
        settings = environment.smtp_settings()
    except (ValueError, environment.ServiceNotRunning) as error:  # mended by settings: retried
        raise AlertNotDelivered(f"alert to {recipient} not sent: {error}", retryable=True) from error
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = settings.sender, recipient, subject
    message["Message-ID"] = make_msgid(
        idstring=f"alert-{run_id}", domain=settings.sender.rpartition("@")[2] or "localhost"
    )
    message.set_content(body)
    policy = delivery.RetryPolicy(
        attempts=_ALERT_RETRY_ATTEMPTS, first_delay=1.0, timeout=_ALERT_SMTP_TIMEOUT
    )
    result = delivery.deliver(settings, message, recipient, policy, before_data=before_data)
    if result.status != delivery.SENT:
        raise AlertNotDelivered(
            f"alert to {recipient} not delivered ({result.status}): {result.error}",
            retryable=result.status == delivery.FAILED and not result.permanent,
            may_have_arrived=result.status == delivery.UNKNOWN,
        )
    return True


def send_alert(
    instance: dg.DagsterInstance, log, alert: Alert, subject: str, body: str, retried: bool = True
) -> str:
    """One attempt at mailing ``alert``; records and returns its new state (sent, pending, sending,
    not-sent) and says so on ``log`` (a sensor's ``context.log``, or any logger). ``retried``: a
    failure the relay may mend is left pending for the retry sensor; else (mailed by hand:
    ``funnelhouse alerts resend``) it is not-sent, and the operator decides again. A connection lost
    after the handover leaves it 'sending' (recorded before the handover): it may have arrived."""
    run = alert.run
    attempt = Alert(run, SENDING, alert.since, alert.attempts + 1)
    try:
        _notify(subject, body, before_data=lambda: record_alert(instance, attempt), run_id=run.run_id)
    except AlertNotDelivered as error:
        if error.may_have_arrived:
            log.error(
                f"alert of run {run.run_id} ({run.job_name}) may have arrived, not mailed again by itself: "
                f"{error}; once the relay's log shows it, `funnelhouse alerts delivered {run.run_id}`, "
                f"else `funnelhouse alerts resend {run.run_id}`"
            )
            return SENDING
        if error.retryable and retried:
            record_alert(instance, Alert(run, PENDING, attempt.since, attempt.attempts))
            until = utc_minute(attempt.since + retry_hours() * 3600)
            log.warning(
                f"alert of run {run.run_id} ({run.job_name}) not mailed, attempt {attempt.attempts}: "
                f"{error}; tried again until {until}"
            )
            return PENDING
        record_alert(instance, Alert(run, NOT_SENT, attempt.since, attempt.attempts))
        log.error(f"alert of run {run.run_id} ({run.job_name}) not mailed, not retried: {error}")
        return NOT_SENT
    record_alert(instance, Alert(run, SENT, attempt.since, attempt.attempts))
    log.info(f"alert of run {run.run_id} ({run.job_name}) mailed, attempt {attempt.attempts}")
    return SENT


def mail_again(instance: dg.DagsterInstance, log, alert: Alert, retried: bool = True) -> str:
    """``send_alert`` of an alert mailed after its failure was seen: its text from the run's log.
    Not if its state moved since ``alert`` was read (the retry sensor and `funnelhouse alerts resend`
    acting on one alert at once): read again just before, so one of them mails it, not both."""
    now = alert_of(instance.get_run_by_id(alert.run.run_id) or alert.run)
    if now is None or (now.state, now.attempts) != (alert.state, alert.attempts):
        state = now.state if now else "gone"
        log.info(f"alert of run {alert.run.run_id} ({alert.run.job_name}) is {state} meanwhile: not mailed")
        return state
    run, message = alert.run, failure_message(instance, alert.run)
    # the same text from the same history; none if a setting changed meanwhile: as NEW
    subject, body = run_alert_text(instance, run, message, judge_run(instance, log, run)) or alert_text(
        run, message, failed_checks(instance, run.run_id)
    )
    return send_alert(instance, log, alert, subject, body, retried=retried)
