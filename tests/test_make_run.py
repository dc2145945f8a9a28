"""`make run` as an operator starts it (scripts/run.sh, in a var/ of its own, on free ports): what
it leaves on disk is its user's only, and its control Redis refuses anyone without the password.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.conf import settings

from replication.syncer.gateway import Hello
from tests.support.browser import console_answers
from tests.support.servers import free_port
from tests.support.wait import wait_for
from tests.support.workers import REPO

pytestmark = [pytest.mark.slow, pytest.mark.integration]

ADMIN_PASSWORD = "run-sh-admin-password-1"


class MakeRun:
    """scripts/run.sh as a child process in its own session (stopped with SIGTERM, as Ctrl-C)."""

    def __init__(self, var: Path) -> None:
        self.var = var
        self.http_port = free_port()
        self.redis_port = free_port()
        self.gateway_port = free_port()
        # The top of the suite's database range: the suite allocates from the bottom.
        self.db_ports = (settings.DB_PORT_MAX - 49, settings.DB_PORT_MAX)
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("CONSOLE_", "REDIS_URL", "DATABASE_URL", "DJANGO_"))
        }
        env.update(
            CONSOLE_PYTHON=sys.executable,
            CONSOLE_VAR_DIR=str(var),
            CONSOLE_HTTP_PORT=str(self.http_port),
            CONSOLE_REDIS_PORT=str(self.redis_port),
            CONSOLE_GATEWAY_PORT=str(self.gateway_port),
            CONSOLE_DB_PORT_MIN=str(self.db_ports[0]),
            CONSOLE_DB_PORT_MAX=str(self.db_ports[1]),
            CONSOLE_ADMIN_PASSWORD=ADMIN_PASSWORD,
            CONSOLE_SYNC_SLOTS="2",
        )
        self.output = var.parent / "run-sh.out"
        with open(self.output, "wb") as out:
            self.proc = subprocess.Popen(
                ["bash", "scripts/run.sh"],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                umask=0o022,  # an operator's usual shell, not this process' (settings set 077)
            )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def api(self, method: str, path: str, body: dict[str, object] | None = None) -> object:
        token = base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
        request = urllib.request.Request(  # noqa: S310 - the console this test started
            self.url + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return json.loads(response.read())

    def answers(self) -> bool:
        return console_answers(self.url, self.proc, self.output)

    def stop(self) -> int:
        """Ctrl-C's way out: SIGTERM to run.sh, which stops what it started."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode

    def kill_databases(self) -> None:
        """Database processes outlive run.sh on purpose; the test ends them by their pidfiles."""
        for pidfile in (self.var / "databases").glob("bdb-*/shard-*/redis.pid"):
            with contextlib.suppress(ProcessLookupError, ValueError, OSError):
                os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)


@pytest.fixture
def make_run(tmp_path: Path) -> Iterator[MakeRun]:
    run = MakeRun(tmp_path / "var")
    try:
        yield run
    finally:
        run.stop()
        run.kill_databases()


def _modes(var: Path) -> dict[str, int]:
    found = {".": stat.S_IMODE(var.stat().st_mode)}
    for path in var.rglob("*"):
        if not path.is_symlink() and path.exists():
            found[str(path.relative_to(var))] = stat.S_IMODE(path.stat().st_mode)
    return found


def test_make_run_keeps_var_private_and_its_control_redis_locked(make_run: MakeRun) -> None:
    wait_for(make_run.answers, what=f"run.sh to serve {make_run.url}", timeout=180)
    # A database, so that its files (config, ACL, AOF, log, pidfile) are there too.
    created = make_run.api(
        "POST", "/v1/bdbs", {"name": "files", "memory_size": 8 << 20, "data_persistence": "aof"}
    )
    assert isinstance(created, dict)
    uid = created["uid"]

    def active() -> bool:
        body = make_run.api("GET", f"/v1/bdbs/{uid}")
        assert isinstance(body, dict) and body["status"] != "error", body
        return bool(body["status"] == "active")

    wait_for(active, what="the database to start", timeout=180)
    # The sync gateway runs with the rest and answers a hello (here: a wrong password).
    with socket.create_connection(("127.0.0.1", make_run.gateway_port), timeout=30) as gw:
        gw.sendall(Hello(int(created["port"]), 6, "admin", "not-the-password").pack())
        assert gw.recv(200).startswith(b"-WRONGPASS")
    var = make_run.var
    wait_for(
        lambda: (var / "celerybeat-schedule").exists() or list(var.glob("celerybeat-*")),
        what="beat's schedule file",
    )
    for expected in (
        "console.sqlite3",
        "secret_key",
        "encryption.key",
        "control-redis.password",
        "control-redis/redis.conf",
        "log/control-redis.log",
        "log/http.log",
        "log/gateway.log",
        f"databases/bdb-{uid}/shard-0/users.acl",
        f"databases/bdb-{uid}/shard-0/redis.log",
    ):
        assert (var / expected).exists(), expected
    assert list((var / "control-redis").rglob("*.aof")), "the control Redis' append-only file"
    assert list((var / "databases").rglob("*.aof")), "the database's append-only file"

    opened = {path: mode for path, mode in _modes(var).items() if mode & 0o077}
    assert opened == {}, {path: oct(mode) for path, mode in opened.items()}
    directories = [p for p in [var, *var.rglob("*")] if p.is_dir()]
    assert all(stat.S_IMODE(d.stat().st_mode) == 0o700 for d in directories)

    # The control Redis: loopback only, a password, which never reaches a log or a command line.
    password = (var / "control-redis.password").read_text().strip()
    assert len(password) >= 32
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=make_run.redis_port).ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=make_run.redis_port, password="guess").ping()
    control = redis.Redis(port=make_run.redis_port, password=password)
    assert control.config_get("bind")["bind"] == "127.0.0.1 -::1"
    assert control.config_get("protected-mode")["protected-mode"] == "yes"
    for path in (var / "log").iterdir():
        assert password not in path.read_text(errors="replace"), path
    assert password not in make_run.output.read_text(errors="replace")
    for proc_dir in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            assert password.encode() not in (proc_dir / "cmdline").read_bytes(), proc_dir

    assert make_run.stop() == 0
    assert "stopping the console" in make_run.output.read_text()
