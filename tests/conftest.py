"""Shared fixtures: personas, a bootstrapped cluster, a real Celery worker, cleanup by PID."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

REPO = Path(__file__).resolve().parent.parent
ADMIN_PASSWORD = "admin-test-password-1"
VIEWER_PASSWORD = "viewer-test-password-1"


@pytest.fixture
def bootstrapped(db: None) -> None:
    from console import services

    services.cluster_bootstrap(
        name="cluster.local",
        node_name=settings.NODE_NAME,
        node_address="127.0.0.1",
        admin_username="admin",
        admin_password=ADMIN_PASSWORD,
    )


@pytest.fixture
def admin_user(bootstrapped: None):
    from console.models import User

    return User.objects.get(username="admin")


@pytest.fixture
def viewer_user(bootstrapped: None):
    from console.models import User

    return User.objects.create_user(
        username="viewer", password=VIEWER_PASSWORD, role=User.Role.VIEWER
    )


@pytest.fixture
def admin_api(admin_user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=_basic("admin", ADMIN_PASSWORD))
    return client


@pytest.fixture
def viewer_api(viewer_user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=_basic("viewer", VIEWER_PASSWORD))
    return client


def _basic(user: str, password: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _worker_env() -> dict[str, str]:
    from django.db import connection

    env = dict(os.environ)
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        env["DATABASE_URL"] = f"sqlite:///{db['NAME']}"
    else:
        env["DATABASE_URL"] = (
            f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:"
            f"{db['PORT'] or 5432}/{db['NAME']}"
        )
    return env


def kill_database_processes() -> None:
    """Kill every redis-server the console started under the test data dir (by its pidfile)."""
    data_dir = Path(settings.DATA_DIR)
    if not data_dir.exists():
        return
    for pidfile in data_dir.glob("bdb-*/shard-*/redis.pid"):
        with contextlib.suppress(ProcessLookupError, ValueError, OSError):
            os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker) -> Iterator[subprocess.Popen[bytes]]:
    """A real Celery worker process consuming the node, control and sync queues."""
    from console.celery import app

    with django_db_blocker.unblock():
        env = _worker_env()
    log = open(Path(settings.VAR_DIR) / "test-worker.log", "ab")  # noqa: SIM115
    queues = f"node.{settings.NODE_NAME},control,sync"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "console",
            "worker",
            "-Q",
            queues,
            "--pool",
            "threads",
            "--concurrency",
            "8",
            "-n",
            f"test-{os.getpid()}@%h",
            "--loglevel",
            "INFO",
            # Embedded beat: reconcile runs on its real schedule (CONSOLE_RECONCILE_INTERVAL=1).
            "-B",
            "--schedule",
            str(Path(settings.VAR_DIR) / "test-beat-schedule"),
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while not app.control.ping(timeout=0.5):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("the Celery worker did not start; see var/test-worker.log")
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        kill_database_processes()


@pytest.fixture
def live_worker(celery_worker, transactional_db) -> Iterator[subprocess.Popen[bytes]]:
    """For tests that need the worker: committed data, and databases killed afterwards."""
    try:
        yield celery_worker
    finally:
        kill_database_processes()
