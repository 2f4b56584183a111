"""``python -m devstack.clickhouse --path DIR --port N [--host H] [--users FILE]``: run the server."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from devstack.clickhouse.engine import Store, StoreBusyError
from devstack.clickhouse.server import ClickHouseHTTPServer, log
from devstack.clickhouse.users import UserDirectory


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.clickhouse", description=__doc__)
    parser.add_argument(
        "--path", required=True, type=Path, help="chDB store directory (owned by this process)"
    )
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--users", type=Path, help="users file (devstack.clickhouse.users); default: passwordless"
    )
    parser.add_argument("--log-level", default=os.environ.get("FUNNELHOUSE_CLICKHOUSE_LOG_LEVEL", "INFO"))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    users = UserDirectory.load(args.users) if args.users else UserDirectory.passwordless_default()
    if not _is_loopback(args.host) and users.users_without_password():
        # Beyond loopback anyone on the network could connect: every user needs a password there.
        print(
            f"refusing to listen on {args.host}: users without a password: {', '.join(users.users_without_password())}"
            " (give --users a file where every user has one)",
            file=sys.stderr,
        )
        return 2
    try:
        store = Store(args.path)
    except StoreBusyError as error:
        print(f"cannot start: {error}", file=sys.stderr)
        return 3
    try:
        server = ClickHouseHTTPServer((args.host, args.port), store, users)
    except OSError as error:
        store.close()
        print(f"cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 4

    def request_shutdown(signum, _frame):
        log.info("signal %d: finishing running requests, then stopping", signum)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, request_shutdown)
    signal.signal(signal.SIGINT, request_shutdown)
    log.info(
        "ClickHouse %s (chDB) on http://%s:%d, store %s, pid %d",
        store.version,
        args.host,
        args.port,
        store.path,
        os.getpid(),
    )
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.drain()
        store.close()
        log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
