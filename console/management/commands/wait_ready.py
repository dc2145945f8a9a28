"""Wait until a console service is ready: the ASGI server's /healthz answers 200, or a Celery
worker answers `inspect ping`. The systemd units run it as `ExecStartPost=`, so a unit is
`active` only once its service serves (and `systemctl start` fails if it never does)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from celery import current_app
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser


def http_ready(url: str, host: str) -> tuple[bool, str]:
    """(ready, what /healthz said)."""
    request = urllib.request.Request(url, headers={"Host": host})  # noqa: S310 - our own server
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return response.status == 200, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return False, exc.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as exc:
        return False, type(exc).__name__


def worker_ready(name: str) -> tuple[bool, str]:
    """(ready, the replies): `celery inspect ping --destination name` through the broker."""
    try:
        replies = current_app.control.ping(destination=[name], timeout=1.0) or []
    except Exception as exc:  # the broker is down: not ready yet
        return False, type(exc).__name__
    return any(name in reply for reply in replies), json.dumps(replies)


class Command(BaseCommand):
    help = "Wait until the ASGI server (--http) or a Celery worker (--worker NAME) is ready."

    def add_arguments(self, parser: CommandParser) -> None:
        what = parser.add_mutually_exclusive_group(required=True)
        what.add_argument(
            "--http",
            nargs="?",
            const="",
            metavar="URL",
            help="the /healthz URL (default: CONSOLE_HTTP_HOST:CONSOLE_HTTP_PORT)",
        )
        what.add_argument("--worker", metavar="NAME", help="a worker's node name, e.g. sync@host")
        parser.add_argument("--timeout", type=float, default=120.0, help="seconds (default 120)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["worker"]:
            name: str = options["worker"]

            def probe() -> tuple[bool, str]:
                return worker_ready(name)
        else:
            url = options["http"] or f"http://{settings.HTTP_HOST}:{settings.HTTP_PORT}/healthz"
            # The Host header must be one the server allows (ALLOWED_HOSTS: ".example.com"
            # allows example.com and its subdomains).
            host = settings.ALLOWED_HOSTS[0].lstrip(".") if settings.ALLOWED_HOSTS else "localhost"
            if host == "*":
                host = "localhost"

            def probe() -> tuple[bool, str]:
                return http_ready(url, host)

        deadline = time.monotonic() + options["timeout"]
        while True:
            ready, said = probe()
            if ready:
                self.stdout.write("ready")
                return
            if time.monotonic() > deadline:
                raise CommandError(f"not ready after {options['timeout']:g} s: {said}")
            time.sleep(0.5)
