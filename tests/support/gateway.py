"""A sync gateway (replication/syncer/gatewayd.py) as a child process, for tests and benchmarks:
on a free port, killed by PID at the end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .servers import free_port, wait_for_port

REPO = Path(__file__).resolve().parents[2]


class GatewayProcess:
    """`python -m replication.syncer.gatewayd` serving the databases on `ports` of
    `database_host`; `prefix` runs it elsewhere (e.g. `ip netns exec <ns>`)."""

    def __init__(
        self,
        ports: range,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        database_host: str = "127.0.0.1",
        tls: tuple[str, str] | None = None,
        database_tls_ca: str | None = None,
        prefix: Sequence[str] = (),
        max_sessions: int | None = None,
    ) -> None:
        self.ports = ports
        self.host = host
        self.port = port or free_port()
        self.database_host = database_host
        self.tls = tls
        self.database_tls_ca = database_tls_ca
        self.prefix = list(prefix)
        self.max_sessions = max_sessions
        self.log = Path(tempfile.mkstemp(prefix=f"gateway-{self.port}-", suffix=".log")[1])
        self.proc: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        argv = [
            *self.prefix,
            sys.executable,
            "-m",
            "replication.syncer.gatewayd",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--database-host",
            self.database_host,
            "--ports",
            f"{self.ports.start}-{self.ports.stop - 1}",
        ]
        if self.tls is not None:
            argv += ["--tls-cert", self.tls[0], "--tls-key", self.tls[1]]
        if self.database_tls_ca is not None:
            argv += ["--database-tls-ca", self.database_tls_ca]
        if self.max_sessions is not None:
            argv += ["--max-sessions", str(self.max_sessions)]
        return argv

    def start(self, *, wait: bool = True) -> GatewayProcess:
        if self.proc is not None:
            raise RuntimeError("this gateway was started already")  # one process per object
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv(), cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ)
            )
        if wait and not self.prefix:
            wait_for_port(self.port, self.host)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu_seconds(self) -> float:
        """User + system CPU time of the gateway process so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.unlink(missing_ok=True)

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
