"""Run this node's sync gateway (replication/syncer/gateway.py) in the foreground (`make run`)."""

from __future__ import annotations

import asyncio
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from replication.syncer.gateway import GatewayConfig, serve


class Command(BaseCommand):
    help = (
        "Serve compressed replication streams of this node's databases to the syncers of other "
        "clusters, on CONSOLE_NODE_ADDRESS:CONSOLE_GATEWAY_PORT (default 9443), until SIGTERM."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        config = GatewayConfig(
            host=settings.NODE_ADDRESS,
            port=settings.GATEWAY_PORT,
            # The node's databases listen on its address (console.provisioning).
            database_host=settings.NODE_ADDRESS,
            ports=range(settings.DB_PORT_MIN, settings.DB_PORT_MAX + 1),
        )
        asyncio.run(serve(config))
