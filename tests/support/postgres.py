"""A PostgreSQL cluster of the test run's own: Debian's binaries, `initdb` + `pg_ctl` in a temporary
directory, a free loopback port, a password; stopped and deleted afterwards.

Never the PostgreSQL that the machine may run (the system service on 5432): nothing here reads
its configuration, socket directory or port. PostgreSQL refuses to run as root, so as root the
cluster belongs to the `postgres` system user (or `nobody`), which owns the temporary directory.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.servers import free_port

_STARTUP_WAIT_S = 60.0


def postgres_bindir() -> Path:
    """The newest /usr/lib/postgresql/<version>/bin (Debian's layout; bootstrap.sh installs it)."""
    root = Path("/usr/lib/postgresql")
    found = sorted(
        (p for p in root.glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not found:
        raise RuntimeError("PostgreSQL is not installed (scripts/bootstrap.sh dev installs it)")
    return found[-1]


def _run_as() -> str | None:
    """The system user that runs the cluster when this process is root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("running as root and no postgres/nobody user to run PostgreSQL as")


class PostgresServer:
    """One PostgreSQL cluster: `start()` makes and starts it, `stop()` kills it and deletes it."""

    def __init__(
        self, *, user: str = "console", database: str = "console", parent: str | None = None
    ) -> None:
        self.bindir = postgres_bindir()
        self.user = user
        self.database = database
        self.password = secrets.token_urlsafe(24)
        self.port = free_port()
        self.owner = _run_as()
        # `parent`: a directory the caller cleans up even if this process is killed
        # (scripts/test.sh's trap); it must be reachable by the cluster's owner.
        self.dir = Path(tempfile.mkdtemp(prefix=f"console-pg-{self.port}-", dir=parent))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self.pid: int | None = None

    @property
    def url(self) -> str:
        return (
            f"postgres://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.database}"
            "?sslmode=disable"
        )

    def _run(self, *argv: str, password: bool = False) -> subprocess.CompletedProcess[bytes]:
        """A PostgreSQL program as the cluster's owner, in a minimal environment."""
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"}
        if password:
            env["PGPASSWORD"] = self.password
        return subprocess.run(
            list(argv), check=True, capture_output=True, cwd=self.dir, user=self.owner, env=env
        )

    def start(self) -> PostgresServer:
        try:
            if self.owner:
                shutil.chown(self.dir, user=self.owner)
            pwfile = self.dir / "pwfile"
            pwfile.write_text(self.password + "\n")
            pwfile.chmod(0o600)
            if self.owner:
                shutil.chown(pwfile, user=self.owner)
            self._run(
                str(self.bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                self.user,
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--no-sync",
            )
            pwfile.unlink()
            # Loopback TCP only; the socket lives in the temporary directory, never in
            # /var/run/postgresql. No durability needed: the cluster lives for one test run.
            options = " ".join(
                [
                    "-c listen_addresses=127.0.0.1",
                    f"-p {self.port}",
                    f"-c unix_socket_directories={self.dir}",
                    "-c fsync=off",
                    "-c synchronous_commit=off",
                    "-c full_page_writes=off",
                    "-c max_connections=300",
                ]
            )
            self._run(
                str(self.bindir / "pg_ctl"),
                "start",
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-o",
                options,
                "-w",
                "-t",
                str(int(_STARTUP_WAIT_S)),
            )
            self.pid = int((self.data / "postmaster.pid").read_text().split()[0])
            self._wait_ready()
            self._run(
                str(self.bindir / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                self.user,
                self.database,
                password=True,
            )
        except subprocess.CalledProcessError as exc:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            self.stop()
            raise RuntimeError(
                f"PostgreSQL did not start: {exc.stderr.decode(errors='replace')}\n{log}"
            ) from None
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _STARTUP_WAIT_S
        while True:
            ready = subprocess.run(
                [str(self.bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                capture_output=True,
                check=False,
            )
            if ready.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL on port {self.port} did not get ready")
            time.sleep(0.1)

    def stop(self) -> None:
        """Immediate shutdown, then SIGKILL of the postmaster by its PID, then the directory."""
        if self.data.joinpath("postmaster.pid").exists():
            with contextlib.suppress(subprocess.CalledProcessError, OSError):
                self._run(
                    str(self.bindir / "pg_ctl"),
                    "stop",
                    "-D",
                    str(self.data),
                    "-m",
                    "immediate",
                    "-w",
                    "-t",
                    "30",
                )
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self.pid = None
        shutil.rmtree(self.dir, ignore_errors=True)
