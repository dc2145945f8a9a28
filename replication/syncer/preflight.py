"""Pre-flight: will a Replica Of work, before it starts? One pass / warn / fail line per check of
each source and of the destination, with the fix where there is one. Reads only (INFO, CONFIG
GET, ACL DRYRUN, DUMP of one random key, two samples of the replication offset); nothing is
written anywhere.

The checks (issue 14):
- reachable, credentials valid, and the user may run what the syncer needs: `ACL DRYRUN` of
  PSYNC, REPLCONF and INFO as that user where the server lets it; else REPLCONF is tried (it
  changes nothing) and PSYNC cannot be checked without starting a full sync (a warning);
- the source's `client-output-buffer-limit replica` against the expected full-sync time times its
  current write rate (two samples of `master_repl_offset`, `sample_s` apart): the cause of
  "Replica Of repeatedly fails" when too small, with the `CONFIG SET` to run; a source that offers
  dual-channel replication (dualchannel.py) passes, as the stream is buffered by the syncer then;
- `repl-backlog-size` against the write rate: how long an outage can last and still resume by
  partial sync;
- RDB versions (from the footer of a `DUMP`, or the server's version): RESTORE payloads apply as
  they are, or values are decoded into commands (slower);
- memory: the sum of the sources' `used_memory` against the destination's `maxmemory`;
- modules loaded on a source and not on the destination; keys outside database 0 when the
  destination is a Redis Cluster;
- an estimate of keys, bytes and full-sync time (at `load_bytes_per_s`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import hiredis

from .errors import Side, SyncError
from .resp import RespConnection, TlsOptions
from .urls import RedisUrl

__all__ = ["Check", "Level", "PreflightReport", "preflight"]

MB = 1 << 20
# A loopback full sync of bench/full_sync.py's dataset loads about this much RDB per second; the
# estimate says so ("about").
LOAD_BYTES_PER_S = 40 * MB
BACKLOG_WARN_S = 60.0


class Level(StrEnum):
    PASS = "pass"  # noqa: S105 - a verdict, not a password
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Check:
    subject: str  # "source 1 (redis://…)" or "destination (redis://…)"
    name: str
    level: Level
    message: str
    fix: str = ""


@dataclass(slots=True)
class PreflightReport:
    checks: list[Check] = field(default_factory=list)
    estimate: dict[str, float] = field(default_factory=dict)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.level is Level.FAIL]

    def as_dict(self) -> dict[str, Any]:
        return {
            "checks": [asdict(c) for c in self.checks],
            "estimate": self.estimate,
            "failed": bool(self.failures),
        }


def _info(raw: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in raw.decode(errors="replace").splitlines():
        if ":" in line and not line.startswith("#"):
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def _mb(n: float) -> str:
    return f"{n / MB:.1f} MB"


def _rdb_version(payload: Any) -> int | None:
    """The RDB version in a DUMP payload's footer (2 bytes little endian, then the CRC64)."""
    if not isinstance(payload, bytes) or len(payload) < 10:
        return None
    return int.from_bytes(payload[-10:-8], "little")


# Server version -> RDB version it writes (and the newest it restores), for servers with no key
# to DUMP. Redis 7.0: 10, 7.2: 11, 7.4 and 8: 12; Valkey 7.2 and 8: 11.
_RDB_BY_VERSION = [((8, 0), 12), ((7, 4), 12), ((7, 2), 11), ((7, 0), 10), ((6, 0), 9)]


def _rdb_from_version(info: dict[str, str]) -> int | None:
    raw = info.get("valkey_version") or info.get("redis_version") or ""
    try:
        major, minor = (int(p) for p in raw.split(".")[:2])
    except ValueError:
        return None
    if "valkey_version" in info and (major, minor) < (9, 0):
        return 11
    for (ma, mi), rdb in _RDB_BY_VERSION:
        if (major, minor) >= (ma, mi):
            return rdb
    return None


def _modules(info: dict[str, str]) -> set[str]:
    names = set()
    for key, value in info.items():
        if key.startswith("module"):
            fields = dict(p.split("=", 1) for p in value.split(",") if "=" in p)
            if "name" in fields:
                names.add(fields["name"])
    return names


@dataclass(slots=True)
class _Server:
    subject: str
    url: RedisUrl
    conn: RespConnection | None = None
    info: dict[str, str] = field(default_factory=dict)
    rate: float = 0.0  # bytes per second into its replication stream
    rdb: int | None = None
    dbs: dict[int, int] = field(default_factory=dict)


async def _open(server: _Server, tls: TlsOptions | None, side: Side, out: list[Check]) -> bool:
    try:
        server.conn = await RespConnection.open(server.url, tls, select_db=False, side=side)
        raw = await server.conn.call_raw(b"INFO", b"everything")
    except SyncError as exc:
        out.append(
            Check(
                server.subject,
                "reachable",
                Level.FAIL,
                str(exc),
                "check the host, port, TLS settings and credentials in the URL",
            )
        )
        return False
    if isinstance(raw, hiredis.ReplyError):
        out.append(
            Check(
                server.subject,
                "permissions",
                Level.FAIL,
                f"INFO refused: {raw}",
                "allow the user +info",
            )
        )
        return False
    server.info = _info(raw)
    for key, value in server.info.items():
        if key.startswith("db") and key[2:].isdigit():
            server.dbs[int(key[2:])] = int(value.split(",")[0].partition("=")[2] or 0)
    out.append(Check(server.subject, "reachable", Level.PASS, "connected, credentials accepted"))
    return True


async def _permissions(
    server: _Server, commands: Sequence[tuple[bytes, ...]], out: list[Check]
) -> None:
    """ACL DRYRUN of each command as the URL's user; else what can be tried without effect."""
    assert server.conn is not None
    user = (server.url.username or "default").encode()
    refused: list[str] = []
    unchecked: list[str] = []
    for cmd in commands:
        name = cmd[0].decode()
        reply = await server.conn.call_raw(b"ACL", b"DRYRUN", user, *cmd)
        if isinstance(reply, hiredis.ReplyError):
            if name == "REPLCONF":  # harmless: try it
                tried = await server.conn.call_raw(b"REPLCONF", b"listening-port", b"0")
                if isinstance(tried, hiredis.ReplyError) and str(tried).startswith("NOPERM"):
                    refused.append(name)
            elif name != "INFO":  # INFO was just run
                unchecked.append(name)
        elif reply != b"OK":
            refused.append(name)
    if refused:
        names = ", ".join(refused)
        out.append(
            Check(
                server.subject,
                "permissions",
                Level.FAIL,
                f"the user {user.decode()} may not run {names}",
                f"ACL SETUSER {user.decode()} " + " ".join(f"+{n.lower()}" for n in refused),
            )
        )
    elif unchecked:
        out.append(
            Check(
                server.subject,
                "permissions",
                Level.WARN,
                f"{', '.join(unchecked)} could not be checked (ACL DRYRUN is not allowed to "
                f"{user.decode()}; trying would start a full sync)",
            )
        )
    else:
        names = ", ".join(c[0].decode() for c in commands)
        out.append(Check(server.subject, "permissions", Level.PASS, f"may run {names}"))


async def _dump_version(server: _Server) -> int | None:
    assert server.conn is not None
    for db in sorted(server.dbs):
        if db and (await server.conn.call_raw(b"SELECT", db)) != b"OK":
            continue
        key = await server.conn.call_raw(b"RANDOMKEY")
        if isinstance(key, bytes):
            version = _rdb_version(await server.conn.call_raw(b"DUMP", key))
            if version is not None:
                return version
    return _rdb_from_version(server.info)


async def _write_rate(servers: Sequence[_Server], sample_s: float) -> None:
    """Bytes per second into each source's replication stream; a source without replicas feeds
    no stream (its offset stands still), so its clients' input (`INFO stats`) stands in."""

    async def offset(s: _Server) -> int:
        assert s.conn is not None
        info = _info(await s.conn.call(b"INFO", b"replication"))
        if info.get("repl_backlog_active") == "1":
            return int(info.get("master_repl_offset", 0))
        stats = _info(await s.conn.call(b"INFO", b"stats"))
        return int(stats.get("total_net_input_bytes", 0))

    first = [await offset(s) for s in servers]
    t0 = time.monotonic()
    await asyncio.sleep(sample_s)
    second = [await offset(s) for s in servers]
    elapsed = time.monotonic() - t0
    for s, a, b in zip(servers, first, second, strict=True):
        s.rate = max(0, b - a) / elapsed


def _buffer_check(server: _Server, sync_s: float, raw: Any) -> Check:
    subject, rate = server.subject, server.rate
    needed = rate * sync_s
    if isinstance(raw, hiredis.ReplyError) or not isinstance(raw, list) or len(raw) < 2:
        return Check(
            subject,
            "output buffer",
            Level.WARN,
            "cannot read client-output-buffer-limit (CONFIG GET refused): "
            f"a full sync of about {sync_s:.0f} s at {_mb(rate)}/s needs {_mb(needed)}",
        )
    words = raw[1].decode().split()
    classes = {words[i]: words[i + 1 : i + 4] for i in range(0, len(words) - 3, 4)}
    hard, soft, secs = (int(x) for x in classes.get("slave") or classes.get("replica") or [0] * 3)
    limit = min(x for x in (hard, soft if sync_s > secs else 0) if x) if hard or soft else 0
    text = f"{_mb(hard)} hard, {_mb(soft)} for {secs} s"
    if not limit or needed <= limit / 2:
        return Check(
            subject,
            "output buffer",
            Level.PASS,
            f"replica output buffer limit {text}; a full sync of about {sync_s:.0f} s at the "
            f"current {_mb(rate)}/s buffers about {_mb(needed)}",
        )
    # A pass needs the limit to be twice the need; twice that again leaves room for a write rate
    # or a sync time that comes out higher the next time they are measured.
    want = max(256 * MB, int(needed * 4))
    want = (want + MB - 1) // MB * MB
    return Check(
        subject,
        "output buffer",
        Level.WARN,
        f"replica output buffer limit {text}, but a full sync of about {sync_s:.0f} s at the "
        f"current {_mb(rate)}/s buffers about {_mb(needed)}: the source would drop the link "
        "again and again (Replica Of repeatedly fails)",
        f'CONFIG SET client-output-buffer-limit "replica {want} {want} 0"',
    )


async def _offers_dual_channel(server: _Server) -> bool:
    """Valkey 8 with `dual-channel-replication-enabled yes` and `repl-diskless-sync yes`."""
    assert server.conn is not None
    for name in (b"dual-channel-replication-enabled", b"repl-diskless-sync"):
        raw = await server.conn.call_raw(b"CONFIG", b"GET", name)
        if not isinstance(raw, list) or len(raw) < 2 or raw[1] != b"yes":
            return False
    return True


def _dual_channel_check(server: _Server, sync_s: float) -> Check:
    needed = server.rate * sync_s
    return Check(
        server.subject,
        "output buffer",
        Level.PASS,
        "the source offers dual-channel replication: during a full sync of about "
        f"{sync_s:.0f} s its command stream (about {_mb(needed)} at the current "
        f"{_mb(server.rate)}/s) is buffered by the syncer, not in the source's replica "
        "output buffer",
    )


def _backlog_check(server: _Server) -> Check:
    backlog = int(server.info.get("repl_backlog_size", 0))
    if server.rate <= 0:
        return Check(
            server.subject,
            "backlog",
            Level.PASS,
            f"repl-backlog-size {_mb(backlog)}; no writes now, so an outage can resume by "
            "partial sync as long as fewer than that many bytes are written meanwhile",
        )
    seconds = backlog / server.rate
    message = (
        f"repl-backlog-size {_mb(backlog)}: an outage of about {seconds:.0f} s at the current "
        f"{_mb(server.rate)}/s can still resume by partial sync; longer means a full sync"
    )
    if seconds >= BACKLOG_WARN_S:
        return Check(server.subject, "backlog", Level.PASS, message)
    want = (int(server.rate * 300) + MB - 1) // MB * MB
    return Check(
        server.subject, "backlog", Level.WARN, message, f"CONFIG SET repl-backlog-size {want}"
    )


async def preflight(
    sources: Sequence[RedisUrl],
    destination: RedisUrl,
    *,
    source_tls: Sequence[TlsOptions | None] | None = None,
    destination_tls: TlsOptions | None = None,
    sample_s: float = 1.0,
    load_bytes_per_s: float = LOAD_BYTES_PER_S,
    dual_channel: Sequence[bool] | None = None,
) -> PreflightReport:
    """Run every check (module doc); never raises for a server's refusal, it becomes a line.
    `dual_channel`: per source, whether the syncer would ask for a dual-channel full sync (not
    through a gateway; default: yes)."""
    report = PreflightReport()
    out = report.checks
    tls = list(source_tls or [None] * len(sources))
    srcs = [_Server(f"source {i} ({u.redacted()})", u) for i, u in enumerate(sources, start=1)]
    dest = _Server(f"destination ({destination.redacted()})", destination)
    try:
        reachable = [
            s for s, t in zip(srcs, tls, strict=True) if await _open(s, t, Side.SOURCE, out)
        ]
        dest_ok = await _open(dest, destination_tls, Side.DESTINATION, out)
        for s in reachable:
            await _permissions(
                s, [(b"PSYNC", b"?", b"-1"), (b"REPLCONF", b"ACK", b"0"), (b"INFO",)], out
            )
        if dest_ok:
            await _permissions(
                dest, [(b"RESTORE", b"k", b"0", b"x"), (b"FLUSHALL",), (b"MULTI",)], out
            )
        await _write_rate(reachable, sample_s)
        dataset = sum(int(s.info.get("used_memory_dataset", 0)) for s in reachable)
        sync_s = 1.0 + dataset / load_bytes_per_s
        wants_dual = dict(zip(map(id, srcs), dual_channel or [True] * len(srcs), strict=True))
        for s in reachable:
            assert s.conn is not None
            raw = await s.conn.call_raw(b"CONFIG", b"GET", b"client-output-buffer-limit")
            if wants_dual[id(s)] and await _offers_dual_channel(s):
                out.append(_dual_channel_check(s, sync_s))
            else:
                out.append(_buffer_check(s, sync_s, raw))
            out.append(_backlog_check(s))
            s.rdb = await _dump_version(s)
        if dest_ok:
            dest.rdb = await _dump_version(dest)
            _destination_checks(reachable, dest, out)
        report.estimate = {
            "keys": sum(sum(s.dbs.values()) for s in reachable),
            "bytes": dataset,
            "full_sync_s": round(sync_s, 1),
        }
        out.append(
            Check(
                "all sources",
                "estimate",
                Level.PASS,
                f"{report.estimate['keys']:.0f} keys, {_mb(dataset)} of data: a full sync of "
                f"about {sync_s:.0f} s",
            )
        )
    finally:
        for s in [*srcs, dest]:
            if s.conn is not None:
                with contextlib.suppress(Exception):
                    await s.conn.aclose()
    return report


def _destination_checks(sources: list[_Server], dest: _Server, out: list[Check]) -> None:
    for s in sources:
        if s.rdb is None or dest.rdb is None:
            continue
        if s.rdb > dest.rdb:
            out.append(
                Check(
                    s.subject,
                    "versions",
                    Level.WARN,
                    f"RDB version {s.rdb} is newer than the destination's {dest.rdb}: values "
                    "will be decoded into commands (slower)",
                )
            )
        else:
            out.append(
                Check(
                    s.subject,
                    "versions",
                    Level.PASS,
                    f"RDB version {s.rdb}, destination {dest.rdb}: RESTORE payloads apply as "
                    "they are",
                )
            )
    limit = int(dest.info.get("maxmemory", 0))
    used = sum(int(s.info.get("used_memory", 0)) for s in sources)
    if limit and used > limit:
        out.append(
            Check(
                dest.subject,
                "memory",
                Level.FAIL,
                f"the sources use {_mb(used)} ({used} bytes), the destination's limit is "
                f"{_mb(limit)} ({limit} bytes): it cannot fit",
                f"raise the destination's memory limit to at least {_mb(used * 1.2)}",
            )
        )
    else:
        room = "no limit" if not limit else f"limit {_mb(limit)}"
        out.append(Check(dest.subject, "memory", Level.PASS, f"sources use {_mb(used)}; {room}"))
    have = _modules(dest.info)
    for s in sources:
        missing = sorted(_modules(s.info) - have)
        if missing:
            out.append(
                Check(
                    s.subject,
                    "modules",
                    Level.FAIL,
                    f"modules loaded here and not on the destination: {', '.join(missing)}",
                    "load them on the destination",
                )
            )
    if dest.info.get("cluster_enabled") == "1":
        for s in sources:
            others = sorted(db for db, n in s.dbs.items() if db != 0 and n)
            if others:
                out.append(
                    Check(
                        s.subject,
                        "databases",
                        Level.FAIL,
                        f"keys in databases {', '.join(map(str, others))}, but the destination "
                        "is a Redis Cluster (database 0 only)",
                        "move the keys to database 0, or use a destination with one shard",
                    )
                )
