"""Reports reach a real SMTP server as valid MIME, once per recipient and period, and one refused
address (a real 550 / 451 from the sink) never stops the others."""

from __future__ import annotations

import subprocess
from email.message import EmailMessage
from email.utils import make_msgid

import psycopg
import pytest

from devstack import smtp
from ingestion.reports import content, delivery, mail, pipeline, render
from ingestion.reports.ledger import Ledger
from ingestion.reports.recipients import Recipient
from orchestration.environment import SmtpSettings
from tests.reports.conftest import messages_to, raw_messages_to, sink_in_this_process
from tests.reports.report_html import images

FAST_RETRY = delivery.RetryPolicy(attempts=3, first_delay=0.05, timeout=10)
SENDER = "reports@funnelhouse.test"


def _tree(part, depth=0) -> list[str]:
    lines = ["  " * depth + part.get_content_type()]
    if part.is_multipart():
        for child in part.iter_parts():
            lines += _tree(child, depth + 1)
    return lines


def _run(reader, recipients, period, settings, dsn, **options):
    return pipeline.produce_reports(
        period,
        recipients,
        reader,
        sender=SENDER,
        pg_dsn=dsn,
        smtp_settings=settings,
        ledger=Ledger(dsn),
        retry_policy=FAST_RETRY,
        **options,
    )


def test_message_arrives_with_valid_mime_and_attachments(
    reader, recipients, employees_dsn, mail_settings, smtp_sink, daily, tmp_path
):
    manager = next(r for r in recipients if r.scope == "ToFu")
    summary = _run(reader, [manager], daily, mail_settings, employees_dsn, out_dir=tmp_path)
    assert [o.status for o in summary.outcomes] == ["sent"]
    report = summary.reports[("ToFu", "zh")]

    [received] = messages_to(smtp_sink["outbox"], manager.email, report.slug)
    assert received["Message-ID"].strip() == summary.outcomes[0].message_id
    assert _tree(received) == [
        "multipart/mixed",
        "  multipart/related",
        "    multipart/alternative",
        "      text/plain",
        "      text/html",
        "    image/png",
        "    image/png",
        "    image/png",
        "  application/pdf",
        "  text/csv",
    ]
    related = next(received.iter_parts())
    html = related.get_body(("html",)).get_content()
    content_ids = {
        part["Content-ID"].strip("<>")
        for part in related.iter_parts()
        if part.get_content_maintype() == "image"
    }
    referenced = {src.removeprefix("cid:") for src in images(html)}
    assert referenced == content_ids and len(referenced) == 3  # every image is inline, none is missing
    for part in related.iter_parts():
        if part.get_content_maintype() == "image":
            assert part.get_content().startswith(b"\x89PNG") and part.get_content_disposition() == "inline"
    attachments = {part.get_filename(): part.get_content() for part in received.iter_attachments()}
    pdf = next(body for name, body in attachments.items() if name.endswith(".pdf"))
    assert pdf == report.pdf and pdf.startswith(b"%PDF-")
    csv_text = next(body for name, body in attachments.items() if name.endswith(".csv"))
    assert (
        csv_text == report.leaderboard_csv.decode("utf-8")
        and "rank,employee_code" in csv_text.splitlines()[0]
    )
    assert "ToFu" in received["Subject"] or "ToFu" in str(received["Subject"])
    # the local copy a reader can open: preview, PDF, CSV, a sample .eml
    written = summary.files[report.slug].parent
    assert {p.name for p in written.iterdir()} >= {
        "report.html",
        "report.pdf",
        "leaderboard.csv",
        "message.eml",
    }


def test_same_period_is_sent_once_unless_resent(
    reader, recipients, employees_dsn, mail_settings, smtp_sink, daily
):
    admin = next(r for r in recipients if r.scope == "all")
    first = _run(reader, [admin], daily, mail_settings, employees_dsn, with_pdf=False)
    second = _run(reader, [admin], daily, mail_settings, employees_dsn, with_pdf=False)
    assert [o.status for o in first.outcomes] == ["sent"]
    assert [o.status for o in second.outcomes] == ["skipped"]
    slug = first.reports[("all", "zh")].slug
    assert len(messages_to(smtp_sink["outbox"], admin.email, slug)) == 1

    forced = _run(reader, [admin], daily, mail_settings, employees_dsn, with_pdf=False, resend=True)
    assert [o.status for o in forced.outcomes] == ["sent"]
    assert len(messages_to(smtp_sink["outbox"], admin.email, slug)) == 2
    [row] = Ledger(employees_dsn).deliveries(daily)
    assert (
        row["status"] == "sent"
        and row["attempts"] == 2
        and row["message_id"] == forced.outcomes[0].message_id
    )


def test_a_refused_recipient_does_not_block_the_others(
    reader, recipients, employees_dsn, mail_settings, smtp_sink, daily
):
    bounced = Recipient("nobody@bounce.invalid", "Bounce", "MoFu")
    flaky = Recipient("busy@tempfail.invalid", "Tempfail", "MoFu")
    no_address = Recipient("nobody at example.com", "Typo", "MoFu")  # a recipients file's typo
    good = [r for r in recipients if r.scope in ("MoFu", "VIP")]
    summary = _run(
        reader,
        [bounced, *good[:1], flaky, no_address, *good[1:]],
        daily,
        mail_settings,
        employees_dsn,
        with_pdf=False,
    )
    status = {o.recipient.email: o for o in summary.outcomes}
    assert (
        status["nobody@bounce.invalid"].status == "bounced" and status["nobody@bounce.invalid"].attempts == 1
    )
    assert "550" in status["nobody@bounce.invalid"].error
    assert (
        status["busy@tempfail.invalid"].status == "failed" and status["busy@tempfail.invalid"].attempts == 3
    )
    assert "451" in status["busy@tempfail.invalid"].error
    assert (status[no_address.email].status, status[no_address.email].attempts) == ("failed", 0)
    assert "not an e-mail address" in status[no_address.email].error
    for recipient in good:
        assert status[recipient.email].status == "sent"
        assert messages_to(smtp_sink["outbox"], recipient.email)
    assert {o.recipient.email for o in summary.failed} == {
        "nobody@bounce.invalid",
        "busy@tempfail.invalid",
        no_address.email,
    }
    # What a retry cannot cure is recorded as permanent (the redelivery sensor leaves it alone)
    ledger_rows = {row["recipient"]: row for row in Ledger(employees_dsn).deliveries(daily)}
    assert {
        email: (row["status"], row["permanent"])
        for email, row in ledger_rows.items()
        if row["status"] != "sent"
    } == {
        "nobody@bounce.invalid": ("bounced", True),
        "busy@tempfail.invalid": ("failed", False),  # the sensor tries again
        no_address.email: ("failed", True),
    }
    assert [o.permanent for o in summary.failed] == [True, False, True]
    # failures are retried by the next run; what was sent is not
    again = _run(reader, [bounced, good[0]], daily, mail_settings, employees_dsn, with_pdf=False)
    assert {o.recipient.email: o.status for o in again.outcomes} == {
        bounced.email: "bounced",
        good[0].email: "skipped",
    }


# Addresses whose local part is not ASCII: only a server offering SMTPUTF8 (RFC 6531) takes them.
INTERNATIONAL = (
    Recipient("josé@example.com", "José", "all"),
    Recipient("张三@例子.中国", "张三", "ToFu"),
)
# ... as the envelope and the To header carry them: an internationalised domain in its IDNA form
ON_THE_WIRE = ("josé@example.com", "张三@xn--fsqu00a.xn--fiqs8s")


def test_non_ascii_addresses_are_mailed_with_smtputf8(reader, employees_dsn, mail_settings, smtp_sink, daily):
    """The local sink offers SMTPUTF8, as production relays do: the reports go out, envelope and To
    header in UTF-8 (RFC 6532), and the ledger has them as sent."""
    summary = _run(reader, list(INTERNATIONAL), daily, mail_settings, employees_dsn, with_pdf=False)
    assert [(o.status, o.error) for o in summary.outcomes] == [("sent", None)] * 2
    for recipient, address in zip(INTERNATIONAL, ON_THE_WIRE, strict=True):
        [raw] = raw_messages_to(smtp_sink["outbox"], address)
        assert f"To: {recipient.name} <{address}>\r\n".encode() in raw
    ledger_rows = {row["recipient"]: row["status"] for row in Ledger(employees_dsn).deliveries(daily)}
    assert ledger_rows == {r.email: "sent" for r in INTERNATIONAL}


def test_without_smtputf8_a_non_ascii_address_fails_alone_and_is_recorded(
    reader, recipients, employees_dsn, ascii_only_sink, daily
):
    """A server without SMTPUTF8: each such address fails at once with its reason, in the ledger too,
    and everyone after it is mailed, an internationalised domain (in its xn-- form) included."""
    settings, outbox = ascii_only_sink
    idn_domain = Recipient("boss@例子.中国", "Boss", "VIP")
    good = [next(r for r in recipients if r.scope == scope) for scope in ("all", "ToFu")]
    summary = _run(
        reader, [*INTERNATIONAL, idn_domain, *good], daily, settings, employees_dsn, with_pdf=False
    )
    status = {o.recipient.email: o for o in summary.outcomes}
    ledger_rows = {row["recipient"]: row for row in Ledger(employees_dsn).deliveries(daily)}
    for recipient, address in zip(INTERNATIONAL, ON_THE_WIRE, strict=True):
        outcome = status[recipient.email]
        assert (outcome.status, outcome.attempts) == ("failed", 1)  # no retry: it would not change
        assert recipient.email in outcome.error and "SMTPUTF8" in outcome.error
        row = ledger_rows[recipient.email]
        # permanent: nor would the redelivery sensor's runs change it
        assert (row["status"], row["error"], row["permanent"]) == ("failed", outcome.error, True)
        assert not raw_messages_to(outbox, address)
    assert {o.recipient.email for o in summary.failed} == {r.email for r in INTERNATIONAL}
    assert status[idn_domain.email].status == "sent"
    [raw] = raw_messages_to(outbox, "boss@xn--fsqu00a.xn--fiqs8s")
    headers = raw.partition(b"\r\n\r\n")[0]
    assert b"To: Boss <boss@xn--fsqu00a.xn--fiqs8s>\r\n" in headers and headers.isascii()
    for recipient in good:
        assert status[recipient.email].status == "sent"
        assert messages_to(outbox, recipient.email)


def test_writing_reports_names_an_address_that_cannot_be_mailed(reader, recipients, daily, tmp_path):
    """Without sending (``funnelhouse report`` without --send) every report is still written, and the
    recipient it could not be mailed to is named with the reason; one whose local part is not ASCII
    may be mailed (that depends on the server)."""
    no_domain = Recipient("boss@例子..中国", "Boss", "all")  # an empty label: no IDNA form
    good = next(r for r in recipients if r.scope == "ToFu")
    summary = pipeline.produce_reports(
        daily, [no_domain, *INTERNATIONAL, good], reader, sender=SENDER, out_dir=tmp_path, with_pdf=False
    )
    status = {o.recipient.email: o for o in summary.outcomes}
    assert [status[r.email].status for r in (no_domain, *INTERNATIONAL, good)] == ["written"] * 4
    assert "not a valid internationalised domain name" in status[no_domain.email].error
    assert [status[r.email].error for r in (*INTERNATIONAL, good)] == [None] * 3
    assert set(summary.files) == {summary.reports[key].slug for key in (("all", "zh"), ("ToFu", "zh"))}
    assert all(path.exists() for path in summary.files.values())
    # the sample message of the whole-company report is the first one that can be built: José's
    sample = summary.files[summary.reports[("all", "zh")].slug].with_name("message.eml")
    assert "<josé@example.com>".encode() in sample.read_bytes()


def test_ledger_refuses_two_claims_at_once(employees_dsn, daily):
    ledger = Ledger(employees_dsn)
    assert ledger.claim("a@example.com", daily, "all", "zh") is True
    assert ledger.claim("a@example.com", daily, "all", "zh") is False  # in flight elsewhere
    with psycopg.connect(employees_dsn) as conn, pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute(
            """INSERT INTO funnelhouse.report_deliveries (recipient, period_kind, period_start, scope,
                        language, status) VALUES ('a@example.com', 'daily', %s, 'all', 'zh', 'failed')""",
            (daily.start,),
        )


@pytest.fixture
def secure_sink(service_dirs):
    """A second sink that offers STARTTLS (self-signed certificate) and requires AUTH, like a real relay."""
    home = service_dirs("secure-smtp")
    cert, key, password_file = home / "cert.pem", home / "key.pem", home / "password"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    password_file.write_text("s3cret-pass")
    info = smtp.start(
        home,
        extra_arguments=(
            "--tls-cert",
            str(cert),
            "--tls-key",
            str(key),
            "--auth-user",
            "reporter",
            "--auth-password-file",
            str(password_file),
        ),
    )
    yield info, cert
    smtp.stop(home)


def test_starttls_and_auth_against_a_real_server(secure_sink, reader, daily, monkeypatch):
    info, cert = secure_sink
    monkeypatch.setenv(
        "SSL_CERT_FILE", str(cert)
    )  # trust the self-signed certificate, as a company CA would be
    report = render.render(content.gather(reader, "VIP", daily), "en", with_pdf=False)
    recipient = Recipient("vip.lead@example.com", "VIP lead", "VIP", "en")
    message = mail.build_message(report, recipient, SENDER)
    settings = SmtpSettings(
        host="localhost",
        port=info["port"],
        sender=SENDER,
        username="reporter",
        password="s3cret-pass",
        starttls=True,
    )
    assert delivery.deliver(settings, message, recipient.email, FAST_RETRY).status == "sent"
    assert messages_to(info["outbox"], recipient.email)

    wrong = SmtpSettings(
        host="localhost",
        port=info["port"],
        sender=SENDER,
        username="reporter",
        password="nope",
        starttls=True,
    )
    result = delivery.deliver(wrong, message, recipient.email, FAST_RETRY)
    assert result.status == "failed" and result.attempts == 1 and "Authentication" in result.error


def test_a_delivered_report_is_not_sent_again_when_the_ledger_write_fails(
    reader, employees_dsn, mail_settings, smtp_sink, daily
):
    """The server accepted the mail, then recording it failed: the outcome is still 'sent', and
    the claim left behind keeps the next run from mailing the report a second time."""
    recipient = Recipient("ledger.hiccup@example.com", "Hiccup", "BoFu")
    with psycopg.connect(employees_dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION refuse_update() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'ledger unavailable'; END $$"
        )
        conn.execute(
            "CREATE TRIGGER ledger_hiccup BEFORE UPDATE ON funnelhouse.report_deliveries "
            "FOR EACH ROW WHEN (NEW.status = 'sent') EXECUTE FUNCTION refuse_update()"
        )
    first = _run(reader, [recipient], daily, mail_settings, employees_dsn, with_pdf=False)
    assert [o.status for o in first.outcomes] == ["sent"]
    [row] = Ledger(employees_dsn).deliveries(daily)
    assert row["status"] == "sending"  # what the failed write left

    with psycopg.connect(employees_dsn, autocommit=True) as conn:
        conn.execute("DROP TRIGGER ledger_hiccup ON funnelhouse.report_deliveries")
    again = _run(reader, [recipient], daily, mail_settings, employees_dsn, with_pdf=False)
    assert [o.status for o in again.outcomes] == ["skipped"]
    assert len(messages_to(smtp_sink["outbox"], recipient.email)) == 1


class _GrumblingQuit(smtp.OutboxHandler):
    """The sink's handler, answering QUIT with 421 instead of 221 (a relay closing down)."""

    async def handle_QUIT(self, server, session, envelope):  # noqa: N802
        return "421 4.4.2 closing connection"


@pytest.fixture
def grumbling_sink(service_dirs):
    outbox = service_dirs("grumbling-smtp")
    with sink_in_this_process(outbox, _GrumblingQuit) as settings:
        yield settings, outbox


def test_an_odd_reply_to_quit_after_the_message_was_accepted_is_no_failure(grumbling_sink):
    settings, outbox = grumbling_sink
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = SENDER, "quit@example.com", "report"
    message["Message-ID"] = make_msgid()
    message.set_content("numbers")
    result = delivery.deliver(settings, message, "quit@example.com", FAST_RETRY)
    assert (result.status, result.attempts, result.error) == ("sent", 1, None)
    assert len(messages_to(outbox, "quit@example.com")) == 1  # not re-sent by a retry


def test_the_failure_alert_mail_verifies_the_relay_certificate(secure_sink, monkeypatch):
    """The warehouse run-failure alert logs in with the relay password only over verified TLS."""
    from orchestration.defs.warehouse.sensors import AlertNotDelivered, _notify

    info, cert = secure_sink
    monkeypatch.setenv("FUNNELHOUSE_ALERT_EMAIL", "oncall@example.com")
    monkeypatch.setenv("FUNNELHOUSE_SMTP_URL", f"smtp://reporter:s3cret-pass@localhost:{info['port']}")
    with pytest.raises(AlertNotDelivered, match="SSLCertVerificationError"):  # self-signed, untrusted
        _notify("[funnelhouse] job failed", "details")
    assert not messages_to(info["outbox"], "oncall@example.com")

    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    assert _notify("[funnelhouse] job failed", "details") is True
    assert messages_to(info["outbox"], "oncall@example.com")


def test_a_sink_that_never_answers_is_stopped_and_not_recorded_as_started(tmp_path, monkeypatch):
    """`funnelhouse up` must fail, not record a dying sink as running (mail would fail much later)."""
    monkeypatch.setattr(smtp, "START_TIMEOUT", 1.0)
    monkeypatch.setattr(smtp, "_answers", lambda host, port: False)  # the sink starts, nobody hears it
    with pytest.raises(RuntimeError, match="no answer within 1.0 s"):
        smtp.start(tmp_path)
    assert smtp.status(tmp_path) is None and "smtp" not in smtp.state.read_services(tmp_path)
