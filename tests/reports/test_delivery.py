"""Reports reach a real SMTP server as valid MIME, once per recipient and period, and one refused
address (a real 550 / 451 from the sink) never stops the others."""

from __future__ import annotations

import contextlib
import dataclasses
import email.policy
import socketserver
import subprocess
import threading
from email.message import EmailMessage
from email.utils import make_msgid

import psycopg
import pytest

from devstack import smtp
from ingestion.reports import content, delivery, mail, pipeline, render
from ingestion.reports.ledger import Ledger
from ingestion.reports.periods import Period
from ingestion.reports.recipients import LANGUAGES, Recipient, valid_scopes
from orchestration.environment import SmtpSettings
from tests.reports.conftest import REPORT_DAY, messages_to, raw_messages_to, sink_in_this_process
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


def _leaves(part) -> list:
    return [leaf for child in part.iter_parts() for leaf in _leaves(child)] if part.is_multipart() else [part]


def test_a_chinese_report_arrives_7bit_clean_with_its_subject_and_csv_intact(
    reader, recipients, employees_dsn, mail_settings, smtp_sink
):
    """The weekly whole-company report in Chinese, to an ASCII address (no SMTPUTF8, so no
    BODY=8BITMIME declared): every byte is 7-bit (RFC 6152 forbids undeclared 8-bit content), the
    Subject decodes back to the report's, space for space, and the CSV is the rendered file byte for
    byte (its BOM, its CRLF line ends)."""
    admin = next(r for r in recipients if r.scope == "all")
    summary = _run(
        reader, [admin], Period.weekly(REPORT_DAY), mail_settings, employees_dsn, with_pdf=False, resend=True
    )
    [outcome] = summary.outcomes
    assert outcome.status == "sent", outcome.error
    report = summary.reports[("all", "zh")]
    [raw] = [
        raw
        for raw in raw_messages_to(smtp_sink["outbox"], admin.email)
        if email.message_from_bytes(raw, policy=email.policy.default)["Message-ID"].strip()
        == outcome.message_id
    ]
    assert raw.isascii() and max(len(line) for line in raw.split(b"\r\n")) <= 998
    received = email.message_from_bytes(raw, policy=email.policy.default)
    assert str(received["Subject"]) == report.subject and "全公司 · 2026-11-23 – 2026-11-29" in report.subject
    assert {leaf["Content-Transfer-Encoding"] for leaf in _leaves(received)} <= {
        "7bit",
        "quoted-printable",
        "base64",
    }
    [csv_part] = [leaf for leaf in _leaves(received) if leaf.get_content_type() == "text/csv"]
    assert csv_part["Content-Transfer-Encoding"] == "base64" and csv_part.get_content_charset() == "utf-8"
    assert csv_part.get_filename() == mail.attachment_name(report, "csv", "leaderboard")
    assert csv_part.get_payload(decode=True) == report.leaderboard_csv
    assert report.leaderboard_csv.startswith(b"\xef\xbb\xbf") and b"\r\n" in report.leaderboard_csv
    text = received.get_body(("plain",)).get_content()  # Chinese, as quoted-printable or base64
    assert text.splitlines() == report.text.splitlines() and not text.isascii()


@pytest.fixture(scope="module")
def weekly_company_report(reader):
    """(content, its Chinese rendering without PDF) of the weekly whole-company report."""
    gathered = content.gather(reader, "all", Period.weekly(REPORT_DAY))
    return gathered, render.render(gathered, "zh", with_pdf=False)


def test_every_subject_decodes_back_exactly(weekly_company_report):
    """Long non-ASCII subjects are folded across lines: for every scope, period, language and
    preliminary mark, the Subject of the message as sent decodes back to the report's subject."""
    gathered, report = weekly_company_report
    weekly = gathered.period
    checked = set()
    for scope in valid_scopes():
        for period in (weekly, Period.daily(REPORT_DAY)):
            for language in LANGUAGES:
                for preliminary in (False, True):
                    variant = dataclasses.replace(
                        gathered, scope=scope, period=period, preliminary=preliminary
                    )
                    subject = render.subject(variant, language)
                    for recipient in (Recipient("boss@example.com", "老板", scope), INTERNATIONAL[0]):
                        message = mail.build_message(
                            dataclasses.replace(report, subject=subject), recipient, SENDER
                        )
                        raw = message.as_bytes()
                        # a UTF-8 header (SMTPUTF8) is parsed from text: the byte parser does not decode it
                        parsed = email.message_from_string(raw.decode("utf-8"), policy=email.policy.default)
                        assert str(parsed["Subject"]) == subject, raw.partition(b"\r\n\r\n")[0]
                        assert max(len(line) for line in raw.split(b"\r\n")) <= 998
                    checked.add(subject)
    assert len(checked) == len(valid_scopes()) * 2 * len(LANGUAGES) * 2


def test_short_chinese_text_is_not_sent_as_8bit(weekly_company_report):
    """Text parts whose lines all fit in 78 characters were left 8-bit by the email package (SMTP
    policy): without SMTPUTF8 nothing declares BODY=8BITMIME, so the message must be 7-bit."""
    _, report = weekly_company_report
    short = dataclasses.replace(report, text="全公司 · 简报\n", html="<p>全公司 · 简报</p>\n")
    raw = mail.build_message(short, Recipient("boss@example.com", "老板", "all"), SENDER).as_bytes()
    assert raw.isascii()
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed.get_body(("plain",)).get_content().splitlines() == ["全公司 · 简报"]
    assert parsed.get_body(("html",)).get_content().splitlines() == ["<p>全公司 · 简报</p>"]


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


def _plain_message(to: str, text: str = "numbers") -> EmailMessage:
    message = EmailMessage(policy=email.policy.SMTP)  # CRLF line ends, as report mails have
    message["From"], message["To"], message["Subject"] = SENDER, to, "report"
    message["Message-ID"] = make_msgid()
    message.set_content(text)
    return message


def test_an_odd_reply_to_quit_after_the_message_was_accepted_is_no_failure(grumbling_sink):
    settings, outbox = grumbling_sink
    result = delivery.deliver(settings, _plain_message("quit@example.com"), "quit@example.com", FAST_RETRY)
    assert (result.status, result.attempts, result.error) == ("sent", 1, None)
    assert len(messages_to(outbox, "quit@example.com")) == 1  # not re-sent by a retry


def test_the_failure_alert_mail_verifies_the_relay_certificate(secure_sink, monkeypatch):
    """The warehouse run-failure alert logs in with the relay password only over verified TLS."""
    from orchestration.alerts.delivery import AlertNotDelivered, _notify

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
    monkeypatch.setattr(smtp, "_answers", lambda *_: False)  # the sink starts, nobody hears it
    with pytest.raises(RuntimeError, match="no answer within 1.0 s"):
        smtp.start(tmp_path)
    assert smtp.status(tmp_path) is None and "smtp" not in smtp.state.read_services(tmp_path)


def test_a_sink_whose_port_another_server_took_first_starts_on_another_port(tmp_path, monkeypatch):
    """A port found free can be taken before the sink binds it (two stacks, or two test workers, starting
    sinks at the same moment): the answer of the server that took it is not the sink coming up. Before,
    the sink was recorded on that port while it had exited, and every mail went to the other server."""
    with sink_in_this_process(tmp_path / "other") as other:
        ports = iter([other.port, smtp.state.free_port(smtp.DEFAULT_PORT, smtp.HOST)])
        monkeypatch.setattr(smtp.state, "free_port", lambda *_: next(ports))
        info = smtp.start(tmp_path / "stack")
        try:
            assert info["port"] != other.port
            assert smtp.state.pid_alive(info["pid"]) and smtp.status(tmp_path / "stack") == info
        finally:
            smtp.stop(tmp_path / "stack")


def test_a_report_mail_says_mime_version_once_at_its_top(reader, daily):
    """RFC 2045: the top level of a MIME message carries MIME-Version (make_related/add_attachment
    only gave it to the subparts), once."""
    report = render.render(content.gather(reader, "VIP", daily), "en", with_pdf=False)
    message = mail.build_message(report, Recipient("vip.lead@example.com", "VIP lead", "VIP", "en"), SENDER)
    assert message.get_all("MIME-Version") == ["1.0"]
    top = message.as_bytes().partition(b"\r\n\r\n")[0].split(b"\r\n")
    assert top.count(b"MIME-Version: 1.0") == 1


class _ScriptedRelay(socketserver.ThreadingTCPServer):
    """A minimal SMTP server on a real socket: greets with ``greeting``, answers MAIL FROM with
    ``mail_from``, closes the connection on the next ``drops_at_data`` DATA commands before its 354,
    and keeps the (dot-stuffed) body of every message it accepts in ``messages``."""

    daemon_threads = True

    def __init__(self, greeting=b"220 relay", mail_from=b"250 ok", drops_at_data=0):
        super().__init__(("127.0.0.1", 0), _ScriptedSession)
        self.greeting, self.mail_from, self.drops_at_data = greeting, mail_from, drops_at_data
        self.messages: list[bytes] = []


class _ScriptedSession(socketserver.StreamRequestHandler):
    def handle(self):
        relay = self.server
        self.wfile.write(relay.greeting + b"\r\n")
        for line in self.rfile:
            verb = line[:4].upper()
            if verb == b"MAIL":
                reply = relay.mail_from
            elif verb == b"DATA":
                if relay.drops_at_data > 0:
                    relay.drops_at_data -= 1
                    return  # the connection closes before the 354: nothing was handed over
                self.wfile.write(b"354 go ahead\r\n")
                body = b"".join(iter(self.rfile.readline, b".\r\n"))
                relay.messages.append(body)
                reply = b"250 queued"
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:  # EHLO (no extensions), RCPT TO, RSET, NOOP
                reply = b"250 ok"
            self.wfile.write(reply + b"\r\n")


@contextlib.contextmanager
def _scripted_relay(**behaviour):
    """(relay, the settings to send through it), served from a thread while the block runs."""
    relay = _ScriptedRelay(**behaviour)
    thread = threading.Thread(target=relay.serve_forever, daemon=True)
    thread.start()
    try:
        yield relay, SmtpSettings(host="127.0.0.1", port=relay.server_address[1], sender=SENDER)
    finally:
        relay.shutdown()
        relay.server_close()
        thread.join()


def test_a_connection_lost_before_the_servers_354_is_retried_not_an_unknown_outcome():
    """Dropped on DATA before the server's 354: nothing was handed over, so it is an ordinary failure,
    tried again (and sent, dot-stuffed as smtplib's data() sends it), never 'may have been delivered'."""
    with _scripted_relay(drops_at_data=1) as (relay, settings):
        message = _plain_message("drop@example.com", "numbers\n.a line that starts with a dot\n")
        result = delivery.deliver(settings, message, "drop@example.com", FAST_RETRY)
        assert (result.status, result.attempts, result.error) == ("sent", 2, None)
        [body] = relay.messages
        assert body.endswith(b"\r\nnumbers\r\n..a line that starts with a dot\r\n")
    with _scripted_relay(drops_at_data=FAST_RETRY.attempts) as (relay, settings):
        result = delivery.deliver(
            settings, _plain_message("drop@example.com"), "drop@example.com", FAST_RETRY
        )
    assert (result.status, result.attempts, result.permanent) == ("failed", FAST_RETRY.attempts, False)
    assert "may have been delivered" not in result.error and not relay.messages


@pytest.mark.parametrize(
    "behaviour",
    [
        {"greeting": b"554 5.7.1 no service for you"},
        {"mail_from": b"530 5.7.0 Must issue a STARTTLS command first"},
    ],
    ids=["connection", "mail-from"],
)
def test_a_refused_connection_or_sender_is_a_configuration_failure_not_a_bounce(behaviour):
    """A 5xx before any recipient says the relay or the sender is misconfigured: no bounce (which the
    redelivery sensor never retries), a failure retried once the configuration is fixed."""
    with _scripted_relay(**behaviour) as (relay, settings):
        result = delivery.deliver(
            settings, _plain_message("boss@example.com"), "boss@example.com", FAST_RETRY
        )
    assert (result.status, result.attempts, result.permanent) == ("failed", 1, False)
    [refusal] = behaviour.values()
    assert refusal[:3].decode() in result.error and "configuration" in result.error
    assert not relay.messages


def test_a_message_too_large_for_the_relay_is_a_bounce_not_a_configuration_failure():
    """552 to MAIL FROM (the SIZE declared is over the relay's limit) refuses this message: the same
    report is refused on every try, so it is a permanent bounce, not a failure blamed on the settings."""
    with _scripted_relay(mail_from=b"552 5.3.4 Message size exceeds fixed limit") as (relay, settings):
        result = delivery.deliver(
            settings, _plain_message("boss@example.com"), "boss@example.com", FAST_RETRY
        )
    assert (result.status, result.permanent) == ("bounced", True)
    assert "552" in result.error and "configuration" not in result.error
    assert not relay.messages


def test_a_failure_alert_lost_before_the_servers_354_is_retried(monkeypatch):
    """The run-failure alert goes through the same delivery: a drop before the 354 is retried (and
    reported as retryable, not as possibly delivered, when every try drops)."""
    from orchestration.alerts.delivery import AlertNotDelivered, _notify

    monkeypatch.setenv("FUNNELHOUSE_ALERT_EMAIL", "oncall@example.com")
    monkeypatch.setenv("FUNNELHOUSE_SMTP_STARTTLS", "0")
    with _scripted_relay(drops_at_data=99) as (relay, settings):
        monkeypatch.setenv("FUNNELHOUSE_SMTP_URL", f"smtp://{settings.host}:{settings.port}")
        with pytest.raises(AlertNotDelivered) as raised:
            _notify("[funnelhouse] job failed", "details")
        assert raised.value.retryable and not raised.value.may_have_arrived
        relay.drops_at_data = 1
        assert _notify("[funnelhouse] job failed", "details") is True
        assert len(relay.messages) == 1
