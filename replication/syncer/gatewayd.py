"""The sync gateway as a process: `python -m replication.syncer.gatewayd --port 9443 ...`.

Kept apart from gateway.py so that `-m` runs a module the package has not imported already.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable

from .gateway import (
    DEFAULT_GATEWAY_PORT,
    DEFAULT_MAX_SESSIONS,
    GatewayConfig,
    TlsPair,
    database_ssl_context,
    serve,
    server_ssl_context,
)


def _port_range(text: str) -> range:
    low, sep, high = text.partition("-")
    if not sep or not low.isdigit() or not high.isdigit() or int(low) > int(high):
        raise argparse.ArgumentTypeError(f"{text!r}: write MIN-MAX, e.g. 12000-12999")
    return range(int(low), int(high) + 1)


def _file_reloader(args: argparse.Namespace) -> Callable[[], TlsPair | None]:
    """TLS contexts built again from the files whenever one of them changed (size, mtime or
    inode: a file replaced by rename counts): a replaced certificate reaches new sessions."""
    paths = [
        args.tls_cert,
        args.tls_key,
        args.database_tls_ca,
        args.database_tls_cert,
        args.database_tls_key,
    ]

    def signature() -> list[tuple[int, int, int] | None]:
        out: list[tuple[int, int, int] | None] = []
        for path in paths:
            try:
                st = os.stat(path) if path else None
            except FileNotFoundError:
                st = None
            out.append(None if st is None else (st.st_ino, st.st_size, st.st_mtime_ns))
        return out

    seen = signature()

    def reload() -> TlsPair | None:
        nonlocal seen
        now = signature()
        if now == seen:
            return None
        fresh = _contexts(args)  # raises on a half-written file: `seen` stays, tried again
        seen = now
        return fresh

    return reload


def _contexts(args: argparse.Namespace) -> TlsPair:
    ctx = server_ssl_context(args.tls_cert, args.tls_key) if args.tls_cert else None
    db_ctx = None
    if args.database_tls_ca or args.database_tls_cert:
        db_ctx = database_ssl_context(
            args.database_tls_ca, args.database_tls_cert, args.database_tls_key
        )
    return ctx, db_ctx


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m replication.syncer.gatewayd",
        description="Serve compressed replication streams of this host's databases.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=DEFAULT_GATEWAY_PORT)
    p.add_argument("--database-host", default="127.0.0.1", help="where the databases listen")
    p.add_argument("--ports", type=_port_range, default=range(12000, 13000), help="MIN-MAX")
    p.add_argument("--tls-cert", help="server certificate (PEM): TLS on the gateway's port")
    p.add_argument("--tls-key", help="its private key")
    p.add_argument("--database-tls-ca", help="what TLS ports of the databases present (PEM)")
    p.add_argument("--database-tls-cert", help="client certificate for the databases' TLS ports")
    p.add_argument("--database-tls-key", help="its private key")
    p.add_argument(
        "--max-sessions",
        type=int,
        default=DEFAULT_MAX_SESSIONS,
        help="sessions served at once; more are refused (-UNAVAILABLE), the syncers retry",
    )
    args = p.parse_args(argv)
    if args.max_sessions < 1:
        p.error("--max-sessions must be 1 or more")
    if bool(args.tls_cert) != bool(args.tls_key):
        p.error("--tls-cert and --tls-key go together")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    ctx, db_ctx = _contexts(args)
    config = GatewayConfig(
        args.host, args.port, args.database_host, args.ports, ctx, db_ctx, args.max_sessions
    )
    asyncio.run(serve(config, _file_reloader(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
