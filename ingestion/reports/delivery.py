"""SMTP delivery of one message to one recipient, with retries for what may pass on a second try.

A permanent refusal of the recipient (5xx to RCPT TO, or to the message: no such mailbox, policy) is
a bounce and is not retried; a temporary one (4xx, dropped connection, timeout) is retried with
exponential back-off. A 5xx before any recipient (to the connection, EHLO, STARTTLS or MAIL FROM:
sender refused, "STARTTLS required", authentication required) is no bounce: it says the relay's or
the sender's configuration is wrong, fails the delivery without a retry in this run, and leaves it
to the redelivery sensor, which succeeds once the configuration is fixed. Nothing here raises: the
caller gets a result per recipient, so one bad address never stops the others. A result says
whether it is ``permanent``: a bounce, or a failure no later try changes either (a relay without
SMTPUTF8 for a non-ASCII local part); the ledger keeps that, so the redelivery sensor leaves it alone.

One failure is neither: the connection lost once the message was being handed over (after the
server's 354 to DATA), before the server answered it. SMTP cannot tell whether the server had taken
the message (RFC 5321 6.1 warns of exactly this duplicate), so the outcome is 'unknown' and it is
not retried: a report possibly delivered twice is worse than one someone has to re-send by hand
(``funnelhouse report --resend``). Lost before that 354, nothing was handed over: an ordinary
failure, retried.
"""

from __future__ import annotations

import contextlib
import random
import re
import smtplib
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage

from ingestion.reports import addresses

SENT, BOUNCED, FAILED, SKIPPED, UNKNOWN = "sent", "bounced", "failed", "skipped", "unknown"
# Not an outcome of this run: an earlier one's delivery is 'unknown', and stays so until someone decides.
AWAITING_DECISION = "awaiting_decision"
# Nor this: another run holds the delivery's claim and had not begun handing the message over.
IN_PROGRESS = "in_progress"


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    first_delay: float = 2.0  # seconds; doubled after each failed attempt (2, 4, 8 ...)
    max_delay: float = 60.0
    timeout: float = 30.0  # per SMTP command

    def delay(self, attempt: int) -> float:
        base = min(self.first_delay * 2 ** (attempt - 1), self.max_delay)
        return base * random.uniform(0.8, 1.2)  # jitter: schedules do not retry in lockstep


DEFAULT_RETRY = RetryPolicy()


@dataclass(frozen=True)
class DeliveryResult:
    recipient: str
    status: str
    attempts: int
    message_id: str | None = None
    error: str | None = None
    size_bytes: int | None = None
    # True when trying again cannot help until someone changes the address or the relay
    permanent: bool = False


def _configuration(error: str) -> str:
    return (
        f"{error}: the SMTP server refused the connection or the sender, not this recipient (the "
        "relay's or the sender's configuration: FUNNELHOUSE_SMTP_*); tried again once that is fixed"
    )


def _smtp_code(error: Exception) -> int | None:
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in error.recipients.values()]
        return max(codes) if codes else None
    return getattr(error, "smtp_code", None)


def _describe(error: Exception) -> str:
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return "; ".join(
            f"{rcpt}: {code} {text.decode(errors='replace') if isinstance(text, bytes) else text}"
            for rcpt, (code, text) in error.recipients.items()
        )
    return f"{type(error).__name__}: {error}"


class OutcomeUnknown(Exception):
    """The connection was lost after the message was handed over: it may or may not have arrived."""


class SmtpUtf8NotOffered(smtplib.SMTPException):
    """The recipient's local part is not ASCII and the server does not offer SMTPUTF8: no retry
    changes that."""


def _open(settings, timeout: float) -> smtplib.SMTP:
    """A session with ``settings``' server, greeted (EHLO), secured and logged in as they say."""
    context = ssl.create_default_context()
    if settings.implicit_tls:
        client = smtplib.SMTP_SSL(settings.host, settings.port, timeout=timeout, context=context)
    else:
        client = smtplib.SMTP(settings.host, settings.port, timeout=timeout)
    try:
        client.ehlo()
        if settings.starttls:
            client.starttls(context=context)
            client.ehlo()  # what the server offers may change once the session is encrypted
        if settings.username:
            client.login(settings.username, settings.password or "")
    except BaseException:
        client.close()
        raise
    return client


def _close(client: smtplib.SMTP) -> None:
    # Not ``with client``: its exit raises on a QUIT answered with anything but 221, and once the
    # server accepted the message, a retry would deliver it twice.
    with contextlib.suppress(smtplib.SMTPException, OSError):
        client.quit()
    client.close()


def offers_smtputf8(settings, timeout: float = DEFAULT_RETRY.timeout) -> bool | None:
    """Whether ``settings``' server offers SMTPUTF8; None if it cannot be asked now (unreachable,
    refusing the login): the delivery then says what is wrong."""
    try:
        client = _open(settings, timeout)
    except (smtplib.SMTPException, OSError):
        return None
    try:
        return client.has_extn("smtputf8")
    finally:
        _close(client)


def _mail_options(client: smtplib.SMTP, message: bytes, recipient: str) -> list[str]:
    options = [f"SIZE={len(message)}"] if client.has_extn("size") else []  # too large: refused now
    if addresses.needs_smtputf8(recipient):
        if not client.has_extn("smtputf8"):
            raise SmtpUtf8NotOffered(f"{recipient!r}: {addresses.SMTPUTF8_NOT_OFFERED}")
        options += ["SMTPUTF8", "BODY=8BITMIME"]  # as smtplib's send_message does (RFC 6531)
    return options


# 552 to MAIL FROM (RFC 1870: the SIZE we declare exceeds the server's limit) refuses the message, not
# the sender: the same report is refused on every try, as a refusal at DATA would be.
_MESSAGE_TOO_LARGE = 552


def _refuses_the_recipient(error: Exception) -> bool:
    """Whether a 5xx ``error`` is this recipient's refusal (RCPT TO, or the message for them) rather
    than the server's refusal of the connection or the sender, which a fixed configuration cures."""
    if isinstance(error, smtplib.SMTPSenderRefused) and error.smtp_code == _MESSAGE_TOO_LARGE:
        return True
    return isinstance(error, (smtplib.SMTPRecipientsRefused, smtplib.SMTPDataError))


_LINE_STARTING_WITH_A_DOT = re.compile(rb"(?m)^\.")


def _hand_over(client: smtplib.SMTP, message: bytes) -> tuple[int, bytes]:
    """``client.data(message)`` in its two steps, so that a connection lost before the server's 354
    (nothing handed over: raised as it is, retried) is told apart from one lost once the body began
    (``OutcomeUnknown``). The body goes as smtplib's ``data`` sends it: dot-stuffed, then CRLF.CRLF."""
    code, reply = client.docmd("DATA")
    if code != 354:
        raise smtplib.SMTPDataError(code, reply)
    body = _LINE_STARTING_WITH_A_DOT.sub(b"..", message)  # RFC 5321 4.5.2 transparency, as data() does
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    try:
        client.send(body + b".\r\n")
        return client.getreply()
    except OSError as error:  # disconnected, timed out: perhaps after the server took it
        raise OutcomeUnknown(
            f"connection lost after the message was handed over ({_describe(error)}): it may have "
            "been delivered; not sent again automatically (check, then resend by hand)"
        ) from error


def _send_once(settings, message: bytes, recipient: str, timeout: float, before_data) -> None:
    client = _open(settings, timeout)
    try:
        # sendmail's steps, each refusal raised as sendmail raises it
        options = _mail_options(client, message, recipient)
        code, reply = client.mail(settings.sender, options)
        if code != 250:
            raise smtplib.SMTPSenderRefused(code, reply, settings.sender)
        envelope_recipient = addresses.ascii_domain(recipient)
        code, reply = client.rcpt(envelope_recipient)
        if code not in (250, 251):
            raise smtplib.SMTPRecipientsRefused({envelope_recipient: (code, reply)})
        before_data()
        code, reply = _hand_over(client, message)
        if code != 250:
            raise smtplib.SMTPDataError(code, reply)
    finally:
        _close(client)


def deliver(
    settings,
    message: EmailMessage,
    recipient: str,
    policy: RetryPolicy = DEFAULT_RETRY,
    sleep=time.sleep,
    before_data=lambda: None,
) -> DeliveryResult:
    """Send ``message`` to ``recipient`` (the envelope recipient) through ``settings`` (SmtpSettings).
    ``before_data`` is called before each attempt hands the message over (the ledger notes it: a run
    that dies after that leaves an outcome nobody knows); if it raises, nothing is handed over."""
    flattened = message.as_bytes()  # once: flattening a 600 kB message is not free
    size = len(flattened)
    last_error = "not attempted"
    for attempt in range(1, policy.attempts + 1):
        try:
            _send_once(settings, flattened, recipient, policy.timeout, before_data)
            return DeliveryResult(recipient, SENT, attempt, message["Message-ID"], None, size)
        except OutcomeUnknown as error:  # the Message-ID: what to look for in the relay's log
            return DeliveryResult(recipient, UNKNOWN, attempt, message["Message-ID"], str(error), size)
        except SmtpUtf8NotOffered as error:  # this relay never takes this address
            return DeliveryResult(recipient, FAILED, attempt, None, _describe(error), size, permanent=True)
        except smtplib.SMTPAuthenticationError as error:  # not now; fixed settings make it pass later
            return DeliveryResult(recipient, FAILED, attempt, None, _describe(error), size)
        except (smtplib.SMTPException, OSError) as error:
            last_error = _describe(error)
            code = _smtp_code(error)
            if code is not None and 500 <= code < 600:
                if _refuses_the_recipient(error):
                    return DeliveryResult(recipient, BOUNCED, attempt, None, last_error, size, permanent=True)
                # the same answer on every try until someone changes the relay or the sender
                return DeliveryResult(recipient, FAILED, attempt, None, _configuration(last_error), size)
            if isinstance(error, ssl.SSLCertVerificationError):
                return DeliveryResult(recipient, FAILED, attempt, None, last_error, size)
        if attempt < policy.attempts:
            sleep(policy.delay(attempt))
    return DeliveryResult(recipient, FAILED, policy.attempts, None, last_error, size)
