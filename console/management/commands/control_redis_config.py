"""Write the private control Redis' config file for `make run` (scripts/run.sh)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from console.files import write_private


class Command(BaseCommand):
    help = (
        "Write var/control-redis/redis.conf (0600): loopback only, the generated password, "
        "append-only data in var/control-redis. Prints its path."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.CONTROL_REDIS_PASSWORD:
            raise CommandError("REDIS_URL is set: the console uses that Redis, not its own")
        data = settings.VAR_DIR / "control-redis"
        logs = settings.VAR_DIR / "log"
        for directory in (data, logs):
            directory.mkdir(mode=0o700, exist_ok=True)
        lines = [
            "# Written by `manage.py control_redis_config` at every start; edits are lost.",
            f"port {settings.CONTROL_REDIS_PORT}",
            # Loopback only ("-::1": if the host has IPv6).
            "bind 127.0.0.1 -::1",
            "protected-mode yes",
            # Not on the command line, where every local user would read it (ps).
            f"requirepass {settings.CONTROL_REDIS_PASSWORD}",
            f'dir "{data}"',
            "appendonly yes",
            'save ""',
            "daemonize no",
            f'logfile "{logs / "control-redis.log"}"',
        ]
        path = write_private(data / "redis.conf", "\n".join(lines) + "\n")
        self.stdout.write(str(path))
