"""The fault matrix's shared fixtures (issue 11): servers shared per module and put back to a
clean state before every row, the syncer run in-process or as the CLI, proxies on the link, a
tape of the statuses the syncer showed, and the figures each row measured.

- `rigs(n)`: n (source, destination) pairs of real servers, started once per module; before every
  row that asks for them each server runs again if a fault killed it, is flushed, and gets back
  every setting the previous row changed through `FaultServer.configure()`.
- `rig`: the first pair.
- `proxies(server)`: a `PartitionProxy` in front of `server` (tests/support/proxy.py, plus: a close
  from either side waits while paused, as a real partition would hold it).
- `engines(...)`: a `SyncEngine` in a thread (the fixture of tests/replication/syncer/conftest.py).
- `cli(...)`: `python -m replication.syncer` as a child process (the syncer tests' fixture), with
  `freeze`/`thaw` (SIGSTOP/SIGCONT), `peak_rss_kb` (VmHWM) and `event_lines` (its stderr log).
- `StatusTape`: what the syncer's status said, sampled every 0.1 s, to prove it told the truth.
- `figures(row, **values)`: a row's recovery path and times, printed at the end of the run (the
  closing note of issue 11 is written from them).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

# The syncer tests' fixtures, shared: `engines(source_urls, dest_url, **SyncEngine options)` and
# `cli(*argv)`.
from tests.replication.syncer.conftest import Cli, EngineThread, cli, engines  # noqa: F401
from tests.support.load import BatchLoad, Load, caught_up, populate
from tests.support.oracle import Recovery, SyncStats, assert_exact
from tests.support.proxy import TcpProxy
from tests.support.servers import RedisServer
from tests.support.wait import wait_for

# -- servers -------------------------------------------------------------------------------------


class FaultServer(RedisServer):
    """A RedisServer shared by the rows of a module: `configure()` changes settings for one row,
    `reset()` puts back the original values, flushes, and starts the server again if a fault
    left it down."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._changed: dict[str, str] = {}

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def configure(self, **settings: str | int) -> None:
        """CONFIG SET for this row (names with `_` for `-`), undone by `reset()`."""
        c = self.client()
        for name, value in settings.items():
            param = name.replace("_", "-")
            if param not in self._changed:
                self._changed[param] = str(c.config_get(param)[param])
            c.config_set(param, value)

    def reset(self) -> None:
        if not self.running:
            self.kill()
            self.start()
        c = self.client()
        for param, value in self._changed.items():
            c.config_set(param, value)
        self._changed.clear()
        c.flushall()
        with contextlib.suppress(FileNotFoundError):
            (self.dir / "dump.rdb").unlink()  # a restart must not bring back an older row's data

    def log_tail(self, since: int = 0, lines: int = 30) -> str:
        """The server's log from byte `since` on, its last `lines` lines (for failure messages)."""
        text = self.logfile.read_text(errors="replace")[since:] if self.logfile.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def info_int(self, section: str, field: str) -> int:
        return int(self.client().info(section).get(field, 0))


@dataclass
class Rig:
    """One source and one destination."""

    source: FaultServer
    dest: FaultServer

    def src(self) -> redis.Redis:
        return self.source.client()

    def dst(self) -> redis.Redis:
        return self.dest.client()


@pytest.fixture(scope="module")
def _rig_pool() -> Iterator[list[Rig]]:
    pool: list[Rig] = []
    yield pool
    for r in pool:
        r.source.stop()
        r.dest.stop()


@pytest.fixture
def rigs(_rig_pool: list[Rig]) -> Callable[[int], list[Rig]]:
    """`rigs(n)`: the module's first n pairs, made if missing, each clean for this row."""

    def get(n: int) -> list[Rig]:
        while len(_rig_pool) < n:
            # No wait before a diskless snapshot: every full sync of the matrix starts at once.
            r = Rig(FaultServer(args=["--repl-diskless-sync-delay", "0"]), FaultServer())
            r.source.start()
            r.dest.start()
            _rig_pool.append(r)
        for r in _rig_pool[:n]:
            r.source.reset()
            r.dest.reset()
        return _rig_pool[:n]

    return get


@pytest.fixture
def rig(rigs: Callable[[int], list[Rig]]) -> Rig:
    return rigs(1)[0]


# -- links ---------------------------------------------------------------------------------------


class _EndHeldWhilePaused:
    """A reader whose end (EOF, reset) is not reported while the proxy is paused."""

    def __init__(self, reader: asyncio.StreamReader, flowing: asyncio.Event) -> None:
        self.reader, self.flowing = reader, flowing

    async def read(self, n: int) -> bytes:
        try:
            data = await self.reader.read(n)
        except OSError:
            await self.flowing.wait()
            raise
        if not data:
            await self.flowing.wait()
        return data


class PartitionProxy(TcpProxy):
    """A TcpProxy whose pause holds the end of a connection too: while paused, a side that
    closes (the source dropping a replica after its `repl-timeout`) is not seen by the other
    side until `resume()`, as in a real partition where no FIN or RST crosses either."""

    async def _pump(self, reader: Any, writer: asyncio.StreamWriter, *, throttled: bool) -> None:
        assert self._flowing is not None
        held = _EndHeldWhilePaused(reader, self._flowing)
        await super()._pump(held, writer, throttled=throttled)  # type: ignore[arg-type]

    def stop(self) -> None:
        if self._thread.is_alive():
            self.resume()  # let every held end through, so every pump can finish
        super().stop()


@pytest.fixture
def proxies() -> Iterator[Callable[[RedisServer], PartitionProxy]]:
    made: list[PartitionProxy] = []

    def make(server: RedisServer) -> PartitionProxy:
        p = PartitionProxy(server.port)
        p.start()
        made.append(p)
        return p

    yield make
    for p in made:
        p.stop()


def via(proxy: TcpProxy) -> str:
    return f"redis://127.0.0.1:{proxy.port}"


# -- the syncer ----------------------------------------------------------------------------------


def freeze(c: Cli) -> None:
    """SIGSTOP: the process hears nothing and says nothing until `thaw()` (SIGKILL still ends
    it: the `cli` fixture's cleanup works on a frozen process)."""
    c.proc.send_signal(signal.SIGSTOP)


def thaw(c: Cli) -> None:
    c.proc.send_signal(signal.SIGCONT)


def peak_rss_kb(c: Cli) -> int:
    """VmHWM: the process's peak resident set size so far, in kB."""
    for line in Path(f"/proc/{c.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc/<pid>/status")


def event_lines(c: Cli, kind: str) -> list[str]:
    """The event lines of `kind` it logged (events.py: `<time> <LEVEL> <kind> <where>: …`)."""
    return [ln for ln in c.output().splitlines() if f" {kind} " in ln]


# -- loads and the verdict -----------------------------------------------------------------------

KEYS = 3000  # keys populated before a row's sync (~0.4 MB of RDB)


@contextlib.contextmanager
def writing(client: redis.Redis) -> Iterator[BatchLoad]:
    """Both loads of the matrix on `client`: `counter`/`log` one command at a time, and
    `b:counter`/`b:log`/`b:key:*` in batches of 50 (check them with `exact`)."""
    batches = BatchLoad(client, "b:")
    batches.n = int(client.get("b:counter") or 0)  # a load started again continues its log
    with Load(client), batches:
        yield batches


def exact(src: redis.Redis, dst: redis.Redis) -> int:
    """Caught up (a marker written to the source reached the destination), then the whole
    verdict with both loads of `writing`; returns how many keys were compared."""
    caught_up(src, dst)
    return assert_exact([src], [dst], loads=[(src, ""), (src, "b:")])


def flowing(dst: redis.Redis) -> None:
    """The destination is applying the load of `writing` right now (its batch counter moves)."""
    at = int(dst.get("b:counter") or 0)
    wait_for(lambda: int(dst.get("b:counter") or 0) > at, what="the load reaching the destination")


def reloaded(et: EngineThread, rounds: int = 2) -> Callable[[], bool]:
    """The engine is streaming again after its `rounds`-th full-sync round."""
    return lambda: et.engine.full_sync_rounds == rounds and et.status().phase == "in-sync"


def streaming_via_proxy(
    rig: Rig, proxies: Proxies, make_engine: Engines
) -> tuple[PartitionProxy, EngineThread]:
    """`KEYS` keys on the source, an engine syncing them through a proxy, in sync."""
    populate(rig.src(), KEYS)
    proxy = proxies(rig.source)
    et = make_engine([via(proxy)], rig.dest.url)
    et.wait_phase("in-sync")
    return proxy, et


# -- the types of the fixtures, for the rows' signatures ------------------------------------------

Rigs = Callable[[int], list[Rig]]
Engines = Callable[..., EngineThread]
Clis = Callable[..., Cli]
Proxies = Callable[[RedisServer], PartitionProxy]
Figures = Callable[..., None]


# -- what the status said ------------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    at: float  # monotonic
    phase: str
    lag_ms: float | None
    lag_exact: bool
    last_error: str | None


class StatusTape:
    """Samples `read()` (a source's status as_dict) every 0.1 s in a thread until closed."""

    def __init__(self, read: Callable[[], dict[str, Any]]) -> None:
        self.read = read
        self.seen: list[Seen] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            d = self.read()
            self.seen.append(
                Seen(time.monotonic(), d["status"], d["lag"], d["lag_exact"], d["last_error"])
            )
            self._stop.wait(0.1)

    def between(self, start: float, end: float) -> list[Seen]:
        return [s for s in self.seen if start <= s.at <= end]

    def __enter__(self) -> StatusTape:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def tape(et: EngineThread, i: int = 0) -> StatusTape:
    return StatusTape(lambda: et.status(i).as_dict())


def kinds(et: EngineThread) -> list[str]:
    return [str(e.kind) for e in et.engine.events()]


# -- figures -------------------------------------------------------------------------------------

_FIGURES: list[str] = []


@pytest.fixture
def figures() -> Callable[..., None]:
    """`figures("row 02", recovery, recover_s=0.41)`: printed now and in the run's summary;
    `recovery` (an oracle.Recovery, the SyncStats of a source that restarted, or None) adds what
    the source served: full / partial syncs."""

    def record(row: str, recovery: Recovery | SyncStats | None = None, **values: object) -> None:
        if recovery is not None:
            partial = recovery.partial if isinstance(recovery, Recovery) else recovery.partial_ok
            counts = ((recovery.full, "full"), (partial, "partial"))
            path = "+".join(f"{n} {name}" for n, name in counts if n)
            values = {"recovery": path or "none", **values}
        parts = " ".join(
            f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()
        )
        line = f"{row}: {parts}"
        _FIGURES.append(line)
        print(f"\nFAULTS {line}")

    return record


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _FIGURES:
        terminalreporter.section("fault matrix figures")
        for line in _FIGURES:
            terminalreporter.write_line(line)


class Clock:
    """Seconds since `start()`; `wait(predicate, what)` returns how long the condition took."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def start(self) -> float:
        self.t0 = time.monotonic()
        return self.t0

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def wait(self, predicate: Callable[[], object], *, what: str) -> float:
        wait_for(predicate, what=what)
        return self.elapsed()
