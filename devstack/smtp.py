"""Local SMTP sink: a real SMTP server (aiosmtpd) that keeps every accepted message as a ``.eml`` file.

Reports are delivered to it exactly as to a production relay (same smtplib code path), and
``<state_home>/outbox/`` shows what a reader would have received. It runs as a detached process
(``python -m devstack.smtp --outbox DIR --port N``) recorded in services.json as ``smtp``.

Failures are simulated by real SMTP replies, not mocks: recipients matching a ``--reject``
pattern (default ``*@bounce.invalid``) get ``550`` at RCPT, those matching ``--tempfail``
(default ``*@tempfail.invalid``) get ``451``. ``.invalid`` is reserved (RFC 2606), so no real
address ever matches. It offers SMTPUTF8 (RFC 6531), as production relays do, so a message to a
non-ASCII local part is accepted and stored as received (UTF-8 headers). With
``--tls-cert/--tls-key`` and ``--auth-user/--auth-password-file`` it also offers STARTTLS and
requires AUTH, to exercise the production login path.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import os
import signal
import smtplib
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from devstack import state

SERVICE = "smtp"
HOST = "127.0.0.1"
DEFAULT_PORT = 2525
DEFAULT_REJECT = ("*@bounce.invalid",)
DEFAULT_TEMPFAIL = ("*@tempfail.invalid",)
START_TIMEOUT = 20.0
# Ports tried when the one found free is taken before the sink binds it.
PORT_ATTEMPTS = 3
STOP_TIMEOUT = 10.0
_REPO_ROOT = Path(__file__).resolve().parents[1]


class OutboxHandler:
    """aiosmtpd handler: refuse recipients by pattern, write accepted messages to the outbox."""

    def __init__(self, outbox: Path, reject: tuple[str, ...], tempfail: tuple[str, ...]):
        self.outbox = outbox
        self.reject = reject
        self.tempfail = tempfail

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        lowered = address.lower()
        if any(fnmatch.fnmatch(lowered, pattern) for pattern in self.reject):
            return "550 5.1.1 mailbox unavailable (sink reject pattern)"
        if any(fnmatch.fnmatch(lowered, pattern) for pattern in self.tempfail):
            return "451 4.3.0 temporary failure (sink tempfail pattern)"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        name = f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
        # The envelope is not part of the message; keep it in headers so the outbox shows who got what.
        # (UTF-8 with SMTPUTF8; surrogateescape gives back the very bytes aiosmtpd decoded.)
        envelope_headers = (
            f"X-Sink-Envelope-From: {envelope.mail_from}\r\n"
            f"X-Sink-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n"
        ).encode("utf-8", "surrogateescape")
        partial = self.outbox / f".{name}.part"
        partial.write_bytes(envelope_headers + envelope.original_content)
        partial.rename(self.outbox / name)  # readers never see half a message
        return f"250 Message accepted as {name}"


class _PasswordCheck:
    def __init__(self, user: str, password: str):
        self.user, self.password = user.encode(), password.encode()

    def __call__(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult

        ok = getattr(auth_data, "login", None) == self.user and auth_data.password == self.password
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself


def serve(arguments: argparse.Namespace) -> None:
    from aiosmtpd.controller import Controller

    outbox = Path(arguments.outbox)
    outbox.mkdir(parents=True, exist_ok=True)
    handler = OutboxHandler(
        outbox, tuple(arguments.reject or DEFAULT_REJECT), tuple(arguments.tempfail or DEFAULT_TEMPFAIL)
    )
    options: dict = {"enable_SMTPUTF8": True}  # aiosmtpd's Controller default today; said, not assumed
    if arguments.tls_cert:
        import ssl

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(arguments.tls_cert, arguments.tls_key)
        options.update(tls_context=context, require_starttls=True)
    if arguments.auth_user:
        password = Path(arguments.auth_password_file).read_text().strip()
        options.update(authenticator=_PasswordCheck(arguments.auth_user, password), auth_required=True)
    if arguments.ident:
        options.update(ident=arguments.ident)  # (in the greeting: `start` knows its own sink by it)
    controller = Controller(handler, hostname=arguments.host, port=arguments.port, **options)
    controller.start()
    print(f"smtp sink on {arguments.host}:{arguments.port}, outbox {outbox}", flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    stopped.wait()
    controller.stop()


def _answers(host: str, port: int, ident: str | None = None) -> bool:
    """Whether an SMTP server answers there (with ``ident`` in its greeting, if given)."""
    try:
        with smtplib.SMTP(timeout=2) as client:
            code, greeting = client.connect(host, port)
            if code != 220 or (ident is not None and ident not in greeting.decode(errors="replace")):
                return False
            return client.noop()[0] == 250
    except (OSError, smtplib.SMTPException):
        return False


def status(state_home: Path) -> dict | None:
    info = state.running_service(SERVICE, Path(state_home))
    if info and _answers(info["host"], int(info["port"])):
        return info
    return None


def start(state_home: Path, port: int | None = None, extra_arguments: tuple[str, ...] = ()) -> dict:
    """Start the sink (or return the running one) and record ``{host, port, outbox, pid}``."""
    state_home = Path(state_home)
    running = status(state_home)
    if running:
        return running
    outbox = state_home / "outbox"
    outbox.mkdir(parents=True, exist_ok=True)
    log_path = state_home / "smtp.log"
    asked_port = port or int(os.environ.get("FUNNELHOUSE_SMTP_PORT", 0))
    if asked_port:
        return _start_on(state_home, outbox, log_path, asked_port, extra_arguments)
    for _ in range(PORT_ATTEMPTS - 1):
        with contextlib.suppress(_PortTaken):  # taken after it was found free: another port
            return _start_on(
                state_home, outbox, log_path, state.free_port(DEFAULT_PORT, HOST), extra_arguments
            )
    return _start_on(state_home, outbox, log_path, state.free_port(DEFAULT_PORT, HOST), extra_arguments)


class _PortTaken(RuntimeError):
    """The sink exited as its port was taken after it was found free (another process's start)."""


def _start_on(state_home: Path, outbox: Path, log_path: Path, chosen_port: int, extra_arguments) -> dict:
    """Start the sink on ``chosen_port`` and record it, once it answers with its own greeting: a port
    found free may be taken before the sink binds it (another stack's or test's sink starting at the
    same moment), and an answer from that other server is not this sink coming up."""
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(_REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    ident = f"funnelhouse-sink-{uuid.uuid4().hex}"
    command = [sys.executable, "-m", "devstack.smtp", "--outbox", str(outbox), "--port", str(chosen_port)]
    log_start = log_path.stat().st_size if log_path.exists() else 0
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            [*command, "--host", HOST, "--ident", ident, *extra_arguments],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives `funnelhouse up`
            preexec_fn=state.default_sigterm,  # stopped with SIGTERM, which this process may ignore
            cwd=_REPO_ROOT,
            env=environment,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _answers(HOST, chosen_port, ident):
            ended = process.poll() is not None
            if ended or time.monotonic() > deadline:
                said = log_path.read_bytes()[log_start:].decode(errors="replace")
                if ended and "address already in use" in said:
                    raise _PortTaken(f"port {chosen_port} was taken before the SMTP sink bound it")
                why = "it exited" if ended else f"no answer within {START_TIMEOUT} s"
                tail = said.splitlines()[-10:]
                raise RuntimeError(
                    f"the SMTP sink did not start, {why} (log {log_path}):\n" + "\n".join(tail)
                )
            time.sleep(0.1)
        info = state.record_started(
            SERVICE, process, log_path, {"host": HOST, "port": chosen_port, "outbox": str(outbox)}, state_home
        )
    except BaseException:  # not a start: timed out, or interrupted (Ctrl-C) before it was recorded
        state.end_started_process(process)
        raise
    return info


def stop(state_home: Path) -> None:
    """SIGTERM the sink, SIGKILL it if it is still there after ``STOP_TIMEOUT``, and forget it."""
    state.stop_service(SERVICE, Path(state_home), STOP_TIMEOUT)


def _parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devstack.smtp", description=__doc__.splitlines()[0])
    parser.add_argument("--outbox", required=True)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--host", default=HOST)
    parser.add_argument(
        "--reject", action="append", help=f"550 at RCPT for these patterns (default {DEFAULT_REJECT})"
    )
    parser.add_argument("--tempfail", action="append", help=f"451 at RCPT (default {DEFAULT_TEMPFAIL})")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--auth-user")
    parser.add_argument("--auth-password-file")
    parser.add_argument("--ident", help="a word for the greeting, by which `start` knows the sink it started")
    return parser.parse_args(argv)


if __name__ == "__main__":
    serve(_parse())
