"""What an e-mail address needs on the wire.

An internationalised domain (``boss@例子.中国``) travels in its ASCII (IDNA, ``xn--``) form, which
every server takes. A local part that is not ASCII (``josé@``, ``张三@``) has no ASCII form: only a
server offering SMTPUTF8 (RFC 6531) takes it, in the envelope and in the headers. Whether one does
is known only once it answered EHLO, so the rule is the same for the scheduled runs (checked per
recipient at delivery) and ``funnelhouse report --send --to`` (checked before anything is rendered).

The domain is encoded by IDNA 2008 with the UTS #46 mapping (the ``idna`` package), as today's mail
clients and registries do: Python's own ``idna`` codec is IDNA 2003, which maps a few characters
differently and would send ``anna@straße.de`` to ``strasse.de``, another domain.
"""

from __future__ import annotations

import re

import idna

# One local part and one domain, nothing that would end an SMTP path or a header (space, <, >).
_ADDRESS_SHAPE = re.compile(r"[^@\s<>]+@[^@\s<>]+")

SMTPUTF8_NOT_OFFERED = (
    "its local part is not ASCII and the SMTP server does not offer SMTPUTF8 (RFC 6531), so it "
    "cannot be delivered there (give this recipient an ASCII address, or use a relay offering SMTPUTF8)"
)


def needs_smtputf8(address: str) -> bool:
    """True if ``address``'s local part is not ASCII (a non-ASCII domain has an ASCII form)."""
    return not address.rpartition("@")[0].isascii()


def ascii_domain(address: str) -> str:
    """``address`` with its domain in IDNA (``xn--``) form; UnicodeError (``idna.IDNAError``) if the
    domain has none."""
    local, _, domain = address.rpartition("@")
    if domain.isascii():
        return address
    return f"{local}@{idna.encode(domain, uts46=True).decode('ascii')}"


def shape_problem(address: str) -> str | None:
    """Why ``address`` is no address at all, whichever server it goes to; None if it is one."""
    if not _ADDRESS_SHAPE.fullmatch(address.strip()):
        return "not an e-mail address: expected local part@domain"
    try:
        ascii_domain(address.strip())
    except UnicodeError as error:
        return f"its domain is not a valid internationalised domain name ({error})"
    return None
