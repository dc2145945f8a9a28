"""The deployment of docs/deploy.md: its environment file passes `manage.py check --deploy` and
names every variable the console reads; the services started exactly as the systemd units in
deploy/systemd/ start them (their ExecStartPre/ExecStart/ExecStartPost command lines, expanded
with the environment file as systemd expands them, without systemd) run one Replica Of driven
through the API until the destination holds the source's data.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import secrets
import shlex
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from cryptography.fernet import Fernet
from django.conf import settings

from tests.plugin import CONTROL_REDIS_ACL
from tests.support.compare import assert_same_data
from tests.support.load import caught_up, populate
from tests.support.servers import RedisServer, free_port
from tests.support.wait import wait_for
from tests.support.workers import REPO

DEPLOY = REPO / "deploy"
UNITS = DEPLOY / "systemd"
ENV_FILE = DEPLOY / "console.env"
# Where the units expect the checkout and its virtualenv (docs/deploy.md, step 1).
INSTALL_DIR = "/opt/replicaof"
UNIT_PYTHON = f"{INSTALL_DIR}/.venv/bin/python"
# Started in this order, as `systemctl start` with the units' After= does.
SERVICES = ["http", "node-worker", "sync-worker", "beat"]
ADMIN_PASSWORD = "deploy-test-admin-password-1"
HOST = "console.example.com"


def read_env_file(path: Path = ENV_FILE) -> dict[str, str]:
    """systemd's EnvironmentFile= format as the file uses it: KEY=value lines, # comments."""
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Z_][A-Z0-9_]*", name), line
        env[name] = value
    return env


def with_secrets(env: dict[str, str]) -> dict[str, str]:
    """What step 3 of docs/deploy.md does to the file: generated keys and passwords."""
    filled = dict(env)
    filled["SECRET_KEY"] = secrets.token_urlsafe(50)
    filled["CONSOLE_ENCRYPTION_KEY"] = Fernet.generate_key().decode()
    filled["CONSOLE_ADMIN_PASSWORD"] = ADMIN_PASSWORD
    for name in ("DATABASE_URL", "REDIS_URL"):
        filled[name] = filled[name].replace("CHANGE-ME", secrets.token_urlsafe(16))
    assert not [name for name, value in filled.items() if "CHANGE-ME" in value]
    return filled


def process_env(unit_env: dict[str, str]) -> dict[str, str]:
    """A service's environment: the unit's, plus what any process needs (PATH, a HOME)."""
    env = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "LC_ALL"}}
    env.update(unit_env)
    return env


def test_the_environment_file_names_every_variable_the_console_reads() -> None:
    read = set()
    for path in [*REPO.glob("config/*.py"), *REPO.glob("console/**/*.py")]:
        read |= set(re.findall(r"env_(?:str|int|bool|list)\(\s*\"([A-Z_0-9]+)\"", path.read_text()))
        read |= set(re.findall(r"os\.environ\.get\(\s*\"([A-Z_0-9]+)\"", path.read_text()))
    # Read by `manage.py console_user` (automation), never by a service.
    read -= {"DJANGO_SETTINGS_MODULE", "CONSOLE_USER_PASSWORD"}
    assert {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "CONSOLE_ADMIN_PASSWORD"} <= read
    assert read - set(read_env_file()) == set()
    # The sync worker's unit sizes its pool with it.
    assert "CONSOLE_SYNC_SLOTS" in read_env_file()


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=process_env(env),
        capture_output=True,
        text=True,
        check=False,
    )


def test_check_deploy_passes_with_the_environment_file(tmp_path: Path) -> None:
    """Through deploy/manage.sh, the guide's way of running manage.py with the file."""
    values = with_secrets(read_env_file())
    values.update(CONSOLE_VAR_DIR=str(tmp_path / "var"), CONSOLE_DATA_DIR=str(tmp_path / "data"))
    lines = []
    for line in ENV_FILE.read_text().splitlines():
        name, sep, _ = line.partition("=")
        lines.append(f"{name}={values[name]}" if sep and name in values else line)
    env_file = tmp_path / "console.env"
    env_file.write_text("\n".join(lines) + "\n")
    checked = subprocess.run(
        [str(DEPLOY / "manage.sh"), "check", "--deploy", "--fail-level", "WARNING"],
        env=process_env({"CONSOLE_ENV_FILE": str(env_file), "CONSOLE_PYTHON": sys.executable}),
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "no issues" in checked.stdout
    # Nothing generated into var/: every secret came from the environment.
    assert not (tmp_path / "var" / "secret_key").exists()
    assert not (tmp_path / "var" / "encryption.key").exists()


def test_the_environment_file_as_shipped_refuses_to_start(tmp_path: Path) -> None:
    """CHANGE-ME is no secret key: the console fails loudly instead of running with it."""
    env = read_env_file()
    env.update(CONSOLE_VAR_DIR=str(tmp_path / "var"))
    checked = _manage(env, "check")
    assert checked.returncode != 0
    assert "SECRET_KEY must be at least 50 characters" in checked.stderr
    env["SECRET_KEY"] = secrets.token_urlsafe(50)
    checked = _manage(env, "check")
    assert checked.returncode != 0
    assert "CONSOLE_ENCRYPTION_KEY must be a Fernet key" in checked.stderr
    assert "CHANGE-ME" not in checked.stderr


# --- the units ---------------------------------------------------------------------------------


def unit_service_section(name: str) -> dict[str, list[str]]:
    """The [Service] settings of deploy/systemd/replicaof-<name>.service (repeatable keys as
    lists, in order)."""
    section = ""
    found: dict[str, list[str]] = {}
    for line in (UNITS / f"replicaof-{name}.service").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]":
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def expand(command: str, env: dict[str, str]) -> list[str]:
    """An Exec line as systemd runs it: `${VAR}` replaced by its value as one word, then split
    into words; the units' virtualenv Python is this test's interpreter."""
    assert "%" not in command, "the units use no specifiers"

    def value(match: re.Match[str]) -> str:
        return shlex.quote(env[match.group(1)])

    argv = shlex.split(re.sub(r"\$\{([A-Z_0-9]+)\}", value, command))
    return [sys.executable if word == UNIT_PYTHON else word for word in argv]


@dataclass
class Service:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path


@dataclass
class Deployment:
    """The services of one host, started from their units in a var/ of their own."""

    env: dict[str, str]
    var: Path
    services: list[Service] = field(default_factory=list)
    # What the ExecStartPre/ExecStartPost commands printed (the journal, under systemd).
    printed: list[bytes] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.env['CONSOLE_HTTP_PORT']}"

    def start(self, name: str) -> None:
        unit = unit_service_section(name)
        assert unit["WorkingDirectory"] == [INSTALL_DIR]
        assert unit["EnvironmentFile"] == ["/etc/replicaof/console.env"]
        assert unit["UMask"] == ["0077"]
        env = process_env(self.env)
        log = self.var / f"{name}.log"
        for command in unit.get("ExecStartPre", []):
            done = subprocess.run(
                expand(command, self.env), cwd=REPO, env=env, capture_output=True, check=False
            )
            assert done.returncode == 0, (command, done.stdout, done.stderr)
            self.printed += [done.stdout, done.stderr]
        (command,) = unit["ExecStart"]
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                expand(command, self.env),
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                umask=0o077,
            )
        self.services.append(Service(name, proc, log))
        for command in unit.get("ExecStartPost", []):
            done = subprocess.run(
                expand(command, self.env), cwd=REPO, env=env, capture_output=True, check=False
            )
            assert done.returncode == 0, (command, done.stderr, log.read_text()[-3000:])
            self.printed += [done.stdout, done.stderr]
        assert proc.poll() is None, log.read_text()[-3000:]

    def stop(self) -> None:
        """`systemctl stop` in reverse order: SIGTERM to the main process (KillMode=process)
        or its whole group (control-group, the default), SIGKILL after TimeoutStopSec."""
        for service in reversed(self.services):
            kill_mode = unit_service_section(service.name).get("KillMode", ["control-group"])[0]
            with contextlib.suppress(ProcessLookupError):
                if kill_mode == "process":
                    service.proc.send_signal(signal.SIGTERM)
                else:
                    os.killpg(service.proc.pid, signal.SIGTERM)
            try:
                service.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(service.proc.pid, signal.SIGKILL)
                service.proc.wait()
        self.services.clear()

    def database_pids(self) -> list[int]:
        pids = []
        for pidfile in Path(self.env["CONSOLE_DATA_DIR"]).glob("bdb-*/shard-*/redis.pid"):
            with contextlib.suppress(ValueError, OSError):
                pids.append(int(pidfile.read_text().strip()))
        return pids

    def api(self, method: str, path: str, body: object | None = None) -> dict[str, object]:
        """Through the proxy's eyes: HTTPS forwarded (CONSOLE_HTTPS is on), the public name."""
        token = base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
        request = urllib.request.Request(  # noqa: S310 - the console this test started
            self.url + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={
                "Authorization": f"Basic {token}",
                "Content-Type": "application/json",
                "Host": HOST,
                "X-Forwarded-Proto": "https",
                "X-Forwarded-For": "192.0.2.10",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
                answer = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{method} {path}: {exc.code} {exc.read()!r}") from None
        assert isinstance(answer, dict)
        return answer


@contextlib.contextmanager
def _sql_database_url(tmp_path: Path) -> Iterator[str]:
    """The run's own PostgreSQL when it has one (a database of its own in it), else SQLite."""
    db = settings.DATABASES["default"]
    if not db["ENGINE"].endswith("postgresql"):
        yield f"sqlite:///{tmp_path / 'console.sqlite3'}"
        return
    import psycopg

    name = f"deploy_{os.getpid()}_{secrets.token_hex(4)}"
    server = f"host={db['HOST']} port={db['PORT']} user={db['USER']} dbname=postgres"
    with psycopg.connect(server, password=db["PASSWORD"], autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{name}"
    finally:
        with psycopg.connect(server, password=db["PASSWORD"], autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    """The environment file with step 3's secrets, pointed at this test's own PostgreSQL (or
    SQLite) and an ACL-protected control Redis, on free ports, in a var/ of its own."""
    password = secrets.token_urlsafe(24)
    control = RedisServer(password=secrets.token_urlsafe(24)).start()
    admin = control.client()
    admin.execute_command("ACL", "SETUSER", "console", "on", f">{password}", *CONTROL_REDIS_ACL)
    admin.execute_command("ACL", "SETUSER", "default", "off")
    admin.close()
    var = tmp_path / "var"
    cleanup = contextlib.ExitStack()
    cleanup.callback(control.stop)
    env = with_secrets(read_env_file())
    env.update(
        DATABASE_URL=cleanup.enter_context(_sql_database_url(tmp_path)),
        REDIS_URL=f"redis://console:{password}@127.0.0.1:{control.port}/0",
        CONSOLE_VAR_DIR=str(var),
        CONSOLE_DATA_DIR=str(var / "databases"),
        CONSOLE_HTTP_PORT=str(free_port()),
        CONSOLE_NODE_NAME=f"deploy{os.getpid()}",
        # Below the top 50 of the suite's range (tests/test_make_run.py takes those).
        CONSOLE_DB_PORT_MIN=str(settings.DB_PORT_MAX - 99),
        CONSOLE_DB_PORT_MAX=str(settings.DB_PORT_MAX - 50),
        CONSOLE_SYNC_SLOTS="2",
        CONSOLE_RECONCILE_INTERVAL="1",
        CONSOLE_REDIS_SERVER=settings.REDIS_SERVER_BIN,
    )
    var.mkdir(mode=0o700)
    deployment = Deployment(env, var)
    with cleanup:
        try:
            yield deployment
        finally:
            deployment.stop()
            for pid in deployment.database_pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.integration
def test_the_units_command_lines_run_a_replica_of(deployment: Deployment) -> None:
    for name in SERVICES:
        deployment.start(name)
    # The first start bootstrapped the admin from the environment and did not print the password.
    printed = b"".join(deployment.printed)
    assert b"ADMIN LOGIN  user: admin  password: from CONSOLE_ADMIN_PASSWORD" in printed
    assert ADMIN_PASSWORD.encode() not in printed

    def create(name: str) -> int:
        body = {
            "name": name,
            "memory_size": 64 << 20,
            "authentication_redis_pass": f"{name}-password-1",
        }
        uid = deployment.api("POST", "/v1/bdbs", body)["uid"]
        assert isinstance(uid, int)
        wait_for(
            lambda: deployment.api("GET", f"/v1/bdbs/{uid}")["status"] == "active",
            what=f"database {name} to start",
        )
        return uid

    source_uid = create("source")
    dest_uid = create("dest")

    def client(uid: int) -> redis.Redis:
        """As `admin`, from the database's source URL: the comparison needs DEBUG DIGEST-VALUE,
        which applications (`default`) may not run."""
        url = deployment.api("POST", f"/v1/bdbs/{uid}/actions/replica_source_url")["uri"]
        assert isinstance(url, str) and url.startswith("redis://admin:")
        return redis.Redis.from_url(url)

    source = client(source_uid)
    dest = client(dest_uid)
    populate(source, 3000)
    deployment.api("PUT", f"/v1/bdbs/{dest_uid}", {"replica_sources": [{"bdb_uid": source_uid}]})

    def in_sync() -> bool:
        bdb = deployment.api("GET", f"/v1/bdbs/{dest_uid}")
        sources = bdb["replica_sources"]
        assert isinstance(sources, list) and len(sources) == 1
        assert sources[0]["status"] != "out-of-sync" or not sources[0]["last_error"], sources
        return bool(bdb["replica_sync"] == "enabled" and sources[0]["status"] == "in-sync")

    wait_for(in_sync, what="the destination to be in sync", timeout=300)
    populate(source, 500, prefix="after", seed=2)
    source.delete("k:1", "k:2")
    caught_up(source, dest)
    assert assert_same_data([source], [dest]) == 3500 - 2

    # /healthz through the proxy's headers, too.
    assert deployment.api("GET", "/healthz") == {
        "status": "ok",
        "checks": {"database": "ok", "control_redis": "ok"},
    }

    # KillMode=process: stopping the node worker leaves its databases running.
    pids = deployment.database_pids()
    assert len(pids) == 2
    deployment.stop()
    assert all(_alive(pid) for pid in pids)
    assert dest.get("after:1") == source.get("after:1") is not None
    secrets_in_env = [deployment.env[k] for k in ("SECRET_KEY", "CONSOLE_ENCRYPTION_KEY")]
    for url in (deployment.env["REDIS_URL"], deployment.env["DATABASE_URL"]):
        secrets_in_env += [p for p in [urlsplit(url).password] if p]
    for log in deployment.var.glob("*.log"):
        text = log.read_text(errors="replace")
        assert not [v for v in [ADMIN_PASSWORD, *secrets_in_env] if v in text], log
