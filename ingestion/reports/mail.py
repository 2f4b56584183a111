"""The MIME message of one report for one recipient.

multipart/mixed
  multipart/related
    multipart/alternative
      text/plain        (for clients that show no HTML, and for spam filters)
      text/html         (images referenced as cid:...)
    image/png ...       (inline, Content-ID = what the HTML's cid: URLs name)
  application/pdf       (the same report, printable)
  text/csv              (the full leaderboard)

Every body part is 7-bit (quoted-printable or base64): the relay is told BODY=8BITMIME only with
SMTPUTF8 (RFC 6152 forbids 8-bit content it was not told of).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8
from email.utils import format_datetime, formataddr, make_msgid

from ingestion.reports import addresses
from ingestion.reports.recipients import Recipient, check_email
from ingestion.reports.render import RenderedReport, content_id

# The body parts' policy: text in UTF-8 goes quoted-printable or base64, never as raw 8-bit.
_SEVEN_BIT = SMTP.clone(cte_type="7bit")


class _EncodedSubject(str):
    """A subject that folds itself into RFC 2047 encoded words from its first character.

    The email package's own folding of a long non-ASCII subject loses the space between an encoded
    word and the text after it ("全公司· 2026-11-23"); the legacy ``Header`` splits it between encoded
    words, each whole, so it decodes back exactly. The policy takes it as a header object (it has a
    ``name`` and a ``fold``)."""

    name = "Subject"

    def fold(self, *, policy) -> str:
        encoded = Header(str(self), "utf-8", header_name=self.name).encode(
            linesep=policy.linesep, maxlinelen=policy.max_line_length
        )
        return f"{self.name}: {encoded}{policy.linesep}"


def _subject_header(subject: str) -> str:
    """``subject`` as the Subject header's value. Encoded words with SMTPUTF8 (RFC 6532) too: that
    policy folds a long subject after ``Subject:``, which a parser reads back with a leading space."""
    return subject if subject.isascii() else _EncodedSubject(subject)


def _ascii(text: str) -> str:
    """File names stay ASCII: some clients garble RFC 2231 names (the 培训 department becomes its hex)."""
    return re.sub(r"[^A-Za-z0-9._-]+", lambda m: m.group(0).encode().hex(), text)


def attachment_name(report: RenderedReport, extension: str, stem: str = "kpi-report") -> str:
    return f"{stem}-{report.period_key}-{_ascii(report.scope)}-{report.language}.{extension}"


def _to_header(recipient: Recipient) -> str | Address:
    """The To header's value: the address as the envelope has it (its domain in ``xn--`` form)."""
    address = addresses.ascii_domain(recipient.email)
    if not addresses.needs_smtputf8(address):
        return formataddr((recipient.name, address))
    # formataddr and Address(addr_spec=...) refuse a non-ASCII local part; given as its parts, the
    # SMTPUTF8 policy writes it as UTF-8 (RFC 6532).
    local, _, domain = address.rpartition("@")
    return Address(display_name=recipient.name, username=local, domain=domain)


def build_message(report: RenderedReport, recipient: Recipient, sender: str) -> EmailMessage:
    """``report`` as ``recipient`` receives it. An address that is no address is a RecipientError
    saying why. One whose local part is not ASCII gets a message with UTF-8 headers, which only a
    server offering SMTPUTF8 takes (``delivery`` checks that before sending)."""
    check_email(recipient.email)
    message = EmailMessage(policy=SMTPUTF8 if addresses.needs_smtputf8(recipient.email) else SMTP)
    message["Subject"] = _subject_header(report.subject)
    message["From"] = formataddr(("funnelhouse", sender))
    message["To"] = _to_header(recipient)
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(
        idstring=report.period_key, domain=sender.rpartition("@")[2] or "localhost"
    )
    message["X-Funnelhouse-Report"] = report.slug
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: auto-responders must not answer
    alternative = EmailMessage(policy=_SEVEN_BIT)
    alternative.set_content(report.text, subtype="plain", charset="utf-8")
    alternative.add_alternative(report.html, subtype="html", charset="utf-8")
    message.make_related()  # the images belong to the HTML: related wraps the alternative and them
    message.attach(alternative)
    for name, png in report.charts.items():
        message.add_related(
            png,
            maintype="image",
            subtype="png",
            cid=f"<{content_id(name)}>",
            filename=f"{name}.png",
            disposition="inline",
        )
    if report.pdf:
        message.add_attachment(
            report.pdf, maintype="application", subtype="pdf", filename=attachment_name(report, "pdf")
        )
    message.add_attachment(  # as bytes: base64, byte for byte (its BOM, its CRLF line ends)
        report.leaderboard_csv,
        maintype="text",
        subtype="csv",
        params={"charset": "utf-8"},
        filename=attachment_name(report, "csv", "leaderboard"),
    )
    # Last: make_related/make_mixed move every Content-* header of the top level into a subpart.
    message["Content-Language"] = "zh-CN" if report.language == "zh" else "en"
    # RFC 2045 4: a MIME message says so at its top. Only set_content adds it, and only the subparts
    # had that; the policy allows one, so setting it twice raises rather than duplicating it.
    message["MIME-Version"] = "1.0"
    return message
