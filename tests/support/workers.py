"""The real Celery workers of a test run and the database processes they start, cleaned up by
PID (used by tests/conftest.py and the browser tests' server)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import kombu.exceptions
import redis
from django.conf import settings

REPO = Path(__file__).resolve().parent.parent.parent


def mail_dir() -> Path:
    """Where the workers' e-mails are written (Django's file backend)."""
    return Path(settings.VAR_DIR) / "test-mail"


def worker_env() -> dict[str, str]:
    from django.db import connection

    env = dict(os.environ)
    # Alert e-mails of the workers land as files the tests read (tests/replication/test_alerts.py).
    env["EMAIL_BACKEND"] = "django.core.mail.backends.filebased.EmailBackend"
    env["EMAIL_FILE_PATH"] = str(mail_dir())
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


class Workers:
    """The real Celery workers of a test run, as `make run` starts them: one for the node and
    control queues with an embedded beat, one for queue `sync` (long-running sync jobs)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.var = Path(settings.VAR_DIR)
        self.node = self._start(
            "node",
            f"node.{settings.NODE_NAME},control",
            "4",
            # Embedded beat: reconcile runs on its real schedule (CONSOLE_RECONCILE_INTERVAL=1).
            "-B",
            "--schedule",
            str(self.var / "test-beat-schedule"),
        )
        self.sync = self.start_sync()

    def _start(
        self, name: str, queues: str, concurrency: str, *extra: str
    ) -> subprocess.Popen[bytes]:
        from config.celery import app

        log = open(self.var / f"test-worker-{name}.log", "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-Q",
                queues,
                "--pool",
                "threads",
                "--concurrency",
                concurrency,
                "-n",
                f"test-{name}-{os.getpid()}-{time.monotonic_ns()}@%h",
                "--loglevel",
                "INFO",
                *extra,
            ],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 60
        while not any(proc_name.startswith(f"test-{name}-") for proc_name in _answering(app)):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"the Celery worker did not start; see test-worker-{name}.log")
        return proc

    def start_sync(self) -> subprocess.Popen[bytes]:
        self.sync = self._start("sync", "sync", "16")
        return self.sync

    def stop_sync(self) -> int:
        """SIGTERM (Celery's warm shutdown) to the sync worker; returns its exit code."""
        from tests.support.wait import wait_for

        self.sync.send_signal(signal.SIGTERM)
        wait_for(lambda: self.sync.poll() is not None, what="the sync worker to exit")
        return self.sync.returncode

    def kill_sync(self) -> None:
        """kill -9 the sync worker (its jobs die with it, as when a host is lost)."""
        self.sync.send_signal(signal.SIGKILL)
        self.sync.wait(30)

    def stop(self) -> None:
        for proc in (self.sync, self.node):
            proc.send_signal(signal.SIGTERM)
        for proc in (self.sync, self.node):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def _answering(app: Any) -> list[str]:
    """The names of the Celery workers that answer a ping. A control Redis restarted under the
    test process (fault row 23) leaves its pooled connections closed: the pools are dropped and the
    next ping connects again."""
    try:
        return [name for reply in app.control.ping(timeout=0.5) or [] for name in reply]
    except (redis.exceptions.ConnectionError, kombu.exceptions.OperationalError):
        app.close()  # its pools: the next ping makes new ones
        time.sleep(0.2)
        return []
