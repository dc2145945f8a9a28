"""A seeded random-fault run against the syncer CLI (issue 18): the schedule, the lie checks and
the verdict, shared by tests/faults/test_random.py (about a minute per case in CI) and
bench/faults.py (as long as asked, any seed, for people hunting bugs).

What runs: N sources (standalone; every other one with `--save`, so that a kill -9 brings it
back from an older RDB, the others come back empty), one destination (standalone, or a 3-shard
Redis Cluster), a TcpProxy between the syncer and each source (and the standalone destination),
a crash-safe INCR + RPUSH load per source (`SourceLoad`, key prefix `s<i>:`), and
`python -m replication.syncer` on a pseudo-terminal (its status line is then drawn every
status tick, 4 per second, instead of every 5 s as on a pipe).

`random.Random(seed)` picks, one fault at a time: link cuts (cut, then refused for a while),
silent pauses and throttles of a source link or of the destination link, kill -9 (restarted) and
SIGSTOP/SIGCONT of the syncer, kill -9 of a source and of the destination (one shard of a cluster).
Every kind comes once in each shuffled round of kinds; targets and durations are random.

Between faults and during them, every status line is checked (`LieChecker`). The checks are
built so that a truthful syncer cannot fail them, even on a slow machine:

- R1, a source link that is down (paused, refused or its server dead) for more than
  `EXACT_BOUND_S`: that source's status must not give an exact lag (without samples there is
  none; the syncer says `>= N`); for more than `PHASE_BOUND_S`: it must not say in-sync at all
  (the syncer says out-of-sync after 5 s without a sample).
- R1d, the destination link down for more than `EXACT_BOUND_S` while a source's load went on:
  that source must not claim an exact lag under a second (nothing it wrote since was applied).
- R2, a part that says `in-sync lag L ms` (exact) read at time t: the destination's counter of
  that source, read right after the line, must hold every INCR that the source had acknowledged
  by t - L - `LAG_SLACK_S` (the slack covers the lag's sampling period, the 1 s staleness bound
  and a slow reader). Judged `JUDGE_AFTER_S` later, and skipped around anything that legitimately
  empties or rewinds the data: a flush, round restart or full sync in the syncer's log, a
  destination restart, a restart of that source.

At the end everything is healed, the loads stop, the run waits until every source is in-sync and
the destination's counters equal the sources', and the full oracle runs (tests/support/oracle.py:
key by key, every counter equal, every log exactly 1..n); then SIGTERM must end the syncer.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.support.compare import assert_same_data
from tests.support.load import populate
from tests.support.oracle import assert_log_exact
from tests.support.proxy import TcpProxy
from tests.support.servers import RedisClusterServers, RedisServer

REPO = Path(__file__).resolve().parent.parent.parent

KINDS = (
    "cut",
    "pause",
    "throttle",
    "syncer_kill9",
    "syncer_stop",
    "source_kill9",
    "dest_kill9",
)
SOURCE_ARGS = ["--repl-diskless-sync-delay", "0"]
SAVE_ARGS = ["--save", "5 1"]  # a snapshot every few seconds: a kill -9 rewinds to it

EXACT_BOUND_S = 4.0
PHASE_BOUND_S = 9.0
LAG_SLACK_S = 4.0
JUDGE_AFTER_S = 10.0
RESET_MARGIN_S = 3.0  # R2 skips claims this close to a reset (plus the claim's own window)
CATCH_UP_S = 300.0  # at the end: longer than this to catch up is a stall
SIGTERM_WAIT_S = 30.0  # the syncer's own grace is 3 s; past this it is deaf to SIGTERM

_EVENT = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ (\w+) ")
_PART = re.compile(r"^(redis://\S+) (in-sync|syncing|connecting|out-of-sync|stopped)\b(.*)$")
_LAG = re.compile(r"^ lag (>= )?(\?|\d+) ms")
_RESETS = {"flush", "round_restart", "full_sync_started"}


# -- the syncer on a pseudo-terminal -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Part:
    """One source's part of a status line."""

    phase: str
    lag_ms: float | None  # None: no lag shown ("?" or not in-sync)
    exact: bool


@dataclass(frozen=True, slots=True)
class Line:
    at: float  # monotonic time its first byte was read
    text: str
    event: str | None  # the event kind of an event line
    parts: dict[str, Part] | None  # a status line: redacted source URL -> part


def parse_line(text: str, at: float) -> Line:
    if m := _EVENT.match(text):
        return Line(at, text, m.group(1), None)
    if not text.startswith("redis"):
        return Line(at, text, None, None)
    parts: dict[str, Part] = {}
    for chunk in text.split(" | "):
        m = _PART.match(chunk)
        if m is None:
            continue  # cut at the 200th character
        url, phase, rest = m.groups()
        lag: float | None = None
        exact = False
        if phase == "in-sync" and (lm := _LAG.match(rest)) and lm.group(2) != "?":
            lag, exact = float(lm.group(2)), lm.group(1) is None
        parts[url] = Part(phase, lag, exact)
    return Line(at, text, None, parts or None)


class SyncerProcess:
    """`python -m replication.syncer` with its output on a pseudo-terminal, read by a thread that
    stamps every line with the time its first byte arrived (a line is terminated by the next
    write, which may come only after a SIGCONT: the stamp stays the one of its arrival)."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.args = args
        self.log = log
        self.lines: list[Line] = []
        self._lock = threading.Lock()
        self.proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self.stopped = False  # SIGSTOPped by us
        self.killed = False  # killed by us (not to be restarted behind the fault's back)

    def start(self) -> None:
        if self.alive():  # two syncers on one destination: never, and never an orphan
            raise RuntimeError(f"the syncer (PID {self.pid}) is still running")
        master, slave = os.openpty()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "replication.syncer", *self.args],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=slave,
            stderr=slave,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        os.close(slave)
        self.stopped = self.killed = False
        self._reader = threading.Thread(target=self._read, args=(master,), daemon=True)
        self._reader.start()

    def _read(self, fd: int) -> None:
        pending, pending_at = b"", 0.0
        with open(self.log, "ab") as out:
            while True:
                try:
                    chunk = os.read(fd, 65536)
                except OSError as exc:  # EIO: every writer of the terminal is gone
                    if exc.errno != errno.EIO:
                        raise
                    chunk = b""
                now = time.monotonic()
                if not chunk:
                    break
                out.write(chunk)
                out.flush()
                pieces = re.split(rb"[\r\n]+", pending + chunk)
                if len(pieces) == 1:
                    pending_at = pending_at if pending else now
                    pending = pieces[0]
                    continue
                first_at = pending_at if pending else now
                self._add(pieces[0], first_at)
                for piece in pieces[1:-1]:
                    self._add(piece, now)
                pending, pending_at = pieces[-1], now
        self._add(pending, pending_at)
        os.close(fd)

    def _add(self, raw: bytes, at: float) -> None:
        text = raw.replace(b"\x1b[2K", b"").decode(errors="replace").strip()
        if text:
            with self._lock:
                self.lines.append(parse_line(text, at))

    def take(self, since: int) -> list[Line]:
        with self._lock:
            return self.lines[since:]

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def kill9(self) -> None:
        if self.proc is None:
            return
        self.killed = True
        if self.proc.poll() is None:  # never a PID that may have been reused
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self.proc.wait(30)
        self.join_reader()

    def join_reader(self) -> None:
        if self._reader is not None:
            self._reader.join(10)

    def sigterm(self) -> float | None:
        """SIGTERM (after a SIGCONT if stopped); seconds until it exited, None if it did not."""
        assert self.proc is not None
        self.killed = True
        self.signal(signal.SIGCONT)
        t0 = time.monotonic()
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(SIGTERM_WAIT_S)
        except subprocess.TimeoutExpired:
            self.kill9()
            return None
        self.join_reader()
        return time.monotonic() - t0


# -- the load ------------------------------------------------------------------------------------


class SourceLoad:
    """INCR `<prefix>counter` and RPUSH its value to `<prefix>log` (and SET one of 1,000 keys),
    10 at a time in MULTI … EXEC, about 500 per second, until stopped; survives its source's
    kill -9: after an error it reads the counter again (a source back from an older RDB, or
    empty, continues its own history: MULTI keeps counter and log consistent in any snapshot).

    `history` holds (monotonic time after EXEC, counter): what the source had acknowledged by
    then, for the lie checks."""

    def __init__(self, server: RedisServer, prefix: str) -> None:
        self.server, self.prefix = server, prefix
        self.history: list[tuple[float, int]] = []
        self.errors = 0
        self.failure: str | None = None  # the load itself went wrong (it stopped)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name=f"load {prefix}")

    def _run(self) -> None:
        # No retries by the client (redis-py retries a command after a connection error by
        # default): a transaction resent to a source that came back would run on its new
        # history, and one that had run before the error would run twice.
        client = self.server.client(
            socket_timeout=5, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0)
        )
        counter, log = f"{self.prefix}counter", f"{self.prefix}log"
        n: int | None = None
        while not self.done.is_set():
            try:
                if n is None:
                    n = int(client.get(counter) or 0)
                pipe = client.pipeline(transaction=True)
                for _ in range(10):
                    n += 1
                    pipe.incr(counter)
                    pipe.rpush(log, n)
                pipe.set(f"{self.prefix}key:{n % 1000}", n)
                replies = pipe.execute()
                if replies[-3] != n:  # the counter is ours alone: never happens
                    self.failure = f"{counter}: INCR gave {replies[-3]}, expected {n}"
                    break
                self.history.append((time.monotonic(), n))
                time.sleep(0.02)
            except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
                # ResponseError: LOADING while it reads its RDB
                self.errors += 1
                n = None
                self.done.wait(0.1)
        client.close()

    def acked_by(self, t: float, since: float) -> int:
        """The highest counter the source acknowledged at or before `t`, after `since`."""
        i = bisect.bisect_right(self.history, (t, float("inf")))
        if i == 0 or self.history[i - 1][0] < since:
            return 0
        return self.history[i - 1][1]

    def wrote_between(self, t0: float, t1: float) -> bool:
        i = bisect.bisect_left(self.history, (t0, -1))
        return i < len(self.history) and self.history[i][0] <= t1

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.done.set()
        self.thread.join(30)


# -- faults and lies -----------------------------------------------------------------------------


@dataclass(slots=True)
class Fault:
    kind: str
    target: str  # s<i>, dest, dest/<shard>, syncer
    duration_s: float
    at_s: float = 0.0  # seconds since the start of the faults
    detail: str = ""

    def describe(self) -> str:
        what = f"{self.kind} {self.target}"
        return f"{self.at_s:7.1f}s  {what:<22} {self.duration_s:5.1f}s  {self.detail}".rstrip()


@dataclass(slots=True)
class Claim:
    """An exact in-sync lag that R2 judges later."""

    at: float
    source: int
    lag_ms: float
    dest_counter: int | None  # None: the destination could not be read
    observed_at: float
    text: str


@dataclass
class Verdict:
    seed: int
    cluster: bool
    sources: int
    seconds: float
    faults: list[dict[str, Any]] = field(default_factory=list)
    lies: list[str] = field(default_factory=list)
    status_lines: int = 0
    r1_checks: int = 0  # status parts judged by R1/R1d
    r2_checks: int = 0  # claims judged by R2 against the destination's counters
    syncer_exits: list[str] = field(default_factory=list)  # exits we did not cause
    load_failures: list[str] = field(default_factory=list)
    stalled: str | None = None
    catch_up_s: float | None = None
    equal: bool = False
    equal_detail: str = ""
    counters_exact: bool = False
    counters_detail: str = ""
    counters: dict[str, int] = field(default_factory=dict)
    keys: int = 0
    sigterm_s: float | None = None
    full_sync_rounds: int = 0  # round_restart events in the syncer's log
    partial_resyncs: int = 0
    watchdog_alarms: int = 0
    events: list[str] = field(default_factory=list)  # the syncer's last event lines
    log: str = ""

    @property
    def faults_by_kind(self) -> dict[str, int]:
        return dict(Counter(f["kind"] for f in self.faults))

    @property
    def ok(self) -> bool:
        return (
            not self.lies
            and not self.syncer_exits
            and not self.load_failures
            and self.stalled is None
            and self.equal
            and self.counters_exact
            and self.sigterm_s is not None
        )

    def summary(self) -> str:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.faults_by_kind.items()))
        return (
            f"seed {self.seed} ({'cluster' if self.cluster else 'standalone'} destination, "
            f"{self.sources} sources, {self.seconds:.0f} s): {len(self.faults)} faults ({kinds}); "
            f"lies {len(self.lies)} (R1 {self.r1_checks} parts, R2 {self.r2_checks} claims "
            f"checked); equal {self.equal}; counters exact {self.counters_exact}; "
            f"stall {self.stalled or 'none'}; syncer exits {len(self.syncer_exits)}; "
            f"SIGTERM {'deaf' if self.sigterm_s is None else f'{self.sigterm_s:.1f} s'}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "faults_by_kind": self.faults_by_kind, "ok": self.ok}


class LieChecker:
    """R1, R1d and R2 of the module docstring, fed with every line and every fault state."""

    def __init__(self, urls: list[str], loads: list[SourceLoad], dest_reader: Callable[[str], int]):
        self.urls = urls
        self.loads = loads
        self.read_dest = dest_reader
        self.down_since: list[float | None] = [None] * len(urls)
        self.dest_down_since: float | None = None
        self.source_epochs: list[list[float]] = [[0.0] for _ in urls]  # restart times
        self.resets: list[float] = []  # destination restarts, flush/full-sync events
        self.claims: list[Claim] = []
        self.lies: list[str] = []
        self.r1 = 0
        self.r2 = 0
        self.lines = 0

    def feed(self, line: Line, t0: float) -> None:
        if line.event in _RESETS:
            self.resets.append(line.at)
        if line.parts is None:
            return
        self.lines += 1
        for i, url in enumerate(self.urls):
            part = line.parts.get(url)
            if part is None:
                continue
            self._r1(i, part, line, t0)
            if part.phase == "in-sync" and part.exact and part.lag_ms is not None:
                try:
                    counter: int | None = self.read_dest(self.loads[i].prefix)
                except (redis.RedisError, OSError):
                    counter = None
                self.claims.append(
                    Claim(line.at, i, part.lag_ms, counter, time.monotonic(), line.text)
                )

    def _r1(self, i: int, part: Part, line: Line, t0: float) -> None:
        t = line.at
        since = self.down_since[i]
        if since is not None and t - since > EXACT_BOUND_S:
            self.r1 += 1
            down = t - since
            if part.phase == "in-sync" and down > PHASE_BOUND_S:
                self._lie(
                    t, t0, f"R1: s{i} in-sync while its link has been down {down:.1f} s", line
                )
            elif part.exact and part.lag_ms is not None:
                self._lie(
                    t, t0, f"R1: s{i} exact lag {part.lag_ms:.0f} ms, link down {down:.1f} s", line
                )
        dsince = self.dest_down_since
        if dsince is not None and t - dsince > EXACT_BOUND_S and since is None:
            if not self.loads[i].wrote_between(dsince, t - 2.0):
                return
            self.r1 += 1
            if part.exact and part.lag_ms is not None and part.lag_ms < 1000:
                self._lie(
                    t,
                    t0,
                    f"R1d: s{i} in-sync lag {part.lag_ms:.0f} ms while the destination has been "
                    f"unreachable {t - dsince:.1f} s",
                    line,
                )

    def judge(self, now: float, t0: float, *, final: bool = False) -> None:
        """R2 for the claims old enough (all of them when `final`)."""
        keep: list[Claim] = []
        for c in self.claims:
            if not final and now - c.at < JUDGE_AFTER_S:
                keep.append(c)
                continue
            self._r2(c, t0)
        self.claims = keep

    def _r2(self, c: Claim, t0: float) -> None:
        if c.dest_counter is None:
            return
        due = c.at - c.lag_ms / 1000 - LAG_SLACK_S
        lo, hi = due - RESET_MARGIN_S, c.observed_at + RESET_MARGIN_S
        if any(lo <= r <= hi for r in self.resets):
            return
        epochs = self.source_epochs[c.source]
        if any(lo <= e <= hi for e in epochs):
            return
        since = max(e for e in epochs if e <= c.at)
        need = self.loads[c.source].acked_by(due, since)
        if not need:
            return
        self.r2 += 1
        if c.dest_counter < need:
            self.lies.append(
                f"{c.at - t0:7.1f}s R2: s{c.source} said in-sync lag {c.lag_ms:.0f} ms, but the "
                f"destination's counter was {c.dest_counter} while the source had acknowledged "
                f"{need} by {c.at - due:.1f} s before the line: {c.text!r}"
            )

    def _lie(self, t: float, t0: float, what: str, line: Line) -> None:
        self.lies.append(f"{t - t0:7.1f}s {what}: {line.text!r}")


# -- the run -------------------------------------------------------------------------------------


class ChaosRun:
    """One seeded run; `run()` returns the verdict (it never raises for what it finds)."""

    def __init__(
        self,
        *,
        seed: int,
        seconds: float,
        workdir: Path,
        cluster: bool = False,
        sources: int = 2,
        say: Callable[[str], None] = print,
    ) -> None:
        if sources < 2:
            raise ValueError("two or more sources")
        self.seed, self.seconds, self.cluster, self.n = seed, seconds, cluster, sources
        self.workdir = workdir
        self.say = say
        self.rng = random.Random(seed)
        self.verdict = Verdict(seed, cluster, sources, seconds)
        self._kinds: list[str] = []

    # -- set-up and tear-down --------------------------------------------------------------------

    def run(self) -> Verdict:
        with contextlib.ExitStack() as stack:
            first = self._setup(stack)
            try:
                if first:
                    self._faults()
                self._final()
            finally:
                self.verdict.log = str(self.syncer.log)
        return self.verdict

    def _setup(self, stack: contextlib.ExitStack) -> bool:
        """Servers, proxies, loads and the syncer; True once the first sync caught up."""
        self.sources: list[RedisServer] = []
        for i in range(self.n):
            args = [*SOURCE_ARGS, *(SAVE_ARGS if i % 2 else [])]
            srv = RedisServer(args=args)
            stack.callback(srv.stop)
            self.sources.append(srv.start())
        self.dest: RedisServer | None = None
        self.dest_cluster: RedisClusterServers | None = None
        if self.cluster:
            self.dest_cluster = RedisClusterServers(3)
            stack.callback(self.dest_cluster.stop)
            self.dest_cluster.start()
            self.dest_nodes = self.dest_cluster.nodes
            self.dest_reader: redis.Redis | redis.RedisCluster = redis.RedisCluster(
                host="127.0.0.1",
                port=self.dest_nodes[0].port,
                socket_timeout=2,
                socket_connect_timeout=2,
            )
        else:
            self.dest = RedisServer()
            stack.callback(self.dest.stop)
            self.dest.start()
            self.dest_nodes = [self.dest]
            self.dest_reader = self.dest.client(socket_timeout=2, socket_connect_timeout=2)
        stack.callback(self.dest_reader.close)
        self.proxies = [TcpProxy(s.port) for s in self.sources]
        for p in self.proxies:
            stack.callback(p.stop)
            p.start()
        self.dest_proxy: TcpProxy | None = None
        if self.dest is not None:
            self.dest_proxy = TcpProxy(self.dest.port)
            stack.callback(self.dest_proxy.stop)
            self.dest_proxy.start()
            dest_url = f"redis://127.0.0.1:{self.dest_proxy.port}"
        else:
            dest_url = self.dest_nodes[0].url
        for i, srv in enumerate(self.sources):
            populate(srv.client(), 2000, prefix=f"s{i}:k", seed=self.seed + i)
        self.loads = [SourceLoad(s, f"s{i}:") for i, s in enumerate(self.sources)]
        for load in self.loads:
            stack.callback(load.stop)
            load.start()
        urls = [f"redis://127.0.0.1:{p.port}" for p in self.proxies]
        names = [a for i in range(self.n) for a in ("--name", f"s{i}")]
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.syncer = SyncerProcess(
            [*urls, "--to", dest_url, *names], self.workdir / f"syncer-{self.seed}.log"
        )
        stack.callback(self.syncer.kill9)
        self.checker = LieChecker(urls, self.loads, self._dest_counter)
        self._seen = 0
        self.t0 = time.monotonic()
        self.syncer.start()
        self.say(
            f"seed {self.seed}: {self.n} sources -> "
            f"{'a 3-shard cluster' if self.cluster else 'a standalone'} destination; "
            f"syncer log {self.syncer.log}"
        )
        return self._wait(self._caught_up, "the first sync", CATCH_UP_S)

    def _dest_counter(self, prefix: str) -> int:
        return int(self.dest_reader.get(f"{prefix}counter") or 0)

    # -- the schedule ----------------------------------------------------------------------------

    def _next_kind(self) -> str:
        if not self._kinds:
            self._kinds = list(KINDS)
            self.rng.shuffle(self._kinds)
        return self._kinds.pop()

    def _next(self) -> Fault:
        rng = self.rng
        kind = self._next_kind()
        links = [f"s{i}" for i in range(self.n)] + (["dest"] if self.dest_proxy else [])
        if kind == "cut":
            return Fault(kind, rng.choice(links), round(rng.choice([0, 0.5, 2, 5, 8]), 1))
        if kind == "pause":
            return Fault(kind, rng.choice(links), round(rng.uniform(2, 12), 1))
        if kind == "throttle":
            f = Fault(kind, rng.choice(links), round(rng.uniform(3, 10), 1))
            f.detail = f"{rng.choice([10_000, 30_000, 100_000])} B/s"
            return f
        if kind == "syncer_kill9":
            return Fault(kind, "syncer", round(rng.uniform(0.2, 3), 1))
        if kind == "syncer_stop":
            return Fault(kind, "syncer", round(rng.uniform(1, 12), 1))
        if kind == "source_kill9":
            i = rng.randrange(self.n)
            f = Fault(kind, f"s{i}", round(rng.uniform(0.5, 4), 1))
            f.detail = "back from its last RDB" if i % 2 else "back empty"
            return f
        shard = rng.randrange(len(self.dest_nodes))
        target = f"dest/{shard}" if self.cluster else "dest"
        return Fault(kind, target, round(rng.uniform(0.5, 3), 1), detail="back empty")

    def _faults(self) -> None:
        end = time.monotonic() + self.seconds
        while time.monotonic() < end:
            fault = self._next()
            fault.at_s = time.monotonic() - self.t0
            self.say(fault.describe())
            self.verdict.faults.append(asdict(fault))
            with self._injected(fault):
                self._hold(fault.duration_s)
            self._hold(self.rng.uniform(2, 5))

    def _proxy(self, target: str) -> TcpProxy:
        if target == "dest":
            assert self.dest_proxy is not None
            return self.dest_proxy
        return self.proxies[int(target[1:])]

    def _dest_node(self, target: str) -> RedisServer:
        """`dest` (standalone) or `dest/<shard>`."""
        return self.dest_nodes[int(target.split("/")[1]) if "/" in target else 0]

    def _down(self, target: str, on: bool) -> None:
        """The link to `target` (s<i> or dest) is down from now on (`on`), or up again."""
        now = time.monotonic()
        if target == "dest":
            self.checker.dest_down_since = now if on else None
        else:
            self.checker.down_since[int(target[1:])] = now if on else None

    @contextlib.contextmanager
    def _injected(self, f: Fault) -> Iterator[None]:
        """Apply `f` for the body of the `with`, then heal it (`_fault_<kind>`: apply, yield,
        heal)."""
        fault: Callable[[Fault], Iterator[None]] = getattr(self, f"_fault_{f.kind}")
        yield from fault(f)

    def _fault_cut(self, f: Fault) -> Iterator[None]:
        proxy = self._proxy(f.target)
        proxy.refuse(True)
        proxy.cut()
        self._down(f.target, True)
        yield
        proxy.refuse(False)
        self._down(f.target, False)

    def _fault_pause(self, f: Fault) -> Iterator[None]:
        self._proxy(f.target).pause()
        self._down(f.target, True)
        yield
        self._proxy(f.target).resume()
        self._down(f.target, False)

    def _fault_throttle(self, f: Fault) -> Iterator[None]:
        self._proxy(f.target).throttle(float(f.detail.split()[0]))
        yield
        self._proxy(f.target).throttle(None)

    def _fault_syncer_kill9(self, f: Fault) -> Iterator[None]:
        self.syncer.kill9()
        yield
        self.syncer.start()

    def _fault_syncer_stop(self, f: Fault) -> Iterator[None]:
        self.syncer.signal(signal.SIGSTOP)
        self.syncer.stopped = True
        yield
        self.syncer.signal(signal.SIGCONT)
        self.syncer.stopped = False

    def _fault_source_kill9(self, f: Fault) -> Iterator[None]:
        i = int(f.target[1:])
        self._down(f.target, True)
        self.sources[i].kill()
        yield
        self.sources[i].start()
        self.checker.source_epochs[i].append(time.monotonic())
        self._down(f.target, False)

    def _fault_dest_kill9(self, f: Fault) -> Iterator[None]:
        node = self._dest_node(f.target)
        self.checker.resets.append(time.monotonic())
        self.checker.dest_down_since = time.monotonic()
        node.kill()
        yield
        node.start()
        self.checker.resets.append(time.monotonic())
        self.checker.dest_down_since = None

    # -- watching ----------------------------------------------------------------------------------

    def _pump(self) -> None:
        """Feed the new lines to the checker; restart a syncer that ended by itself."""
        lines = self.syncer.take(self._seen)
        self._seen += len(lines)
        for line in lines:
            self.checker.feed(line, self.t0)
        self.checker.judge(time.monotonic(), self.t0)
        if self.syncer.proc is not None and not self.syncer.killed and not self.syncer.alive():
            self.syncer.join_reader()
            lines = self.syncer.take(self._seen)
            self._seen += len(lines)
            for line in lines:
                self.checker.feed(line, self.t0)
            tail = [ln.text for ln in self.syncer.take(max(0, self._seen - 3))]
            exit_ = (
                f"{time.monotonic() - self.t0:7.1f}s the syncer exited by itself "
                f"(status {self.syncer.proc.returncode}): {' / '.join(tail)}"
            )
            self.say(exit_)
            self.verdict.syncer_exits.append(exit_)
            self.syncer.start()

    def _hold(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while True:
            self._pump()
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(0.05, left))

    def _last_parts(self) -> dict[str, Part] | None:
        for line in reversed(self.syncer.take(max(0, self._seen - 50))):
            if line.parts is not None:
                return line.parts
        return None

    def _caught_up(self) -> bool:
        parts = self._last_parts()
        if parts is None or len(parts) < self.n:
            return False
        if any(p.phase != "in-sync" for p in parts.values()):
            return False
        try:
            for load in self.loads:
                src = int(load.server.client().get(f"{load.prefix}counter") or 0)
                if src == 0 or self._dest_counter(load.prefix) != src:
                    return False
        except (redis.RedisError, OSError):
            return False
        return True

    def _wait(self, cond: Callable[[], bool], what: str, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > end:
                self.verdict.stalled = f"gave up waiting for {what} after {timeout:.0f} s"
                self.say(self.verdict.stalled)
                return False
            self._hold(0.2)
        return True

    # -- the end -----------------------------------------------------------------------------------

    def _final(self) -> None:
        v = self.verdict
        for p in [*self.proxies, *([self.dest_proxy] if self.dest_proxy else [])]:
            p.resume()
            p.refuse(False)
            p.throttle(None)
        self.syncer.signal(signal.SIGCONT)
        for load in self.loads:
            load.stop()
        v.load_failures = [ld.failure for ld in self.loads if ld.failure]
        self.say(f"{time.monotonic() - self.t0:7.1f}s faults over, loads stopped; catching up")
        t = time.monotonic()
        if self._wait(self._caught_up, "the destination to catch up", CATCH_UP_S):
            v.catch_up_s = time.monotonic() - t
        self.checker.judge(time.monotonic(), self.t0, final=True)
        v.lies = self.checker.lies
        v.r1_checks, v.r2_checks = self.checker.r1, self.checker.r2
        v.status_lines = self.checker.lines
        srcs = [s.client() for s in self.sources]
        dsts = [n.client() for n in self.dest_nodes]
        try:
            v.keys = assert_same_data(srcs, dsts, ttl_tolerance_ms=1500)
            v.equal = True
        except AssertionError as exc:
            v.equal_detail = str(exc)[:2000]
        problems = []
        for src, load in zip(srcs, self.loads, strict=True):
            try:
                v.counters[load.prefix + "counter"] = assert_log_exact(
                    src, self.dest_reader, load.prefix
                )
            except AssertionError as exc:
                problems.append(str(exc))
        v.counters_exact = not problems
        v.counters_detail = "; ".join(problems)[:2000]
        for c in (*srcs, *dsts):
            c.close()
        v.sigterm_s = self.syncer.sigterm()
        lines = self.syncer.take(0)
        v.events = [ln.text for ln in lines if ln.event][-60:]
        text = "\n".join(ln.text for ln in lines)
        v.full_sync_rounds = text.count(" round_restart ")
        v.partial_resyncs = text.count(" partial_resync ")
        v.watchdog_alarms = text.count(" watchdog ")
        self.say(v.summary())
        for lie in v.lies:
            self.say(f"lie: {lie}")
        if not v.equal:
            self.say(f"not equal: {v.equal_detail}")
        if not v.counters_exact:
            self.say(f"counters: {v.counters_detail}")
