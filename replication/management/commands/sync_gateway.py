"""Run this node's sync gateway (replication/syncer/gateway.py) in the foreground (`make run`)."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections

from console.files import write_private
from console.models import Certificate
from replication.syncer.gateway import (
    GatewayConfig,
    TlsPair,
    database_ssl_context,
    serve,
    server_ssl_context,
)


def _certificates() -> dict[str, Certificate]:
    return {c.kind: c for c in Certificate.objects.all()}


def _signature(pems: dict[str, Certificate]) -> str:
    """Changes when a certificate or key changes (a digest: no key kept in memory twice)."""
    h = hashlib.sha256()
    for kind in sorted(pems):
        h.update(f"{kind}\0{pems[kind].certificate_pem}\0{pems[kind].private_key_pem}\0".encode())
    return h.hexdigest()


def _tls(directory: Path, pems: dict[str, Certificate]) -> TlsPair:
    """TLS toward syncers with the proxy certificate, and toward the node's TLS database ports
    with the syncer certificate (which its databases trust), when the cluster has them. The
    files exist only while the contexts are built (the ssl module reads files)."""
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


def tls_reloader(directory: Path) -> tuple[TlsPair, Callable[[], TlsPair | None]]:
    """The TLS contexts from the cluster's certificates now, and the gateway's `reload`: the
    certificates as saved later (a replacement through the API or the Security page), read every
    couple of seconds, new contexts when they changed, None when not."""
    pems = _certificates()
    seen = _signature(pems)

    def reload() -> TlsPair | None:
        nonlocal seen
        try:
            pems = _certificates()
            now = _signature(pems)
            if now == seen:
                return None
            fresh = _tls(directory, pems)
            seen = now
            return fresh
        finally:
            close_old_connections()  # a thread of its own, for hours: never a stale connection

    return _tls(directory, pems), reload


class Command(BaseCommand):
    help = (
        "Serve compressed replication streams of this node's databases to the syncers of other "
        "clusters, on CONSOLE_NODE_ADDRESS:CONSOLE_GATEWAY_PORT (default 9443), until SIGTERM. "
        "TLS (the proxy certificate) and plain TCP on the same port."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        (server_tls, database_tls), reload = tls_reloader(
            Path(settings.VAR_DIR) / "run" / "gateway"
        )
        config = GatewayConfig(
            host=settings.NODE_ADDRESS,
            port=settings.GATEWAY_PORT,
            # The node's databases listen on its address (console.provisioning).
            database_host=settings.NODE_ADDRESS,
            ports=range(settings.DB_PORT_MIN, settings.DB_PORT_MAX + 1),
            tls=server_tls,
            database_tls=database_tls,
            max_sessions=settings.GATEWAY_MAX_SESSIONS,
        )
        asyncio.run(serve(config, reload))
