"""The run-failure sensor of the code location: always logs; mails FUNNELHOUSE_ALERT_EMAIL when set,
through the project's SMTP settings (the embedded sink locally), read at failure time, not import.

It watches every job of the code location, not only the warehouse's: a failed backup, ingestion,
search sync or report run matters as much as a failed refresh, and a materialisation started by hand
from the UI runs as Dagster's implicit asset job, which no list of jobs names. It lives here, beside
the mail it sends, and ``orchestration.definitions`` registers it once for the merged location.

A mail that cannot be delivered is logged beside the failure (which stays visible) and not retried:
the sensor moves on to the next failed run, so one broken alert never holds back the next ones nor
sends an earlier one twice."""

import os
from email.message import EmailMessage

import dagster as dg

# A sensor evaluation has a time limit: two quick tries, not the reports' patient back-off.
_ALERT_RETRY_ATTEMPTS = 2


class AlertNotDelivered(RuntimeError):
    pass


def _notify(subject: str, body: str) -> bool:
    """Mail the alert through the reports' sender (``delivery.deliver``: verified TLS, no retry once
    the server has the message); an alert that cannot be delivered raises, so the sensor shows it."""
    recipient = os.environ.get("FUNNELHOUSE_ALERT_EMAIL")
    if not recipient:
        return False
    from ingestion.reports import delivery
    from orchestration import environment

    settings = environment.smtp_settings()
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = settings.sender, recipient, subject
    message.set_content(body)
    result = delivery.deliver(
        settings, message, recipient, delivery.RetryPolicy(attempts=_ALERT_RETRY_ATTEMPTS, first_delay=1.0)
    )
    if result.status != delivery.SENT:
        raise AlertNotDelivered(f"alert to {recipient} not delivered: {result.error}")
    return True


@dg.run_failure_sensor(
    name="run_failure_alert_sensor",
    # No monitored_jobs: every job of this code location, the implicit asset job included.
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def run_failure_alert_sensor(context: dg.RunFailureSensorContext):
    run = context.dagster_run
    subject = f"[funnelhouse] {run.job_name} failed (run {run.run_id[:8]})"
    body = f"{subject}\n\n{context.failure_event.message or 'no message'}"
    context.log.error(body)
    try:
        sent = _notify(subject, body)
    except OSError as error:  # a broken mail relay must not hide the original failure
        context.log.error(f"alert mail not sent: {error}")
        sent = False
    context.log.info("alert mailed" if sent else "no FUNNELHOUSE_ALERT_EMAIL: logged only")
