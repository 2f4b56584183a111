"""Real services for the report tests: the local ClickHouse server with sample marts, the embedded
PostgreSQL (employees + delivery ledger) and the SMTP sink, all started through their launchers."""

from __future__ import annotations

import contextlib
import email
import email.policy
from pathlib import Path

import pytest

from devstack import smtp
from devstack.state import free_port
from ingestion.replication.replicate import utc_now
from ingestion.reports.data import MartReader, connect
from ingestion.reports.periods import Period
from ingestion.reports.recipients import from_employees
from orchestration.defs.warehouse import refresh_state
from orchestration.environment import ClickHouseSettings, SmtpSettings, smtp_settings
from tests.reports import sample_marts

MARTS_DATABASE = "report_test_marts"
RAW_DATABASE = "report_test_raw"
REPORT_DAY = sample_marts.END_DATE
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "reports"


@pytest.fixture(scope="session")
def clickhouse_settings(clickhouse_server):  # noqa: F811
    return ClickHouseSettings(
        host=clickhouse_server["host"],
        port=int(clickhouse_server["port"]),
        username=clickhouse_server["user"],
        password=clickhouse_server["password"],
    )


@pytest.fixture(scope="session")
def marts(clickhouse_settings):
    """(client, employees) of the sample marts, built once per session."""
    client = connect(clickhouse_settings, database="default")
    people = sample_marts.build(client, MARTS_DATABASE)
    yield client, people
    client.close()


@pytest.fixture(scope="session")
def reader(marts):
    return MartReader(marts[0], MARTS_DATABASE)


@pytest.fixture
def employees_dsn(pg_dsn, marts):
    sample_marts.insert_employees(pg_dsn, marts[1])
    return pg_dsn


@pytest.fixture
def recipients(employees_dsn):
    return from_employees(employees_dsn)


@pytest.fixture(scope="session")
def _stack_smtp_sink(stack_home):
    info = smtp.start(stack_home)
    yield info
    smtp.stop(stack_home)


@pytest.fixture
def smtp_sink(_stack_smtp_sink):
    """The sink of the test stack (FUNNELHOUSE_HOME = stack_home, so smtp_settings() finds it), its
    outbox emptied for each test. The sink serves every test of the process, and a test counts the
    messages it sent: those of an earlier test to the same address and report were counted too, and
    which files ran earlier on a worker depends on how pytest-xdist hands them out."""
    for message in Path(_stack_smtp_sink["outbox"]).glob("*.eml"):
        message.unlink()
    return _stack_smtp_sink


@contextlib.contextmanager
def sink_in_this_process(outbox: Path, handler_class=smtp.OutboxHandler, **options):
    """A real aiosmtpd server with the sink's handler (or a variant of it) and ``options`` (aiosmtpd's:
    ``enable_SMTPUTF8`` ...); yields the settings to send through it."""
    from aiosmtpd.controller import Controller

    port = free_port(smtp.DEFAULT_PORT, smtp.HOST)
    handler = handler_class(outbox, smtp.DEFAULT_REJECT, smtp.DEFAULT_TEMPFAIL)
    controller = Controller(handler, hostname=smtp.HOST, port=port, **options)
    controller.start()
    try:
        yield SmtpSettings(host=smtp.HOST, port=port, sender="reports@funnelhouse.test")
    finally:
        controller.stop()


@pytest.fixture(scope="session")
def ascii_only_sink(service_dirs):
    """(settings, outbox) of a sink that does not offer SMTPUTF8, as some relays do not."""
    outbox = service_dirs("ascii-only-smtp")
    with sink_in_this_process(outbox, enable_SMTPUTF8=False) as settings:  # aiosmtpd's default: on
        yield settings, outbox


@pytest.fixture
def mail_settings(smtp_sink, monkeypatch):
    monkeypatch.delenv("FUNNELHOUSE_SMTP_URL", raising=False)
    return smtp_settings()


@pytest.fixture
def report_environment(clickhouse_settings, marts, employees_dsn, smtp_sink, tmp_path, monkeypatch):
    """What the command and the assets read, through the environment variables production uses
    (ClickHouse URL, PostgreSQL DSN, the stack's SMTP sink); the test's folder."""
    monkeypatch.setenv("FUNNELHOUSE_CLICKHOUSE_URL", clickhouse_settings.url)
    monkeypatch.setenv("FUNNELHOUSE_CLICKHOUSE_USER", clickhouse_settings.username)
    monkeypatch.setenv("FUNNELHOUSE_CLICKHOUSE_PASSWORD", clickhouse_settings.password)
    monkeypatch.setenv("FUNNELHOUSE_MARTS_DATABASE", MARTS_DATABASE)
    # The sample marts count as refreshed now (after every sample day ended): a refresh mark of their
    # own, in a raw database of their own.
    monkeypatch.setenv("FUNNELHOUSE_RAW_DATABASE", RAW_DATABASE)
    refresh_state.record_refresh(marts[0], RAW_DATABASE, MARTS_DATABASE, utc_now())
    monkeypatch.setenv("FUNNELHOUSE_REPORT_DIR", str(tmp_path / "reports"))
    monkeypatch.delenv("FUNNELHOUSE_SMTP_URL", raising=False)
    monkeypatch.delenv("FUNNELHOUSE_REPORT_RECIPIENTS", raising=False)
    return tmp_path


@pytest.fixture
def daily():
    return Period.daily(REPORT_DAY)


def outbox_messages(outbox: str | Path) -> list[email.message.EmailMessage]:
    return [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        for path in sorted(Path(outbox).glob("*.eml"))
    ]


def messages_to(outbox: str | Path, address: str, report_slug: str | None = None) -> list:
    return [
        m
        for m in outbox_messages(outbox)
        if address in m["X-Sink-Envelope-To"]
        and (report_slug is None or m["X-Funnelhouse-Report"] == report_slug)
    ]


def raw_messages_to(outbox: str | Path, envelope_address: str) -> list[bytes]:
    """The stored bytes of the messages whose envelope went to ``envelope_address``: with SMTPUTF8 the
    headers are UTF-8, which the email package's byte parser does not give back as text."""
    wanted = f"X-Sink-Envelope-To: {envelope_address}\r\n".encode()
    return [raw for path in sorted(Path(outbox).glob("*.eml")) if wanted in (raw := path.read_bytes())]


def daily_run_with_retries(partition: str, retries: int) -> tuple[int, str]:
    """Materialise the daily report of ``partition`` allowing ``retries`` waits of no time for the marts,
    expecting it to fail: (the retries it took, what its failure says)."""
    import dagster as dg

    from orchestration.defs.reports.assets import daily_kpi_reports

    config = {"refresh_retries": retries, "refresh_retry_seconds": 0}
    result = dg.materialize(
        [daily_kpi_reports],
        partition_key=partition,
        run_config={"ops": {"daily_kpi_reports": {"config": config}}},
        raise_on_error=False,
    )
    assert not result.success
    taken = sum(event.event_type_value == "STEP_UP_FOR_RETRY" for event in result.all_events)
    failure = next(event for event in result.all_events if event.is_step_failure)
    return taken, str(failure.step_failure_data.error)
