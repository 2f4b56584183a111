"""SMTP delivery of one message to one recipient, with retries for what may pass on a second try.

A permanent refusal (5xx: no such mailbox, policy) is a bounce and is not retried; a temporary one
(4xx, dropped connection, timeout) is retried with exponential back-off. Nothing here raises: the
caller gets a result per recipient, so one bad address never stops the others.
"""

from __future__ import annotations

import contextlib
import random
import smtplib
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage

SENT, BOUNCED, FAILED, SKIPPED = "sent", "bounced", "failed", "skipped"


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


def _send_once(settings, message: bytes, recipient: str, timeout: float) -> None:
    context = ssl.create_default_context()
    if settings.implicit_tls:
        client = smtplib.SMTP_SSL(settings.host, settings.port, timeout=timeout, context=context)
    else:
        client = smtplib.SMTP(settings.host, settings.port, timeout=timeout)
    try:
        client.ehlo()
        if settings.starttls:
            client.starttls(context=context)
            client.ehlo()
        if settings.username:
            client.login(settings.username, settings.password or "")
        client.sendmail(settings.sender, [recipient], message)
    finally:
        # Not ``with client``: its exit raises on a QUIT answered with anything but 221, and once
        # sendmail returned the server has the message, so a retry would deliver it twice.
        with contextlib.suppress(smtplib.SMTPException, OSError):
            client.quit()
        client.close()


def deliver(
    settings, message: EmailMessage, recipient: str, policy: RetryPolicy = DEFAULT_RETRY, sleep=time.sleep
) -> DeliveryResult:
    """Send ``message`` to ``recipient`` (the envelope recipient) through ``settings`` (SmtpSettings)."""
    flattened = message.as_bytes()  # once: flattening a 600 kB message is not free
    size = len(flattened)
    last_error = "not attempted"
    for attempt in range(1, policy.attempts + 1):
        try:
            _send_once(settings, flattened, recipient, policy.timeout)
            return DeliveryResult(recipient, SENT, attempt, message["Message-ID"], None, size)
        except smtplib.SMTPAuthenticationError as error:  # wrong credentials do not fix themselves
            return DeliveryResult(recipient, FAILED, attempt, None, _describe(error), size)
        except (smtplib.SMTPException, OSError) as error:
            last_error = _describe(error)
            code = _smtp_code(error)
            if code is not None and 500 <= code < 600:
                return DeliveryResult(recipient, BOUNCED, attempt, None, last_error, size)
            if isinstance(error, ssl.SSLCertVerificationError):
                return DeliveryResult(recipient, FAILED, attempt, None, last_error, size)
        if attempt < policy.attempts:
            sleep(policy.delay(attempt))
    return DeliveryResult(recipient, FAILED, policy.attempts, None, last_error, size)
