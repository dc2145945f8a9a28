"""What the rows of the fault matrix (tests/faults/) share: a stopwatch that prints each row's
recovery path and time, a process's peak memory, the syncer's events, and the fixtures `engines`
(a `SyncEngine` in a thread) and `own_servers` (redis-server processes), stopped after the row.

Each row prints one line, `FAULT ROW <n>: <what> | recovery: <path> | <seconds> s`, collected
with `pytest -s` (or `-rA`), so that the closing note of the matrix can quote them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Self

import pytest

from replication.syncer.engine import SyncEngine
from replication.syncer.events import EventKind, SyncEvent
from tests.replication.syncer.conftest import EngineThread
from tests.support.servers import RedisServer
from tests.support.wait import wait_for


class Stopwatch:
    """`with Stopwatch(13, "what") as sw: ...; sw.done("full sync, 1 snapshot")` prints the row's
    line; `sw.seconds` is the time from the start (or from `sw.restart()`, the fault itself)."""

    def __init__(self, row: int, what: str) -> None:
        self.row, self.what = row, what
        self.started = time.monotonic()
        self.seconds: float | None = None

    def __enter__(self) -> Self:
        self.started = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def restart(self) -> None:
        """The clock starts now (at the fault)."""
        self.started = time.monotonic()

    def done(self, recovery: str) -> float:
        self.seconds = time.monotonic() - self.started
        print(f"\nFAULT ROW {self.row}: {self.what} | recovery: {recovery} | {self.seconds:.1f} s")
        return self.seconds


def kinds(events: list[SyncEvent]) -> list[str]:
    return [str(e.kind) for e in events]


def messages(events: list[SyncEvent], kind: EventKind) -> list[str]:
    return [e.message for e in events if e.kind is kind]


def peak_rss_kb(pid: int) -> int:
    """The peak resident set of process `pid` so far (VmHWM of /proc/<pid>/status), in kB."""
    text = Path(f"/proc/{pid}/status").read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith("VmHWM:"))
    return int(line.split()[1])


def offset_of(server: RedisServer) -> int:
    return int(server.client().info("replication")["master_repl_offset"])


def caught_up_with(et: EngineThread, src: RedisServer, i: int = 0) -> None:
    """Source `i` streams and has applied everything `src` has written so far."""
    et.wait_phase("in-sync", i=i)
    target = offset_of(src)
    wait_for(
        lambda: all(ln.offset >= target for ln in et.status(i).links),
        what=f"source {i} offset {target} applied (now {et.status(i).as_dict()})",
    )


# Fixtures of the rows' modules, imported there as `engines_fixture` and `own_servers_fixture`:
# engines in threads and servers, all stopped at the end of the row.


@pytest.fixture(name="engines")
def engines_fixture() -> Iterator[Callable[..., EngineThread]]:
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


@pytest.fixture(name="own_servers")
def own_servers_fixture() -> Iterator[Callable[..., RedisServer]]:
    started: list[RedisServer] = []

    def make(**kwargs: Any) -> RedisServer:
        server = RedisServer(**kwargs)
        started.append(server)
        return server.start()

    yield make
    for s in started:
        s.stop()
