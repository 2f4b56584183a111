"""The run alerts of the whole code location, apart from any domain: every job's failures are alerted
the same way, and ``funnelhouse alerts`` reads them without loading Dagster definitions.

``settings`` (what the environment sets), ``state`` (an alert's state on its run's tags),
``history`` (the failing streaks of a run's checks and job), ``text`` (what an alert says) and
``delivery`` (mailing it); the sensors that raise and retry them are ``orchestration.defs.alerts``.

What no sensor retries is the operator's (``orchestration.commands.alerts``): ``funnelhouse alerts``
lists every alert not sent, ``alerts resend RUN_ID`` mails one now through ``mail_again``, and
``alerts delivered RUN_ID`` records one the relay's log shows as arrived."""
