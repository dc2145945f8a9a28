"""Shared pieces of the benchmarks: servers, the DESIGN §6 workload, the syncer as a process."""

from __future__ import annotations

import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Self

import psutil
import redis

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from replication.syncer.checkpoint import CHECKPOINT_KEY, Checkpoint, CheckpointState  # noqa: E402
from replication.syncer.resp import pack_command  # noqa: E402
from tests.support.servers import RedisServer  # noqa: E402

RESULTS = REPO / "bench" / "results"
# Redis defaults, plus no wait before a diskless transfer (as the issue asks for both sides).
SOURCE_ARGS = ["--repl-diskless-sync-delay", "0"]


def server(*args: str, cpus: set[int] | None = None) -> RedisServer:
    """A redis-server with the benches' defaults; `cpus`: pinned there (every thread)."""
    srv = RedisServer(args=[*SOURCE_ARGS, *args]).start()
    if cpus is not None:
        pin(srv.pid, cpus)
    return srv


def pin(pid: int, cpus: set[int]) -> None:
    """Run every thread of process `pid` on `cpus` only (a thread started later inherits its
    creator's set, a forked child its parent's: redis-server's snapshot child included)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(tid), cpus)


class Pinning:
    """Where a bench runs its processes (the issue's "measure what matters").

    With two CPUs or more and pinning on: the source and the load generator (this process, its
    marker threads, redis-benchmark, redis-cli) on one CPU, the replica side (a native replica,
    or the syncer and its destination) on another, so that ours and native get equal CPU and
    the source's ops/s measures the replication protocol, not CPU taken from it. Otherwise
    every process may use every CPU (`--no-pin`)."""

    def __init__(self, enabled: bool) -> None:
        allowed = sorted(os.sched_getaffinity(0))
        self.active = enabled and len(allowed) >= 2
        self.all = set(allowed)
        self.source = {allowed[0]} if self.active else self.all
        self.replica = {allowed[1]} if self.active else self.all
        if self.active:
            pin(os.getpid(), self.source)  # children (servers, redis-benchmark) inherit it

    def describe(self) -> str:
        if not self.active:
            why = "--no-pin" if len(self.all) >= 2 else f"only {len(self.all)} CPU"
            return f"unpinned ({why}): every process on CPUs {sorted(self.all)}"
        return (
            f"pinned: source and load generator on CPU {min(self.source)}, "
            f"replica side (native replica, or syncer + destination) on CPU {min(self.replica)}"
        )

    def source_server(self, *args: str) -> RedisServer:
        return server(*args, cpus=self.source if self.active else None)

    def replica_server(self, *args: str) -> RedisServer:
        return server(*args, cpus=self.replica if self.active else None)

    def syncer(self, *args: str) -> Syncer:
        s = Syncer(*args)
        if self.active:
            pin(s.proc.pid, self.replica)
        return s


def pin_argument(ap: Any) -> None:
    """--no-pin and --runs, shared by the benches."""
    ap.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    ap.add_argument(
        "--runs", type=int, default=1, help="repeat, interleaved (native, ours, native, ours …)"
    )


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) of process `pid`, its reaped children included (a source's
    snapshot child is reaped by the server once the transfer ends)."""
    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system + t.children_user + t.children_system)


def min_median(values: Sequence[float], fmt: str = "{:.2f}") -> str:
    """'min / median' of repeated runs (a single run: its value)."""
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(min(values))} / {fmt.format(statistics.median(values))}"


def summary(values: Sequence[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def pipe_commands(cli: Sequence[str], commands: Iterable[bytes], batch: int = 10000) -> None:
    """Packed commands into `cli --pipe` (a redis-cli command line), `batch` at a time."""
    proc = subprocess.Popen([*cli, "--pipe"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    assert proc.stdin is not None
    out: list[bytes] = []
    for command in commands:
        out.append(command)
        if len(out) >= batch:
            proc.stdin.write(b"".join(out))
            out = []
    proc.stdin.write(b"".join(out))
    proc.stdin.close()
    proc.wait()


def populate_workload(
    srv: RedisServer | None,
    n: int,
    seed: int = 7,
    prefix: bytes = b"key",
    *,
    cli: Sequence[str] | None = None,
) -> float:
    """DESIGN §6: 70% strings of 100 B, 10% hashes of 10 fields, 10% lists of 10, 5% sets of 10,
    5% zsets of 10; 10% of keys with a TTL. Fed through `redis-cli --pipe` (`cli`: another
    redis-cli command line, e.g. inside a namespace); returns seconds."""
    t0 = time.monotonic()
    if cli is None:
        assert srv is not None
        cli = ["redis-cli", "-p", str(srv.port)]
    pipe_commands(cli, _workload(n, seed, prefix))
    return time.monotonic() - t0


def _workload(n: int, seed: int, prefix: bytes) -> Iterator[bytes]:
    rnd = random.Random(seed)
    pack = pack_command
    val = rnd.randbytes(4096)
    for i in range(n):
        key = b"%s:%d" % (prefix, i)
        r = i % 20
        if r < 14:
            o = rnd.randrange(0, 3900)
            yield pack((b"SET", key, val[o : o + 100]))
        elif r < 16:
            yield pack(
                (b"HSET", key, *[x for j in range(10) for x in (b"f%d" % j, b"v%d" % (i + j))])
            )
        elif r < 18:
            yield pack((b"RPUSH", key, *[b"e%d" % (i + j) for j in range(10)]))
        elif r == 18:
            yield pack((b"SADD", key, *[b"m%d" % (i + j) for j in range(10)]))
        else:
            yield pack(
                (b"ZADD", key, *[x for j in range(10) for x in (b"%d" % j, b"z%d" % (i + j))])
            )
        if i % 10 == 3:
            yield pack((b"EXPIRE", key, b"%d" % (7200 + i % 3600)))


def checkpoint(dst: RedisServer | redis.Redis) -> Checkpoint | None:
    client = dst if isinstance(dst, redis.Redis) else dst.client()
    raw = client.hgetall(CHECKPOINT_KEY)
    values = [Checkpoint.decode(v if isinstance(v, bytes) else v.encode()) for v in raw.values()]
    return values[0] if values else None


def loaded(dst: RedisServer | redis.Redis) -> bool:
    c = checkpoint(dst)
    return c is not None and c.state is CheckpointState.STREAMING


class Syncer:
    """`python -m replication.syncer` as a child process, with its peak RSS sampled."""

    def __init__(self, *args: str, prefix: Sequence[str] = ()) -> None:
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", "replication.syncer", *args, "--quiet"],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.peak_rss = 0
        self.ps = psutil.Process(self.proc.pid)
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._sample, daemon=True)
        self._t.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            try:
                self.peak_rss = max(self.peak_rss, self.ps.memory_info().rss)
            except psutil.Error:
                return

    def cpu_seconds(self) -> float:
        t = self.ps.cpu_times()
        return float(t.user + t.system)

    def stop(self) -> str:
        self.proc.send_signal(2)
        try:
            _, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        self._stop.set()
        return err.decode(errors="replace")


class BackgroundThreads:
    """Threads started on `with` and joined on its exit, after `stop` is set."""

    def __init__(self, *targets: Callable[[], None]) -> None:
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=t) for t in targets]

    def __enter__(self) -> Self:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()


def native_in_sync(c: redis.Redis) -> bool:
    """A native replica has loaded its snapshot and streams (its link up, no sync running)."""
    info = c.info("replication")
    return info.get("master_link_status") == "up" and not info.get("master_sync_in_progress")


def wait(cond: Any, what: str, timeout: float = 600.0, period: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(period)


def machine_load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}, {os.cpu_count()} CPUs"


def write_results(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(data, indent=2))
    return path


def table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
