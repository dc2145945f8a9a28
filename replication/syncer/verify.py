"""Verify: compare a destination with its sources key by key (type, value, TTL).

Plain asyncio, like the rest of the syncer; the CLI (`python -m replication.syncer verify`) and
the console's Celery task are thin shells around `Verifier`.

How a key is judged, cheapest first:

1. *Fingerprints* in pipelines of `batch` keys, on the source that holds the key and on the
   destination: `TYPE`, the absolute expiry (`PEXPIRETIME`, or `PTTL` + the clock on servers
   older than 7.0) and a value fingerprint: `DEBUG DIGEST-VALUE` where every server allows it
   (computed by the server, 20 bytes whatever the size of the value), else the `DUMP` payload of
   keys that `MEMORY USAGE` says are small (a big key is never dumped into our memory). Equal
   type, fingerprint and expiry (within `ttl_tolerance_ms`): the key is equal.
2. Every other key is a *suspect*, settled by `_settle`: type-aware reads, page by page for big
   keys (`HSCAN` + `HMGET`, `SSCAN` + `SMISMEMBER`, `ZSCAN` + `ZMSCORE`, `LRANGE`, `XRANGE`,
   `GETRANGE`), so that different encodings (or digests of Redis and Valkey) of one value compare
   equal and memory stays bounded by the page size.
3. No false alarms from in-flight writes: a suspect is judged only once the destination has
   caught up with the source past the moment its source fingerprint was read. The syncer stores
   its position in the destination (checkpoint.py: the source's replication id and the last
   offset applied); we read the source's `master_repl_offset` after reading the key and wait until
   the checkpoint of that replication id is at least there (a destination with no checkpoint of
   that source is not fed by a syncer: nothing to wait for). The source fingerprint is read again
   after the judgement: if it changed, the key was written meanwhile and is judged again, up to
   `rounds` times; a key that changes every time is reported as *unsettled*, not as a difference.
4. Keys in more than one source are *conflicts* (with several sources the last writer wins, so
   neither value is "the" right one). Keys of the destination that no source holds are *extra*.
5. The syncer's bookkeeping keys (checkpoint.is_bookkeeping_key) are never looked at.

Sources and destinations may be Redis Clusters: every primary is scanned, keys are routed to the
primary of their slot. Every database number with keys is compared (into the same number on the
destination). `rate` bounds the keys read per second (a page of a big key counts as one key per
ten elements); `cancel()` ends the run at the next batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import hiredis

from .checkpoint import CHECKPOINT_KEY, Checkpoint, is_bookkeeping_key
from .cluster import key_slot
from .errors import Side, SyncError
from .resp import Arg, RespConnection, TlsOptions, pack
from .source import discover_primaries
from .urls import RedisUrl, parse_redis_url

__all__ = [
    "Kind",
    "SourceReport",
    "Verifier",
    "VerifyCancelled",
    "VerifyError",
    "VerifyOptions",
    "VerifyProgress",
    "VerifyReport",
]


class VerifyError(Exception):
    """The comparison could not be made (connection, permissions, a server refusing); the message
    names the server by its redacted URL, never a password."""


class VerifyCancelled(Exception):
    """`Verifier.cancel()` was called."""


class Kind(StrEnum):
    EQUAL = "equal"
    MISSING = "missing"  # on the source, not on the destination
    DIFFERENT = "different"  # another type or value
    TTL_OFF = "ttl_off"  # same value, expiry differs by more than the tolerance
    CONFLICT = "conflicts"  # in more than one source
    EXTRA = "extra"  # on the destination, in no source
    UNSETTLED = "unsettled"  # written on the source every time it was checked


REPORTED = (Kind.MISSING, Kind.DIFFERENT, Kind.TTL_OFF, Kind.CONFLICT)
_SOURCE_KINDS = (Kind.EQUAL, *REPORTED)


@dataclass(frozen=True, slots=True)
class VerifyOptions:
    ttl_tolerance_ms: int = 1000
    rate: float | None = None  # keys per second read from the servers; None: unbounded
    batch: int = 256  # keys per pipeline
    page: int = 1000  # elements per page of a big key
    big_bytes: int = 64 << 10  # `MEMORY USAGE` above which a key is read in pages, never dumped
    samples: int = 100  # sample keys kept per kind
    rounds: int = 5  # judgements of a suspect whose source changes meanwhile
    recheck_every: int = 1000  # suspects kept before they are settled (bounds memory)
    catch_up_timeout_s: float = 60.0
    method: str = "auto"  # auto (digest where allowed, else dump) | digest | dump


@dataclass(slots=True)
class SourceReport:
    """One source's part of the result."""

    source: str  # redacted URL
    counts: dict[str, int] = field(default_factory=lambda: {k.value: 0 for k in _SOURCE_KINDS})
    samples: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "counts": dict(self.counts), "samples": self.samples}


@dataclass(slots=True)
class VerifyReport:
    sources: list[SourceReport]
    extra: int = 0
    extra_samples: list[str] = field(default_factory=list)
    unsettled: int = 0
    unsettled_samples: list[str] = field(default_factory=list)
    keys_checked: int = 0
    seconds: float = 0.0
    method: str = ""

    @property
    def differences(self) -> int:
        """Keys reported as not equal (unsettled keys are not: they never held still)."""
        return self.extra + sum(s.counts[k.value] for s in self.sources for k in REPORTED)

    def totals(self) -> dict[str, int]:
        out = {k.value: sum(s.counts[k.value] for s in self.sources) for k in _SOURCE_KINDS}
        out[Kind.EXTRA.value] = self.extra
        out[Kind.UNSETTLED.value] = self.unsettled
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "totals": self.totals(),
            "differences": self.differences,
            "sources": [s.as_dict() for s in self.sources],
            "extra_samples": self.extra_samples,
            "unsettled_samples": self.unsettled_samples,
            "keys_checked": self.keys_checked,
            "seconds": round(self.seconds, 3),
            "method": self.method,
        }


@dataclass(frozen=True, slots=True)
class VerifyProgress:
    done: int  # keys looked at (sources, then the destination)
    total: int  # estimate (DBSIZE of every source and of the destination)
    elapsed_s: float

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 1.0

    @property
    def eta_s(self) -> float | None:
        if not self.done or self.done >= self.total:
            return None
        return self.elapsed_s * (self.total - self.done) / self.done


def _show(key: bytes) -> str:
    return key.decode("utf-8", errors="backslashreplace")


# ---------------------------------------------------------------- servers


class _Server:
    """One primary: a connection and what it allows."""

    def __init__(self, url: RedisUrl, conn: RespConnection) -> None:
        self.url = url
        self.conn = conn
        self.db = 0
        self.digest = False
        self.expiretime = True

    async def run(self, cmds: Sequence[Sequence[Arg]]) -> list[Any]:
        """A pipeline; error replies come back as `hiredis.ReplyError` values."""
        if not cmds:
            return []
        self.conn.send(b"".join(pack(*c) for c in cmds))
        await self.conn.drain()
        return [await self.conn.read_reply() for _ in cmds]

    async def call(self, *args: Arg) -> Any:
        (reply,) = await self.run([args])
        if isinstance(reply, hiredis.ReplyError):
            raise VerifyError(f"{self.url.redacted()}: {args[0]!s}: {reply}")
        return reply

    async def select(self, db: int) -> None:
        if db != self.db:
            await self.call(b"SELECT", db)
            self.db = db

    async def probe(self) -> None:
        probe = b"__replicaof:{verify}:probe"
        digest, expiretime = await self.run(
            [(b"DEBUG", b"DIGEST-VALUE", probe), (b"PEXPIRETIME", probe)]
        )
        self.digest = not isinstance(digest, hiredis.ReplyError)
        self.expiretime = not isinstance(expiretime, hiredis.ReplyError)

    async def keyspace_dbs(self) -> dict[int, int]:
        info = (await self.call(b"INFO", b"keyspace")).decode()
        out: dict[int, int] = {}
        for line in info.splitlines():
            if line.startswith("db") and ":" in line:
                name, _, rest = line.partition(":")
                fields = dict(p.split("=", 1) for p in rest.split(",") if "=" in p)
                out[int(name[2:])] = int(fields.get("keys", 0))
        return out

    async def position(self) -> tuple[str, int]:
        """(master_replid, master_repl_offset) of this primary now."""
        info = (await self.call(b"INFO", b"replication")).decode()
        fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
        return fields.get("master_replid", "").strip(), int(fields.get("master_repl_offset", 0))


class _Side:
    """A source or the destination: its primaries, and the slot map when it is a cluster."""

    def __init__(self, url: RedisUrl, servers: list[_Server], slots: list[int] | None) -> None:
        self.url = url
        self.servers = servers
        self.slots = slots

    def server_for(self, key: bytes) -> _Server:
        if self.slots is None:
            return self.servers[0]
        return self.servers[self.slots[key_slot(key)]]

    async def route(self, db: int, keys: Sequence[bytes]) -> list[tuple[_Server, list[int]]]:
        """The primaries that hold `keys`, each with the indexes of its keys, `db` selected."""
        groups: dict[int, list[int]] = {}
        for n, k in enumerate(keys):
            groups.setdefault(id(self.server_for(k)), []).append(n)
        out = []
        for server in self.servers:
            if idx := groups.get(id(server)):
                await server.select(db)
                out.append((server, idx))
        return out

    async def aclose(self) -> None:
        for s in self.servers:
            await s.conn.aclose()


async def _open_side(url: RedisUrl, tls: TlsOptions | None, side: Side) -> _Side:
    primaries = await discover_primaries(url, tls)
    servers: list[_Server] = []
    try:
        for p in primaries:
            conn = await RespConnection.open(p, tls, select_db=False, side=side)
            servers.append(_Server(p, conn))
        slots: list[int] | None = None
        if url.cluster is not False and (len(primaries) > 1 or primaries[0] != url):
            index = {s.url.address: i for i, s in enumerate(servers)}
            slots = [0] * 16384
            for lo, hi, primary, *_ in await servers[0].call(b"CLUSTER", b"SLOTS"):
                host = primary[0].decode() or url.host
                address = RedisUrl(host=host, port=int(primary[1])).address
                if address not in index:
                    raise VerifyError(f"{url.redacted()}: the slot map names {address}")
                for slot in range(int(lo), int(hi) + 1):
                    slots[slot] = index[address]
        for server in servers:
            await server.probe()
        return _Side(url, servers, slots)
    except BaseException:
        for server in servers:
            await server.conn.aclose()
        raise


# ---------------------------------------------------------------- fingerprints

# (type, value fingerprint, exact, expiry ms): `exact` means equal fingerprints are equal values
# (a digest or a DUMP payload); a big key without digest has its length instead.
Print = tuple[bytes, bytes, bool, int]
_NONE: Print = (b"none", b"", True, -1)

_LENGTH = {
    b"string": b"STRLEN",
    b"hash": b"HLEN",
    b"set": b"SCARD",
    b"zset": b"ZCARD",
    b"list": b"LLEN",
    b"stream": b"XLEN",
}


async def _prints(server: _Server, keys: Sequence[bytes], *, digest: bool, big: int) -> list[Print]:
    """The fingerprints of `keys` on `server` (its database already selected)."""
    value_cmd: tuple[bytes, ...] = (b"DEBUG", b"DIGEST-VALUE") if digest else (b"MEMORY", b"USAGE")
    expiry_cmd = b"PEXPIRETIME" if server.expiretime else b"PTTL"
    cmds: list[tuple[Arg, ...]] = []
    for k in keys:
        cmds += [(b"TYPE", k), (expiry_cmd, k), (*value_cmd, k)]
    replies = await server.run(cmds)
    now_ms = int(time.time() * 1000)
    out: list[Print] = []
    dumps: list[int] = []
    lengths: list[int] = []
    for i, k in enumerate(keys):
        typ, expiry, value = replies[3 * i : 3 * i + 3]
        for r in (typ, expiry, value):
            if isinstance(r, hiredis.ReplyError) and typ != b"none":
                raise VerifyError(f"{server.url.redacted()}: reading {_show(k)[:60]!r}: {r}")
        if typ == b"none" or isinstance(typ, hiredis.ReplyError):
            out.append(_NONE)
            continue
        exp = int(expiry)
        if not server.expiretime and exp >= 0:
            exp += now_ms
        if digest:
            out.append((typ, value[0] if isinstance(value, list) else value, True, exp))
        elif value is not None and int(value) <= big:
            out.append((typ, b"", True, exp))
            dumps.append(i)
        else:
            out.append((typ, b"", False, exp))
            lengths.append(i)
    if dumps or lengths:
        more: list[tuple[Arg, ...]] = [(b"DUMP", keys[i]) for i in dumps]
        more += [(_LENGTH.get(out[i][0], b"TYPE"), keys[i]) for i in lengths]
        replies = await server.run(more)
        for n, i in enumerate(dumps + lengths):
            typ, _, exact, exp = out[i]
            r = replies[n]
            if r is None:  # gone between the two pipelines
                out[i] = _NONE
            elif isinstance(r, hiredis.ReplyError):
                out[i] = (typ, str(r).encode(), False, exp)
            else:
                out[i] = (typ, r if isinstance(r, bytes) else b"%d" % r, exact, exp)
    return out


# ---------------------------------------------------------------- the run


@dataclass(slots=True)
class _Suspect:
    key: bytes
    db: int
    owner: int | None  # the source whose scan found it; None: the destination's scan


class _Rate:
    def __init__(self, per_s: float | None) -> None:
        self.per_s = per_s
        self.start = time.monotonic()
        self.used = 0.0

    async def take(self, n: float, cancelled: Callable[[], bool]) -> None:
        """Wait until `n` more keys are within the rate (in short sleeps: a cancel is seen)."""
        if not self.per_s:
            return
        self.used += n
        until = self.start + self.used / self.per_s
        while (ahead := until - time.monotonic()) > 0 and not cancelled():
            await asyncio.sleep(min(ahead, 0.1))


class Verifier:
    """Compare `destination` with `sources` (URLs); `run()` returns the `VerifyReport`."""

    def __init__(
        self,
        sources: Sequence[str | RedisUrl],
        destination: str | RedisUrl,
        *,
        source_tls: Sequence[TlsOptions | None] | None = None,
        destination_tls: TlsOptions | None = None,
        options: VerifyOptions | None = None,
        on_progress: Callable[[VerifyProgress], None] | None = None,
    ) -> None:
        self.source_urls = [parse_redis_url(u) if isinstance(u, str) else u for u in sources]
        self.dest_url = (
            parse_redis_url(destination) if isinstance(destination, str) else destination
        )
        self.source_tls = list(source_tls or [None] * len(self.source_urls))
        self.dest_tls = destination_tls
        self.options = options or VerifyOptions()
        self.on_progress = on_progress
        self._cancelled = False
        self._sources: list[_Side] = []
        self._dest: _Side | None = None
        self._digest = False
        self._rate = _Rate(self.options.rate)
        self._done = 0
        self._total = 0
        self._started = 0.0
        self._report = VerifyReport([SourceReport(u.redacted()) for u in self.source_urls])
        self._suspects: list[_Suspect] = []

    def cancel(self) -> None:
        """End the run at the next batch (`run()` raises `VerifyCancelled`); thread-safe."""
        self._cancelled = True

    async def run(self) -> VerifyReport:
        self._started = time.monotonic()
        try:
            await self._open()
            for i, side in enumerate(self._sources):
                for server in side.servers:
                    for db in await server.keyspace_dbs():
                        await self._scan(server, db, owner=i)
            assert self._dest is not None
            for server in self._dest.servers:
                for db in await server.keyspace_dbs():
                    await self._scan(server, db, owner=None)
            await self._settle_all()
        except SyncError as exc:
            raise VerifyError(str(exc)) from None
        except OSError as exc:
            raise VerifyError(f"connection lost: {exc}") from None
        finally:
            await self._close()
        self._report.seconds = time.monotonic() - self._started
        self._report.method = "digest" if self._digest else "dump"
        self._total = self._done  # the estimate counted the bookkeeping keys
        self._progress(force=True)
        return self._report

    async def _open(self) -> None:
        if len(self.source_urls) == 0:
            raise VerifyError("no source given")
        for url, tls in zip(self.source_urls, self.source_tls, strict=True):
            self._sources.append(await _open_side(url, tls, Side.SOURCE))
        self._dest = await _open_side(self.dest_url, self.dest_tls, Side.DESTINATION)
        every = [s for side in [*self._sources, self._dest] for s in side.servers]
        allowed = all(s.digest for s in every)
        method = self.options.method
        if method == "digest" and not allowed:
            raise VerifyError("DEBUG DIGEST-VALUE is not allowed on every server (use dump)")
        self._digest = allowed and method in ("auto", "digest")
        for s in every:
            self._total += sum((await s.keyspace_dbs()).values())
        self._progress(force=True)

    async def _close(self) -> None:
        for side in [*self._sources, *([self._dest] if self._dest else [])]:
            with contextlib.suppress(Exception):
                await side.aclose()

    # ------------------------------------------------------------ progress, limits

    _last_progress = 0.0

    def _progress(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if self.on_progress is None or (not force and now - self._last_progress < 0.25):
            return
        self._last_progress = now
        total = max(self._total, self._done)
        self.on_progress(VerifyProgress(self._done, total, now - self._started))

    async def _step(self, keys: float) -> None:
        await self._rate.take(keys, lambda: self._cancelled)
        if self._cancelled:
            raise VerifyCancelled()

    # ------------------------------------------------------------ pass 1: scans

    async def _scan(self, server: _Server, db: int, *, owner: int | None) -> None:
        cursor = b"0"
        while True:
            await self._step(0)
            await server.select(db)
            cursor, keys = await server.call(b"SCAN", cursor, b"COUNT", self.options.batch)
            keys = [k for k in keys if not is_bookkeeping_key(k)]
            if keys:
                await self._first_look(server, db, keys, owner)
                self._done += len(keys)
                self._report.keys_checked += len(keys)
                await self._step(len(keys))
                self._progress()
            if len(self._suspects) >= self.options.recheck_every:
                await self._settle_all()
            if cursor == b"0":
                return

    async def _first_look(
        self, server: _Server, db: int, keys: list[bytes], owner: int | None
    ) -> None:
        """Count the keys that are plainly equal; keep the others as suspects."""
        others = [i for i in range(len(self._sources)) if i != owner]
        present = await self._exists(others, db, keys)
        if owner is None:
            # The destination's scan: only keys that no source holds concern it.
            for k, where in zip(keys, present, strict=True):
                if not where:
                    self._suspects.append(_Suspect(k, db, None))
            return
        todo: list[bytes] = []
        for k, where in zip(keys, present, strict=True):
            if any(i < owner for i in where):
                continue  # an earlier source's scan judged it (a conflict)
            if where:
                self._suspects.append(_Suspect(k, db, owner))
            else:
                todo.append(k)
        if not todo:
            return
        src = await _prints(server, todo, digest=self._digest, big=self.options.big_bytes)
        dst = await self._dest_prints(db, todo)
        report = self._report.sources[owner]
        for k, s, d in zip(todo, src, dst, strict=True):
            if s[0] != b"none" and s[2] and d[2] and s[:2] == d[:2] and self._ttl_ok(s[3], d[3]):
                report.counts[Kind.EQUAL.value] += 1
            else:
                self._suspects.append(_Suspect(k, db, owner))

    async def _exists(self, sources: list[int], db: int, keys: list[bytes]) -> list[list[int]]:
        """For each key, which of `sources` hold it."""
        found: list[list[int]] = [[] for _ in keys]
        for i in sources:
            for server, idx in await self._sources[i].route(db, keys):
                for n, r in zip(
                    idx, await server.run([(b"EXISTS", keys[n]) for n in idx]), strict=True
                ):
                    if r == 1:
                        found[n].append(i)
        return found

    async def _dest_prints(self, db: int, keys: Sequence[bytes]) -> list[Print]:
        assert self._dest is not None
        return await self._side_prints(self._dest, db, keys)

    async def _side_prints(self, side: _Side, db: int, keys: Sequence[bytes]) -> list[Print]:
        out: list[Print] = [_NONE] * len(keys)
        for server, idx in await side.route(db, keys):
            prints = await _prints(
                server, [keys[n] for n in idx], digest=self._digest, big=self.options.big_bytes
            )
            for n, p in zip(idx, prints, strict=True):
                out[n] = p
        return out

    def _ttl_ok(self, a: int, b: int) -> bool:
        if a < 0 or b < 0:
            return a < 0 and b < 0
        return abs(a - b) <= self.options.ttl_tolerance_ms

    # ------------------------------------------------------------ pass 2: suspects

    async def _settle_all(self) -> None:
        suspects, self._suspects = self._suspects, []
        by_db: dict[int, list[_Suspect]] = {}
        for s in suspects:
            by_db.setdefault(s.db, []).append(s)
        for db, group in sorted(by_db.items()):
            for start in range(0, len(group), self.options.batch):
                await self._settle(db, group[start : start + self.options.batch])

    async def _source_states(self, db: int, keys: list[bytes]) -> list[tuple[Print, ...]]:
        per_source = [await self._side_prints(side, db, keys) for side in self._sources]
        return [tuple(p[n] for p in per_source) for n in range(len(keys))]

    async def _settle(self, db: int, suspects: list[_Suspect]) -> None:
        """Judge suspects once the destination caught up with what their sources held (module
        doc, 3); again while their sources keep changing."""
        for _ in range(self.options.rounds):
            await self._step(len(suspects))
            keys = [s.key for s in suspects]
            before = await self._source_states(db, keys)
            await self._caught_up()
            dest = await self._dest_prints(db, keys)
            verdicts = [
                await self._judge(db, s.key, st, d)
                for s, st, d in zip(suspects, before, dest, strict=True)
            ]
            after = await self._source_states(db, keys)
            moving: list[_Suspect] = []
            for s, a, b, v in zip(suspects, before, after, verdicts, strict=True):
                if a != b:
                    moving.append(s)
                else:
                    self._count(s, v)
            suspects = moving
            if not suspects:
                return
        for s in suspects:
            self._report.unsettled += 1
            self._sample(self._report.unsettled_samples, s.key)

    def _count(self, suspect: _Suspect, verdict: tuple[Kind, list[int]] | None) -> None:
        if verdict is None:
            return  # in no source and not on the destination any more: nothing to compare
        kind, owners = verdict
        if kind is Kind.EXTRA:
            self._report.extra += 1
            self._sample(self._report.extra_samples, suspect.key)
            return
        for i in owners:
            report = self._report.sources[i]
            report.counts[kind.value] += 1
            if kind is not Kind.EQUAL:
                self._sample(report.samples.setdefault(kind.value, []), suspect.key)

    def _sample(self, samples: list[str], key: bytes) -> None:
        if len(samples) < self.options.samples:
            samples.append(_show(key))

    async def _judge(
        self, db: int, key: bytes, state: tuple[Print, ...], dest: Print
    ) -> tuple[Kind, list[int]] | None:
        assert self._dest is not None
        owners = [i for i, p in enumerate(state) if p[0] != b"none"]
        if not owners:
            return (Kind.EXTRA, []) if dest[0] != b"none" else None
        if len(owners) > 1:
            return Kind.CONFLICT, owners
        (i,) = owners
        src = state[i]
        if dest[0] == b"none":
            return Kind.MISSING, owners
        if src[0] != dest[0]:
            return Kind.DIFFERENT, owners
        if not (src[2] and dest[2] and src[1] == dest[1]):
            s_server = self._sources[i].server_for(key)
            d_server = self._dest.server_for(key)
            await s_server.select(db)
            await d_server.select(db)
            if not await self._same_value(s_server, d_server, key, src[0]):
                return Kind.DIFFERENT, owners
        if not self._ttl_ok(src[3], dest[3]):
            return Kind.TTL_OFF, owners
        return Kind.EQUAL, owners

    async def _same_value(self, s: _Server, d: _Server, key: bytes, typ: bytes) -> bool:
        """Type-aware comparison, in pages (bounded memory whatever the size of the key)."""
        page = self.options.page
        length = _LENGTH.get(typ)
        if length is None:  # a module type: its serialized form is all we can compare
            return bool(await s.call(b"DUMP", key) == await d.call(b"DUMP", key))
        n = await s.call(length, key)
        if n != await d.call(length, key):
            return False
        if typ == b"string":
            step = page * 256
            for start in range(0, int(n), step):
                end = start + step - 1
                if await s.call(b"GETRANGE", key, start, end) != await d.call(
                    b"GETRANGE", key, start, end
                ):
                    return False
                await self._step(1)
            return True
        if typ == b"list":
            for start in range(0, int(n), page):
                end = start + page - 1
                if await s.call(b"LRANGE", key, start, end) != await d.call(
                    b"LRANGE", key, start, end
                ):
                    return False
                await self._step(page / 10)
            return True
        if typ == b"stream":
            first = b"-"
            while True:
                a = await s.call(b"XRANGE", key, first, b"+", b"COUNT", page)
                if a != await d.call(b"XRANGE", key, first, b"+", b"COUNT", page):
                    return False
                if len(a) < page:
                    return True
                first = b"(" + a[-1][0]
                await self._step(page / 10)
        scan, probe = {
            b"hash": (b"HSCAN", b"HMGET"),
            b"set": (b"SSCAN", b"SMISMEMBER"),
            b"zset": (b"ZSCAN", b"ZMSCORE"),
        }[typ]
        cursor = b"0"
        while True:
            cursor, flat = await s.call(scan, key, cursor, b"COUNT", page)
            if not flat:
                pass
            elif typ == b"set":
                if any(r != 1 for r in await d.call(probe, key, *flat)):
                    return False
            else:
                names, values = flat[0::2], flat[1::2]
                got = await d.call(probe, key, *names)
                if typ == b"zset":
                    if any(
                        g is None or float(g) != float(v) for g, v in zip(got, values, strict=True)
                    ):
                        return False
                elif got != values:
                    return False
            await self._step(max(1, len(flat)) / 10)
            if cursor == b"0":
                return True

    async def _caught_up(self) -> None:
        """Wait until the destination applied every source primary's stream up to where it is
        now (module doc, 3); after `catch_up_timeout_s` the judgement goes on regardless."""
        assert self._dest is not None
        targets = [await server.position() for side in self._sources for server in side.servers]
        server = self._dest.server_for(CHECKPOINT_KEY)
        deadline = time.monotonic() + self.options.catch_up_timeout_s
        delay = 0.005
        while True:
            await self._step(0)
            await server.select(0)
            raw = await server.call(b"HGETALL", CHECKPOINT_KEY)
            applied: dict[str, int] = {}
            for value in raw[1::2]:
                ckpt = Checkpoint.decode(value)
                if ckpt is not None:
                    applied[ckpt.replid] = max(applied.get(ckpt.replid, -1), ckpt.offset)
            if all(applied.get(replid, offset) >= offset for replid, offset in targets):
                return
            if time.monotonic() > deadline:
                return
            await asyncio.sleep(delay)
            delay = min(0.1, delay * 2)
