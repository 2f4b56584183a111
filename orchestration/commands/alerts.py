"""``funnelhouse alerts``: the run-failure alerts no sensor mails again, and the operator's ways out.

The alert of a failed run lives on the run as tags (``orchestration.alerts.state``). One the
relay did not take is retried by a sensor for a while; one left 'sending' (the connection lost
after the handover: it may have arrived), refused for good ('not-sent') or given up ('gave-up') waits
here for someone to decide, as a report whose delivery is unknown waits for `report-delivered` or
`report --resend`. The list names runs and jobs, never the address alerts go to."""

from __future__ import annotations

import os

import typer
from rich.table import Table

from orchestration.alerts.settings import utc_minute
from orchestration.console import command_error, make_console

console = make_console()

alerts_app = typer.Typer(
    help="Run-failure alerts not sent (listed without a subcommand): mail one again, or record it as sent."
)


def _instance():
    """The Dagster instance the daemon records its runs in: ``$DAGSTER_HOME`` when set (Dagster's own
    rule, as ``dagster`` reads it), else the one `make ui` keeps in ``<state home>/dagster``. Never an
    ephemeral one, which holds no run to look at."""
    import dagster as dg

    from devstack import state

    if os.environ.get("DAGSTER_HOME"):
        try:
            return dg.DagsterInstance.get()
        except dg.DagsterInvariantViolationError as error:  # relative, or not a directory
            raise command_error(str(error).splitlines()[0]) from None
    home = state.home() / "dagster"
    if not home.is_dir():
        raise command_error(
            f"no Dagster instance: set DAGSTER_HOME to the directory of the instance the daemon runs "
            f"with (`make ui` keeps one in {home}, which does not exist yet)"
        )
    return dg.DagsterInstance.from_config(str(home))


def _alert(instance, run_id: str):
    """The alert of run ``run_id`` (or of the one run whose id starts with it, as the mail's subject
    shows it); a usage error naming what is wrong if there is none."""
    from orchestration.alerts.settings import ALERT_EMAIL_ENV
    from orchestration.alerts.state import SENT, UNSENT, alert_of, alert_records

    run = instance.get_run_by_id(run_id)
    if run is None and run_id:
        alerted = alert_records(instance, [*UNSENT, SENT])
        matches = [alert for alert, _ in alerted if alert.run.run_id.startswith(run_id)]
        if len(matches) > 1:
            runs = ", ".join(alert.run.run_id for alert in matches)
            raise typer.BadParameter(
                f"{run_id!r} starts the ids of several alerted runs ({runs}): give more of it",
                param_hint="'RUN_ID'",
            )
        run = matches[0].run if matches else None
    if run is None:
        raise typer.BadParameter(
            f"no run {run_id!r} in the Dagster instance at {instance.root_directory}: "
            "`funnelhouse alerts` lists the alerts not sent, with their run ids",
            param_hint="'RUN_ID'",
        )
    alert = alert_of(run)
    if alert is None:
        raise typer.BadParameter(
            f"run {run.run_id} ({run.job_name}, {run.status.value.lower()}) has no alert recorded: it did not "
            f"fail, or failed while {ALERT_EMAIL_ENV} was unset (then it was only logged)",
            param_hint="'RUN_ID'",
        )
    return alert


def _utc(seconds: float | None) -> str:
    return utc_minute(seconds) if seconds else "-"


def _next_step(state: str) -> str:
    from orchestration.alerts.state import GAVE_UP, NOT_SENT, PENDING, SENDING

    return {
        PENDING: "retried by run_failure_alert_retry_sensor; `resend` to mail it now",
        SENDING: "may have arrived (its Message-ID in the relay's log holds the run id): "
        "`delivered` or `resend`",
        NOT_SENT: "not retried (a refusal, or a failed `resend`: see its log): `resend` once mended",
        GAVE_UP: "retries gave up: `resend` once the relay is back",
    }.get(state, "")


class _ConsoleLog:
    """Where ``orchestration.alerts.delivery.send_alert`` says what happened when an operator mails an
    alert: the console."""

    def info(self, line: str) -> None:
        console.print(line, markup=False, highlight=False)

    def warning(self, line: str) -> None:
        console.print(line, style="yellow", markup=False, highlight=False)

    def error(self, line: str) -> None:
        console.print(line, style="red", markup=False, highlight=False)


@alerts_app.callback(invoke_without_command=True)
def alerts(context: typer.Context) -> None:
    """List the run-failure alerts not sent: pending, sending (delivery unknown), not-sent, gave-up."""
    if context.invoked_subcommand is not None:
        return
    from orchestration.alerts.state import UNSENT, alert_records

    with _instance() as instance:
        unsent = alert_records(instance, UNSENT)
    if not unsent:
        console.print("no run-failure alert waiting: every alert recorded was sent")
        return
    table = Table("run", "job", "failed", "state", "attempts", "next")
    for alert, record in unsent:
        table.add_row(
            alert.run.run_id,
            alert.run.job_name,
            _utc(record.end_time or alert.since),
            alert.state,
            str(alert.attempts),
            _next_step(alert.state),
        )
    console.print(table)


@alerts_app.command("resend")
def resend(
    run_id: str = typer.Argument(
        ..., help="The failed run's id (or its first characters, as the mail's subject shows)."
    ),
    again: bool = typer.Option(
        False, "--again", help="Mail it even if it was sent (the recipient will have it twice)."
    ),
) -> None:
    """Mail the alert of a failed run now, as the retry sensor would; record it as sent, or not-sent
    (exit 1) if the relay does not take it. An alert left 'sending' may have arrived: check first."""
    from orchestration.alerts.delivery import mail_again
    from orchestration.alerts.settings import ALERT_EMAIL_ENV
    from orchestration.alerts.state import SENT

    if not os.environ.get(ALERT_EMAIL_ENV):
        raise command_error(f"no {ALERT_EMAIL_ENV} set: there is no one to mail the alert to")
    with _instance() as instance:
        alert = _alert(instance, run_id)
        if alert.state == SENT and not again:
            raise command_error(
                f"the alert of run {alert.run.run_id} ({alert.run.job_name}) was sent "
                f"(attempt {alert.attempts}): --again to mail it once more"
            )
        state = mail_again(instance, _ConsoleLog(), alert, retried=False)
    if state != SENT:
        raise typer.Exit(code=1)


@alerts_app.command("delivered")
def delivered(
    run_id: str = typer.Argument(
        ..., help="The failed run's id (or its first characters, as the mail's subject shows)."
    ),
) -> None:
    """Record the alert of a failed run as sent: the relay's log shows it arrived. Nothing is mailed,
    and no sensor mails it again."""
    from orchestration.alerts.state import SENT, Alert, record_alert

    with _instance() as instance:
        alert = _alert(instance, run_id)
        if alert.state == SENT:
            raise command_error(
                f"the alert of run {alert.run.run_id} ({alert.run.job_name}) is already recorded as sent"
            )
        record_alert(instance, Alert(alert.run, SENT, alert.since, alert.attempts))
    console.print(
        f"recorded as sent: the alert of run {alert.run.run_id} ({alert.run.job_name}), was {alert.state}",
        markup=False,
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.add_typer(alerts_app, name="alerts")
