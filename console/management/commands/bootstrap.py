"""First run: create the cluster, its certificates, this node and the admin user."""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from console import services
from console.errors import ApplicationError


class Command(BaseCommand):
    help = "Bootstrap the cluster (idempotent); prints the admin login on first run only."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            password = services.cluster_bootstrap(
                name=settings.CLUSTER_NAME,
                node_name=settings.NODE_NAME,
                node_address=settings.NODE_ADDRESS,
                admin_username=os.environ.get("CONSOLE_ADMIN_USER", "admin"),
                admin_password=os.environ.get("CONSOLE_ADMIN_PASSWORD") or None,
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        if password is None:
            return
        user = os.environ.get("CONSOLE_ADMIN_USER", "admin")
        if os.environ.get("CONSOLE_ADMIN_PASSWORD"):
            # The operator chose it; under systemd this output goes to the journal.
            self.stdout.write(f"ADMIN LOGIN  user: {user}  password: from CONSOLE_ADMIN_PASSWORD")
        else:
            # Generated: printed once, to the operator's terminal, on the first run only.
            self.stdout.write(f"ADMIN LOGIN  user: {user}  password: {password}")
