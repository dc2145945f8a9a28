"""The sync gateway as a process: `python -m replication.syncer.gatewayd --port 9443 ...`.

Kept apart from gateway.py so that `-m` runs a module the package has not imported already.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from .gateway import (
    DEFAULT_GATEWAY_PORT,
    GatewayConfig,
    database_ssl_context,
    serve,
    server_ssl_context,
)


def _port_range(text: str) -> range:
    low, sep, high = text.partition("-")
    if not sep or not low.isdigit() or not high.isdigit() or int(low) > int(high):
        raise argparse.ArgumentTypeError(f"{text!r}: write MIN-MAX, e.g. 12000-12999")
    return range(int(low), int(high) + 1)


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
    args = p.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        p.error("--tls-cert and --tls-key go together")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    ctx = server_ssl_context(args.tls_cert, args.tls_key) if args.tls_cert else None
    db_ctx = None
    if args.database_tls_ca or args.database_tls_cert:
        db_ctx = database_ssl_context(
            args.database_tls_ca, args.database_tls_cert, args.database_tls_key
        )
    config = GatewayConfig(args.host, args.port, args.database_host, args.ports, ctx, db_ctx)
    asyncio.run(serve(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
