"""A run-failure sensor for the warehouse jobs: always logs; mails FUNNELHOUSE_ALERT_EMAIL when set,
through the project's SMTP settings (the embedded sink locally), read at failure time, not import."""

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


def build_failure_sensor(jobs: list) -> dg.SensorDefinition:
    """The sensor over the warehouse jobs that exist in this code location."""

    @dg.run_failure_sensor(
        name="warehouse_run_failure_sensor",
        monitored_jobs=jobs,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def warehouse_run_failure_sensor(context: dg.RunFailureSensorContext):
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

    return warehouse_run_failure_sensor
