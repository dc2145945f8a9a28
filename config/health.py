"""`GET /healthz`: is this ASGI server able to serve, i.e. does it reach the console database and
the control Redis? 200 or 503 with one word per check, for load balancers, systemd units
(`manage.py wait_ready --http`) and monitoring.

Public (a probe has no session) and so it says nothing but `ok`/`unavailable` and the kind of
error: never a host, a URL or a message that could carry a password. Both checks are bounded
(a second or two each), because a sync view runs on the server's one thread for sync code and a
hanging check would hold every other page behind it.
"""

from __future__ import annotations

import threading

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

CHECK_TIMEOUT_S = 2.0

_local = threading.local()


def _control_redis() -> redis.Redis:
    client: redis.Redis | None = getattr(_local, "client", None)
    if client is None:
        client = redis.Redis.from_url(
            settings.REDIS_URL,
            socket_timeout=CHECK_TIMEOUT_S,
            socket_connect_timeout=CHECK_TIMEOUT_S,
            retry_on_timeout=False,
        )
        _local.client = client
    return client


def _database_check() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _control_redis_check() -> None:
    if not _control_redis().ping():
        raise redis.ConnectionError("no PONG")


def health_checks() -> dict[str, str]:
    """Each check's verdict: `ok` or `unavailable: <error type>`."""
    verdicts: dict[str, str] = {}
    for name, check in (("database", _database_check), ("control_redis", _control_redis_check)):
        try:
            check()
        except Exception as exc:  # any failure is the answer, never a 500
            verdicts[name] = f"unavailable: {type(exc).__name__}"
            if name == "database":
                # A broken connection is not reused by the next probe.
                connection.close()
        else:
            verdicts[name] = "ok"
    return verdicts


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    checks = health_checks()
    healthy = all(verdict == "ok" for verdict in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", "checks": checks},
        status=200 if healthy else 503,
    )
