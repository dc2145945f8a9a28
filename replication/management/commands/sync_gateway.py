"""Run this node's sync gateway (replication/syncer/gateway.py) in the foreground (`make run`)."""

from __future__ import annotations

import asyncio
import shutil
import ssl
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from console.files import write_private
from console.models import Certificate
from replication.syncer.gateway import (
    GatewayConfig,
    database_ssl_context,
    serve,
    server_ssl_context,
)


def _tls(directory: Path) -> tuple[ssl.SSLContext | None, ssl.SSLContext | None]:
    """TLS toward syncers with the proxy certificate, and toward the node's TLS database ports
    with the syncer certificate (which its databases trust), when the cluster has them. The
    files exist only while the contexts are built (the ssl module reads files)."""
    pems = {c.kind: c for c in Certificate.objects.all()}
    proxy, syncer = pems.get(Certificate.Kind.PROXY), pems.get(Certificate.Kind.SYNCER)
    if proxy is None:
        return None, None
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        crt = str(write_private(directory / "proxy.crt", proxy.certificate_pem))
        key = str(write_private(directory / "proxy.key", proxy.private_key_pem))
        server = server_ssl_context(crt, key)
        client_crt = client_key = None
        if syncer is not None:
            client_crt = str(write_private(directory / "syncer.crt", syncer.certificate_pem))
            client_key = str(write_private(directory / "syncer.key", syncer.private_key_pem))
        return server, database_ssl_context(crt, client_crt, client_key)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


class Command(BaseCommand):
    help = (
        "Serve compressed replication streams of this node's databases to the syncers of other "
        "clusters, on CONSOLE_NODE_ADDRESS:CONSOLE_GATEWAY_PORT (default 9443), until SIGTERM. "
        "TLS (the proxy certificate) and plain TCP on the same port."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        server_tls, database_tls = _tls(Path(settings.VAR_DIR) / "run" / "gateway")
        config = GatewayConfig(
            host=settings.NODE_ADDRESS,
            port=settings.GATEWAY_PORT,
            # The node's databases listen on its address (console.provisioning).
            database_host=settings.NODE_ADDRESS,
            ports=range(settings.DB_PORT_MIN, settings.DB_PORT_MAX + 1),
            tls=server_tls,
            database_tls=database_tls,
        )
        asyncio.run(serve(config))
