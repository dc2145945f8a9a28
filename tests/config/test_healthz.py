"""`/healthz` on the real ASGI server: 503 while its control Redis is down, 200 once it is back;
`manage.py wait_ready --http` (the units' readiness) follows it."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from tests.support.browser import LiveServer
from tests.support.servers import RedisServer
from tests.support.wait import wait_for
from tests.support.workers import REPO

pytestmark = pytest.mark.integration


def _get(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - our server
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def control_redis() -> Iterator[RedisServer]:
    with RedisServer(password=secrets.token_urlsafe(24)) as server:
        yield server


@pytest.fixture
def console(live_server_env: dict[str, str], control_redis: RedisServer) -> Iterator[LiveServer]:
    """A daphne of its own whose control Redis this test may stop."""
    env = dict(live_server_env, REDIS_URL=f"{control_redis.url}/0")
    server = LiveServer(env, Path(settings.VAR_DIR) / "test-healthz-daphne.log").start()
    try:
        yield server
    finally:
        server.stop()


def _wait_ready(console: LiveServer, timeout: str) -> subprocess.CompletedProcess[str]:
    url = f"{console.url}/healthz"
    return subprocess.run(
        [sys.executable, "manage.py", "wait_ready", "--http", url, "--timeout", timeout],
        cwd=REPO,
        env=console.env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_healthz_is_503_while_the_control_redis_is_down_and_200_when_it_is_back(
    console: LiveServer, control_redis: RedisServer
) -> None:
    url = f"{console.url}/healthz"
    assert _get(url) == (200, {"status": "ok", "checks": {"database": "ok", "control_redis": "ok"}})

    control_redis.kill()
    status, body = _get(url)
    assert status == 503, body
    assert body["status"] == "unavailable"
    checks = body["checks"]
    assert isinstance(checks, dict)
    assert checks["database"] == "ok"
    assert str(checks["control_redis"]).startswith("unavailable: ")
    assert control_redis.password and control_redis.password not in json.dumps(body)
    waited = _wait_ready(console, "1")
    assert waited.returncode == 1
    assert "not ready after 1 s" in waited.stderr

    control_redis.start()  # the same port and directory
    wait_for(lambda: _get(url)[0] == 200, what="/healthz to answer 200 again")
    assert _get(url)[1]["checks"] == {"database": "ok", "control_redis": "ok"}
    waited = _wait_ready(console, "60")
    assert waited.returncode == 0, waited.stderr
    assert waited.stdout.strip() == "ready"


@pytest.mark.django_db
def test_healthz_needs_no_sign_in_and_only_reads(client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")
    assert client.post("/healthz").status_code == 405
