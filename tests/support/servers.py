"""Real redis-server processes for tests and benchmarks: free ports, private dirs, cleanup by PID.

Every server is a child process started with an explicit argv; `stop()` always ends with a kill of
that PID, so a crashed test never leaves a server behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import redis

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
_STARTUP_WAIT_S = 20.0


def free_port() -> int:
    """A TCP port that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_cluster_port() -> int:
    """A free port usable by a cluster node: its bus port (+10000) must exist and be free too."""
    while True:
        port = free_port()
        if port > 55535:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = _STARTUP_WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


class RedisServer:
    """One redis-server (or valkey-server) child process on a free loopback port."""

    def __init__(
        self,
        *,
        binary: str = REDIS_SERVER,
        args: Sequence[str] = (),
        password: str | None = None,
        port: int | None = None,
        workdir: Path | None = None,
    ) -> None:
        self.binary = binary
        self.extra_args = list(args)
        self.password = password
        self.port = port or free_port()
        self._own_dir = workdir is None
        self.dir = workdir or Path(tempfile.mkdtemp(prefix=f"redis-{self.port}-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}"

    @property
    def logfile(self) -> Path:
        return self.dir / "server.log"

    def argv(self) -> list[str]:
        argv = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.dir),
            "--logfile",
            str(self.logfile),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--protected-mode",
            "no",
        ]
        # DEBUG DIGEST / DEBUG RELOAD are how tests compare and reshape datasets (Redis >= 7).
        argv += ["--enable-debug-command", "yes"]
        if self.password:
            argv += ["--requirepass", self.password]
        return argv + self.extra_args

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(self.argv(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + _STARTUP_WAIT_S
        while True:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                log = self.logfile.read_text() if self.logfile.exists() else ""
                raise RuntimeError(f"{self.binary} exited at start: {err}\n{log[-2000:]}")
            try:
                if self.client().ping():
                    return self
            except (redis.ConnectionError, redis.BusyLoadingError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.binary} on port {self.port} did not answer")
            time.sleep(0.02)

    def client(self, **kwargs: object) -> redis.Redis:
        opts: dict[str, object] = {
            "host": "127.0.0.1",
            "port": self.port,
            "password": self.password,
        }
        opts.update(kwargs)
        return redis.Redis(**opts)  # type: ignore[arg-type]

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Kill the process (no cleanup of the data dir); `start()` may be called again."""
        if self.proc and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, sig)
            self.proc.wait(timeout=10)

    def restart(self) -> RedisServer:
        self.kill(signal.SIGTERM)
        return self.start()

    def command_calls(self, command: str) -> int:
        """How many times `command` ran on this server (INFO commandstats)."""
        stats = self.client().info("commandstats").get(f"cmdstat_{command}")
        return int(stats["calls"]) if stats else 0

    def stop(self) -> None:
        self.kill(signal.SIGKILL)
        if self.proc and self.proc.stderr:
            self.proc.stderr.close()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RedisClusterServers:
    """N primaries forming a Redis Cluster with the 16384 slots split evenly."""

    def __init__(
        self, shards: int, *, binary: str = REDIS_SERVER, args: Sequence[str] = ()
    ) -> None:
        self.nodes = [
            RedisServer(
                binary=binary,
                args=["--cluster-enabled", "yes", "--cluster-node-timeout", "5000", *args],
                port=free_cluster_port(),
            )
            for _ in range(shards)
        ]

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def start(self) -> RedisClusterServers:
        try:
            for node in self.nodes:
                node.extra_args += ["--cluster-config-file", str(node.dir / "nodes.conf")]
                node.start()
            n = len(self.nodes)
            for i, node in enumerate(self.nodes):
                lo, hi = 16384 * i // n, 16384 * (i + 1) // n - 1
                node.client().execute_command("CLUSTER", "ADDSLOTSRANGE", lo, hi)
            first = self.nodes[0].client()
            for node in self.nodes[1:]:
                first.execute_command("CLUSTER", "MEET", "127.0.0.1", node.port)
            deadline = time.monotonic() + 30
            while True:
                infos = [nd.client().execute_command("CLUSTER", "INFO") for nd in self.nodes]
                if all(b"cluster_state:ok" in i for i in infos) and all(
                    len(nd.client().execute_command("CLUSTER", "NODES").splitlines()) == n
                    for nd in self.nodes
                ):
                    return self
                if time.monotonic() > deadline:
                    raise RuntimeError("cluster did not reach cluster_state:ok")
                time.sleep(0.05)
        except Exception:
            self.stop()
            raise

    def client(self) -> redis.RedisCluster:
        return redis.RedisCluster(host="127.0.0.1", port=self.nodes[0].port)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> RedisClusterServers:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def silent_port() -> Iterator[int]:
    """A loopback port where connections are accepted (by the kernel's backlog) and nothing is
    ever said: a server that hangs, for timeouts."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield int(s.getsockname()[1])


@contextlib.contextmanager
def redis_server(**kwargs: object) -> Iterator[RedisServer]:
    server = RedisServer(**kwargs)  # type: ignore[arg-type]
    server.start()
    try:
        yield server
    finally:
        server.stop()
