"""Fixtures for the syncer's integration tests: real servers, an engine in a thread, the CLI."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from replication.syncer.engine import SyncEngine
from replication.syncer.status import SourceStatus
from tests.support.servers import RedisServer
from tests.support.wait import wait_for

REPO = Path(__file__).resolve().parents[3]


class EngineThread:
    """A SyncEngine running in its own thread and event loop, so tests stay synchronous."""

    def __init__(self, engine: SyncEngine) -> None:
        self.engine = engine
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self.engine.run())
        except BaseException as exc:  # the test inspects it
            self.error = exc

    def start(self) -> EngineThread:
        self.thread.start()
        return self

    @property
    def done(self) -> bool:
        return not self.thread.is_alive()

    def status(self, i: int = 0) -> SourceStatus:
        return self.engine.statuses()[i]

    def wait_phase(self, phase: str, *, i: int = 0, timeout: float = 120.0) -> SourceStatus:
        def check() -> SourceStatus | None:
            if self.done:
                raise AssertionError(f"engine ended while waiting for {phase}: {self.error!r}")
            st = self.status(i)
            return st if st.phase == phase else None

        return wait_for(
            check, what=f"source {i} {phase} (now {self.status(i).as_dict()})", timeout=timeout
        )

    def wait_offset(self, offset: int, *, i: int = 0, timeout: float = 120.0) -> None:
        """Wait until every link of source `i` applied up to `offset` (single-link sources)."""
        wait_for(
            lambda: all(ln.offset >= offset for ln in self.status(i).links),
            what=f"offset {offset} applied (now {self.status(i).as_dict()})",
            timeout=timeout,
        )

    def wait_done(self, timeout: float = 120.0) -> BaseException | None:
        wait_for(lambda: self.done, what="engine to finish", timeout=timeout)
        return self.error

    def stop(self) -> None:
        self.engine.stop()
        self.thread.join(60)
        assert not self.thread.is_alive(), "engine did not stop"


@pytest.fixture
def servers() -> Iterator[Callable[..., RedisServer]]:
    """Factory of started servers, all stopped at the end of the test."""
    started: list[RedisServer] = []

    def make(**kwargs: Any) -> RedisServer:
        server = RedisServer(**kwargs)
        started.append(server)
        return server.start()

    yield make
    for s in started:
        s.stop()


@pytest.fixture
def engines() -> Iterator[Callable[..., EngineThread]]:
    running: list[EngineThread] = []

    def make(*args: Any, **kwargs: Any) -> EngineThread:
        kwargs.setdefault("backoff_max", 1.0)
        et = EngineThread(SyncEngine(*args, **kwargs)).start()
        running.append(et)
        return et

    yield make
    for et in running:
        if not et.done:
            et.stop()


def source_offset(server: RedisServer) -> int:
    info = server.client().info("replication")
    return int(info["master_repl_offset"])


def in_sync_and_caught_up(et: EngineThread, source: RedisServer, i: int = 0) -> None:
    """Source `i` streams and has applied everything `source` has written so far."""
    et.wait_phase("in-sync", i=i)
    et.wait_offset(source_offset(source), i=i)


class Cli:
    """`python -m replication.syncer` as a child process (so that it can be killed with -9)."""

    def __init__(self, *args: str, log: Path) -> None:
        self.log = log
        self.fh = open(log, "ab")  # noqa: SIM115 - closed in wait()/kill()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "replication.syncer", *args],
            cwd=REPO,
            stdout=self.fh,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self.fh.close()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.fh.close()
        return self.proc.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Callable[..., Cli]]:
    procs: list[Cli] = []

    def make(*args: str) -> Cli:
        c = Cli(*args, log=tmp_path / f"syncer-{len(procs)}.log")
        procs.append(c)
        return c

    yield make
    for c in procs:
        if c.proc.poll() is None:
            c.proc.kill()
            c.proc.wait(10)
        if not c.fh.closed:
            c.fh.close()
