"""The syncer: N sources → one destination, each link applying in its own order.

Construct a `SyncEngine`, `await engine.run()` in an event loop, and from anywhere (any thread)
call `stop()`, `pause()`, `resume()`; read `statuses()` or pass `on_status`.

How one run goes (state machine of the engine):

1. Resolve every source into links (one per primary of a sharded source).
2. Read the checkpoints stored in the destination (checkpoint.py). If every link has a
   `streaming` checkpoint and `flush` is off, each link continues with `PSYNC replid offset+1`.
   Otherwise all links full-sync; the destination is flushed first when `flush` is set, or when the
   checkpoints show that this destination was ours and is now incomplete. With a `job_tag`
   (the control plane passes destination + generation), the destination is also flushed unless
   the checkpoint hash carries that same tag, which is written right after the flush: a new
   generation always starts clean, a re-queued job of the same generation resumes.
3. Each link runs independently (its own source connection, its own destination connection):
   full sync (snapshot → RESTORE or decoded commands) then the command stream, batch by batch in
   `MULTI … EXEC` with its checkpoint (or, for a batch of blind writes when there is one link,
   pipelined and followed by its checkpoint: checkpoint.py). A dropped link is retried with
   backoff and resumes from its checkpoint.
4. When a link cannot resume (the source answers FULLRESYNC to our PSYNC, or the link dropped
   in the middle of a snapshot we had started to load), the whole round ends with
   `FullSyncRequired`: with `auto_full_sync` the engine flushes and starts again at 2, otherwise
   `run()` raises it for the caller (DESIGN §3: everything restarts).
5. A fatal error stops everything: statuses say `stopped` with the error, `run()` raises it.

The expiry gap (a key whose TTL the source renews while our full sync is running): a Redis replica
never expires keys itself; our destination is a master and does, both for keys loaded from the
snapshot and for the `PEXPIREAT`/`SET … PXAT` renewals buffered for us during the load, which
are in the past by the time we apply them (a past PEXPIREAT deletes the key; the next renewal
then finds nothing). So, after a full sync:
- keys already expired when the snapshot was taken (aux `ctime`) are skipped;
- keys that may expire before the load ends (twice the estimate + 60 s) are restored with a *grace*
  expiry (one fixed time 24 h ahead) and remembered with their real expiry;
- while the stream catches up (until we applied the offset the source had when the load ended),
  absolute expiries in `PEXPIREAT` and `SET … PXAT` that fall before that horizon are rewritten
  to the grace expiry and remembered the same way (latest value wins);
- once caught up, one script per remembered key sets the real expiry (at least now + 10 s, so a
  renewal still in flight can land) only if the key still has the grace expiry: a later PERSIST,
  SET without TTL or DEL from the stream wins. Keys that really expired on the source are deleted
  by the DEL the source propagates when it expires them.
If the syncer dies between the load and that fix-up, those keys keep the grace expiry (≤ 24 h)
unless the stream touches them. Outages during streaming longer than a key's TTL still let the
destination expire it on its own (as with any master-side copy).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import hiredis

from .checkpoint import CHECKPOINT_KEY, JOB_TAG_FIELD, Checkpoint, CheckpointState
from .cluster import ClusterWriter
from .errors import (
    FatalSyncError,
    FullSyncRequired,
    OutputBufferLimitError,
    ProtocolError,
    RetryableError,
    SyncError,
    classify_reply_error,
)
from .resp import CommandStreamParser, RespConnection, TlsOptions, pack
from .source import SourceLink, discover_primaries
from .status import LagMeter, LinkStatus, Phase, SourceStatus
from .urls import RedisUrl, UrlError, parse_redis_url
from .writer import MAX_IN_FLIGHT, Command, StandaloneWriter, Writer

__all__ = ["DestinationConfig", "SourceConfig", "SyncEngine"]

_SPECIAL = frozenset({b"PING", b"REPLCONF", b"SELECT", b"MULTI", b"EXEC"})
_GRACE_MS = 24 * 3600 * 1000
# ARGV: grace expiry, real expiry, earliest expiry we set now (so a renewal still in flight in the
# stream gets a chance to arrive before the key goes).
_FIXUP_SCRIPT = (
    b"if redis.call('PEXPIRETIME', KEYS[1]) ~= tonumber(ARGV[1]) then return 0 end "
    b"return redis.call('PEXPIREAT', KEYS[1], math.max(tonumber(ARGV[2]), tonumber(ARGV[3])))"
)
_FIXUP_MARGIN_MS = 10_000
_LOAD_BATCH = 512  # keys per pipelined load batch
_DROPS_BEFORE_FATAL = 3
_SAMPLE_PERIOD_S = 0.05  # lag sampling: 20 per second
# After a read that returned little, let the stream gather this long before the next read: under
# a steady flow of small writes, batches (each a MULTI … EXEC with its checkpoint, on both sides)
# are then a few hundred per second instead of thousands, for at most this much added lag.
_GATHER_S = 0.002
_SMALL_READ = 64 << 10


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """One source: its URL (redis:// or rediss://), TLS material, and a stable name."""

    url: str | RedisUrl
    tls: TlsOptions | None = None
    name: str | None = None  # names the checkpoint entries; default: the URL's host:port


@dataclass(frozen=True, slots=True)
class DestinationConfig:
    url: str | RedisUrl
    tls: TlsOptions | None = None


def _as_url(url: str | RedisUrl) -> RedisUrl:
    if isinstance(url, RedisUrl):
        return url
    try:
        return parse_redis_url(url)
    except UrlError as exc:
        raise FatalSyncError(f"bad URL: {exc}") from None


class _Stopped(Exception):
    pass


class SyncEngine:
    """Replicates `sources` into `destination`. See the module docstring for the steps."""

    def __init__(
        self,
        sources: Sequence[SourceConfig | str],
        destination: DestinationConfig | str,
        *,
        flush: bool = False,
        auto_full_sync: bool = True,
        on_status: Callable[[list[SourceStatus]], None] | None = None,
        status_interval: float = 0.25,
        backoff_max: float = 10.0,
        writer_factory: Callable[[RedisUrl, TlsOptions | None], Writer] | None = None,
        job_tag: str | None = None,
    ) -> None:
        if not 1 <= len(sources) <= 32:
            raise FatalSyncError("a destination has 1 to 32 sources")
        self.sources = [s if isinstance(s, SourceConfig) else SourceConfig(s) for s in sources]
        self.destination = (
            destination
            if isinstance(destination, DestinationConfig)
            else DestinationConfig(destination)
        )
        self.flush = flush
        self.auto_full_sync = auto_full_sync
        self.on_status = on_status
        self.status_interval = status_interval
        self.backoff_max = backoff_max
        self._writer_factory = writer_factory
        self.job_tag = job_tag
        self._statuses = [SourceStatus(source=_as_url(s.url).redacted()) for s in self.sources]
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._control_event: asyncio.Event | None = None
        self._stop_requested = False
        self._paused = False
        self._drops: dict[str, int] = {}
        self._framer_ready: asyncio.Future[None] | None = None
        self._dest_cluster = False
        self.single_link = False  # one source with one primary: the destination's only writer
        self.in_flight_per_link = MAX_IN_FLIGHT
        self.full_sync_rounds = 0  # how many times every link started from a full sync

    # -- control (thread-safe) -------------------------------------------------------------------

    def stop(self) -> None:
        """Stop as soon as possible; `run()` returns. Applied batches stay applied."""
        self._stop_requested = True
        self._poke()

    def pause(self) -> None:
        """Disconnect from the sources but keep the position; `resume()` continues by PSYNC."""
        self._paused = True
        self._poke()

    def resume(self) -> None:
        self._paused = False
        self._poke()

    @property
    def paused(self) -> bool:
        return self._paused

    def _poke(self) -> None:
        loop, ev = self._loop, self._control_event
        if loop is None or ev is None or loop.is_closed():
            return
        if _running_loop() is loop:
            ev.set()
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(ev.set)

    def statuses(self) -> list[SourceStatus]:
        """A copy of every source's status (safe to read from another thread)."""
        with self._lock:
            return [
                SourceStatus(s.source, [dataclasses.replace(ln) for ln in s.links], s.stopped_error)
                for s in self._statuses
            ]

    # -- main loop -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until `stop()` (returns) or a fatal error / unrecoverable state (raises)."""
        self._loop = asyncio.get_running_loop()
        self._control_event = asyncio.Event()
        # The stream framer's regex takes ~0.3 s of CPU to compile: done in a thread while we
        # connect and load, not when the first stream commands are waiting.
        self._framer_ready = asyncio.ensure_future(
            asyncio.to_thread(CommandStreamParser.prepare, _SPECIAL)
        )
        reporter = asyncio.create_task(self._report_loop()) if self.on_status else None
        try:
            await self._detect_destination()
            links = await self._resolve_links()
            flush = self.flush
            round_backoff = 0.5
            while not self._stop_requested:
                if self._paused:
                    self._set_all(Phase.STOPPED, None)
                    await self._wait_control()
                    continue
                try:
                    await self._round(links, flush)
                except FullSyncRequired as exc:
                    if not self.auto_full_sync:
                        raise
                    with self._lock:
                        for st in self._statuses:
                            for ln in st.links:
                                ln.last_error = str(exc)
                    flush = True
                    continue
                except RetryableError as exc:
                    # The destination dropped the connection that reads the checkpoints (it
                    # restarted, or closed its clients): try the round again, flush still pending.
                    self._set_all(Phase.OUT_OF_SYNC, None)
                    with self._lock:
                        for st in self._statuses:
                            for ln in st.links:
                                ln.last_error = f"destination: {exc}"
                    await asyncio.sleep(round_backoff)
                    round_backoff = min(round_backoff * 2, self.backoff_max)
                    continue
                flush = False  # paused: the next round resumes from the checkpoints
        except SyncError as exc:
            if exc.fatal:
                self._set_all(Phase.STOPPED, str(exc))
            raise
        finally:
            if reporter is not None:
                reporter.cancel()
                await asyncio.gather(reporter, return_exceptions=True)
            if self._stop_requested or self._paused:
                self._set_all(Phase.STOPPED, None)
            if self.on_status:
                self.on_status(self.statuses())

    async def _wait_control(self) -> None:
        assert self._control_event is not None
        await self._control_event.wait()
        self._control_event.clear()

    def _set_all(self, phase: Phase, error: str | None) -> None:
        with self._lock:
            for st in self._statuses:
                if error is not None:
                    st.stopped_error = error
                for ln in st.links:
                    ln.phase = phase

    async def _report_loop(self) -> None:
        assert self.on_status is not None
        while True:
            await asyncio.sleep(self.status_interval)
            self.on_status(self.statuses())

    async def _resolve_links(self) -> list[_Link]:
        dest = _as_url(self.destination.url)
        links: list[_Link] = []
        for i, src in enumerate(self.sources):
            url = _as_url(src.url)
            if url.address == dest.address:
                raise FatalSyncError(f"{url.redacted()}: a database cannot replicate into itself")
            primaries: list[RedisUrl] = await self._retry(
                functools.partial(discover_primaries, url, src.tls), self._statuses[i], url
            )
            name = src.name or url.address
            status_links = []
            for p in primaries:
                link_id = name if len(primaries) == 1 else f"{name}/{p.address}"
                ln = LinkStatus(p.address)
                status_links.append(ln)
                links.append(_Link(self, p, src.tls, link_id, ln))
            with self._lock:
                self._statuses[i].links = status_links
        self.single_link = len(links) == 1
        # Unanswered bytes to the destination: 8 MiB for one link, 64 MiB shared by many (the
        # syncer's memory stays bounded with 32 sources), never under 1 MiB per link.
        self.in_flight_per_link = max(1 << 20, min(MAX_IN_FLIGHT, (64 << 20) // len(links)))
        return links

    async def _retry(self, fn: Callable[[], Any], status: SourceStatus, url: RedisUrl) -> Any:
        backoff = 0.5
        while True:
            try:
                return await fn()
            except RetryableError as exc:
                with self._lock:
                    if not status.links:
                        status.links = [LinkStatus(url.address)]
                    status.links[0].phase = Phase.OUT_OF_SYNC
                    status.links[0].last_error = str(exc)
                if self._stop_requested:
                    raise
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.backoff_max)

    def make_writer(self) -> Writer:
        url = _as_url(self.destination.url)
        if self._writer_factory is not None:
            return self._writer_factory(url, self.destination.tls)
        budget = self.in_flight_per_link
        if self._dest_cluster:
            return ClusterWriter(url, self.destination.tls, max_in_flight=budget)
        return StandaloneWriter(url, self.destination.tls, max_in_flight=budget)

    async def _detect_destination(self) -> None:
        url = _as_url(self.destination.url)
        if url.cluster is not None:
            self._dest_cluster = url.cluster
            return
        backoff = 0.5
        while True:
            try:
                conn = await RespConnection.open(url, self.destination.tls, select_db=False)
                try:
                    info = await conn.call(b"INFO", b"cluster")
                finally:
                    await conn.aclose()
                self._dest_cluster = b"cluster_enabled:1" in info
                return
            except RetryableError as exc:
                with self._lock:
                    for st in self._statuses:
                        st.links = st.links or [LinkStatus(url.address)]
                        st.links[0].phase = Phase.OUT_OF_SYNC
                        st.links[0].last_error = f"destination: {exc}"
                if self._stop_requested:
                    raise
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.backoff_max)

    async def _round(self, links: list[_Link], flush: bool) -> None:
        """One pass of steps 2-4; returns when paused or stopped."""
        control = self.make_writer()
        backoff = 0.5
        while True:
            try:
                await control.open()
                break
            except RetryableError:
                if self._stop_requested:
                    return
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.backoff_max)
        try:
            ckpts = await control.read_checkpoints()
            if self.job_tag is not None:
                tag = await control.probe((b"HGET", CHECKPOINT_KEY, JOB_TAG_FIELD))
                if tag != self.job_tag.encode():
                    # Written by another job (or by nobody): this job starts from scratch.
                    flush = True
            saved = [ckpts.get(ln.link_id) for ln in links]
            resumable = all(c is not None and c.state is CheckpointState.STREAMING for c in saved)
            if not flush and not resumable and any(c is not None for c in saved):
                # Our own load was interrupted, or a link has no position: what the destination
                # holds is incomplete and may contain keys the sources no longer have.
                raise FullSyncRequired(
                    "destination", "the saved replication position cannot be resumed"
                )
            if flush:
                await control.flushall()
                if self.job_tag is not None:
                    await control.probe(
                        (b"HSET", CHECKPOINT_KEY, JOB_TAG_FIELD, self.job_tag.encode())
                    )
        finally:
            await control.aclose()
        full = flush or not resumable
        if full:
            self.full_sync_rounds += 1
        for ln, c in zip(links, saved, strict=True):
            ln.reset(None if full else c)
        tasks = [asyncio.create_task(ln.run(), name=f"link {ln.link_id}") for ln in links]
        ctl = asyncio.create_task(self._wait_control())
        try:
            while True:
                done, _ = await asyncio.wait({*tasks, ctl}, return_when=asyncio.FIRST_COMPLETED)
                for t in done:
                    if t is not ctl and not t.cancelled() and (exc := t.exception()) is not None:
                        raise exc
                if ctl in done:
                    if self._stop_requested or self._paused:
                        return
                    ctl = asyncio.create_task(self._wait_control())
        finally:
            for t in [*tasks, ctl]:
                t.cancel()
            await asyncio.gather(*tasks, ctl, return_exceptions=True)


def _ignore_count(n: int) -> None:
    pass


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _info_int(info: bytes, field: bytes) -> int | None:
    at = info.find(field + b":")
    if at < 0:
        return None
    end = info.find(b"\r\n", at)
    try:
        return int(info[at + len(field) + 1 : end if end >= 0 else None])
    except ValueError:
        return None


def _keyspace_total(info: bytes) -> int:
    total = 0
    for line in info.split(b"\r\n"):
        if line.startswith(b"db") and b"keys=" in line:
            total += int(line.split(b"keys=", 1)[1].split(b",", 1)[0])
    return total


class _Link:
    """One replication link: a primary of a source → its own destination connection."""

    def __init__(
        self,
        engine: SyncEngine,
        url: RedisUrl,
        tls: TlsOptions | None,
        link_id: str,
        status: LinkStatus,
    ) -> None:
        self.engine = engine
        self.url = url
        self.tls = tls
        self.link_id = link_id
        self.status = status
        self.ckpt: Checkpoint | None = None
        self.applied = -1  # offset applied on the destination
        self.meter = LagMeter()
        self.loaded_any = False
        self.restore_mode: str | None = None
        # expiry gap (module doc): (db, key) -> real expiry of keys given the grace expiry
        self.pending_ttl: dict[tuple[int, bytes], int] = {}
        self.catching_up = False
        self.fixup_target: int | None = None
        self.grace_ms = 0
        self.grace_below = 0  # expiries before this (wall ms) get the grace while catching up

    def reset(self, ckpt: Checkpoint | None) -> None:
        self.ckpt = ckpt
        self.loaded_any = False
        self.pending_ttl = {}
        self.catching_up = False
        self.fixup_target = None
        self._update(
            phase=Phase.CONNECTING,
            replid=ckpt.replid if ckpt else None,
            offset=ckpt.offset if ckpt else -1,
        )

    def _update(self, **changes: Any) -> None:
        with self.engine._lock:
            for k, v in changes.items():
                setattr(self.status, k, v)

    async def run(self) -> None:
        sampler = asyncio.create_task(self._sample_loop(), name=f"lag {self.link_id}")
        backoff = 0.5
        try:
            while True:
                writer = self.engine.make_writer()
                link = SourceLink(self.url, self.tls)
                accepted = False  # the source answered this connection's PSYNC
                try:
                    self._update(phase=Phase.CONNECTING)
                    await writer.open()
                    await link.connect()
                    if self.ckpt is not None and self.ckpt.state is CheckpointState.STREAMING:
                        # The destination is the authority: a batch may have committed after
                        # we lost its reply.
                        saved = (await writer.read_checkpoints()).get(self.link_id)
                        if saved is None or saved.state is not CheckpointState.STREAMING:
                            # Our position is gone from the destination: it restarted empty or
                            # was flushed. Continuing by PSYNC would add new writes to a copy
                            # that lost the old ones; everything must be loaded again.
                            raise FullSyncRequired(
                                self.link_id,
                                "the destination lost the replication position it held (it "
                                "restarted without its data, or was flushed)",
                            )
                        self.ckpt = saved
                        reply = await link.psync(self.ckpt.replid, self.ckpt.offset)
                        accepted = True
                        if reply.full:
                            raise FullSyncRequired(
                                self.link_id,
                                f"the source cannot continue after offset {self.ckpt.offset} "
                                f"of {self.ckpt.replid} (its backlog is too small for the "
                                "outage, or it has a new history)",
                            )
                        self.ckpt = dataclasses.replace(self.ckpt, replid=reply.replid)
                        with self.engine._lock:
                            self.status.partial_syncs += 1
                            self.status.replid = reply.replid
                    else:
                        if self.loaded_any:
                            raise FullSyncRequired(
                                self.link_id, "the link dropped while loading the snapshot"
                            )
                        reply = await link.psync(None, -1)
                        accepted = True
                        if not reply.full:
                            raise ProtocolError(
                                f"{link.where}: PSYNC ? -1 answered without FULLRESYNC"
                            )
                        await self._full_sync(link, writer, reply)
                    backoff = 0.5
                    await self._stream(link, writer)
                except RetryableError as exc:
                    self._note_drop(exc, accepted=accepted)
                    self._update(phase=Phase.OUT_OF_SYNC, last_error=str(exc), lag_ms=None)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self.engine.backoff_max)
                finally:
                    link.close()
                    await writer.aclose()
        finally:
            sampler.cancel()
            await asyncio.gather(sampler, return_exceptions=True)

    def _note_drop(self, exc: RetryableError, *, accepted: bool) -> None:
        """A source that keeps closing the link while we load (or catch up after loading) is
        over its output buffer limit for replicas. Only closes after the source accepted us as
        a replica count: a close before its PSYNC answer means it is down or restarting."""
        loading = self.status.phase is Phase.SYNCING or self.catching_up
        if not accepted or not loading or "closed" not in str(exc):
            return
        drops = self.engine._drops.get(self.link_id, 0) + 1
        self.engine._drops[self.link_id] = drops
        if drops >= _DROPS_BEFORE_FATAL:
            raise OutputBufferLimitError(
                f"{self.url.redacted()}: the source closed the replication link {drops} times "
                "during the full sync. It is most likely dropping us because the writes buffered "
                "for us while we load exceed its `client-output-buffer-limit replica` setting "
                "(default 'replica 256mb 64mb 60'): raise it on the source, e.g. "
                'CONFIG SET client-output-buffer-limit "replica 1gb 512mb 120".'
            ) from exc

    # -- full sync -----------------------------------------------------------------------------

    async def _full_sync(self, link: SourceLink, writer: Writer, reply: Any) -> None:
        from . import decode, dump, rdb  # the RDB side of the package

        st = self.status
        self.ckpt = None
        self.meter = LagMeter()
        self.restore_mode = None
        with self.engine._lock:
            st.phase = Phase.SYNCING
            st.full_syncs += 1
            st.replid, st.offset = reply.replid, -1
            st.rdb_size, st.rdb_transferred, st.keys_loaded, st.keys_expected = None, 0, 0, None
            st.restore_mode = None
        await writer.commit_load(
            self.link_id, Checkpoint(CheckpointState.LOADING, reply.replid, reply.offset)
        )
        parser = rdb.RdbParser()
        start_ms = int(time.time() * 1000)
        start = time.monotonic()
        snapshot_ms = start_ms
        self.grace_ms = start_ms + _GRACE_MS
        self.pending_ttl = {}
        db = 0
        batch: list[Command] = []
        nkeys = 0

        def loaded(n: int) -> Callable[[], None]:
            def done() -> None:
                st.keys_loaded += n

            return done

        # A writer that does not route by arguments is sent RESTOREs packed as they are built.
        packs = not writer.needs_args

        async def flush() -> None:
            nonlocal batch, nkeys
            if batch:
                await writer.load(batch, loaded(nkeys))
                batch, nkeys = [], 0

        async for chunk in link.rdb_chunks():
            items = parser.feed(chunk)
            with self.engine._lock:
                st.rdb_size, st.rdb_transferred, st.ingress_bytes = (
                    link.rdb_size,
                    link.rdb_transferred,
                    link.bytes_in,
                )
            horizon = self._horizon_ms(start, start_ms)
            for item in items:
                if type(item) is rdb.RdbKey:
                    if item.db != db:
                        await flush()
                        await writer.select(item.db)
                        db = item.db
                    exp = item.expire_ms
                    if exp != -1:
                        if exp <= snapshot_ms:
                            continue  # expired already when the snapshot was taken
                        if exp < horizon:
                            self.pending_ttl[db, item.key] = exp
                            item = dataclasses.replace(item, expire_ms=self.grace_ms)
                    self.loaded_any = True
                    if self.restore_mode is None:
                        await flush()
                        self.restore_mode = await self._probe(
                            writer, item, parser.version, decode, dump
                        )
                        self._update(restore_mode=self.restore_mode)
                        st.keys_loaded += 1
                        continue
                    if self.restore_mode != "restore":
                        batch.extend(self._decoded(decode, item))
                    elif packs:
                        batch.append(dump.restore_packed(item.key, item, parser.version))
                    else:
                        batch.append(dump.restore_command(item.key, item, parser.version))
                    nkeys += 1
                    if len(batch) >= _LOAD_BATCH:
                        await flush()
                elif type(item) is rdb.RdbAux:
                    if item.key == b"ctime":
                        with contextlib.suppress(ValueError):
                            snapshot_ms = int(item.value) * 1000
                elif type(item) is rdb.RdbFunction:
                    self.loaded_any = True
                    batch.append([b"FUNCTION", b"LOAD", b"REPLACE", item.code])
                elif type(item) is rdb.RdbEnd:
                    if not item.checksum_ok:
                        raise ProtocolError(
                            f"{link.where}: the snapshot's CRC64 checksum does not match"
                        )
                elif type(item) is rdb.RdbModuleAux:
                    # Module-global state has no command to restore it; module keys fail loudly
                    # at RESTORE if the destination lacks the module.
                    self._update(
                        last_error=f"module aux data (module id {item.module_id}) not replicated"
                    )
            await flush()
        if not parser.done:
            raise ProtocolError(f"{link.where}: the snapshot ended before its EOF marker")
        await writer.select(0)
        ckpt = Checkpoint(CheckpointState.STREAMING, reply.replid, reply.offset, 0)
        await writer.commit_load(self.link_id, ckpt)
        self.ckpt = ckpt
        self.applied = reply.offset
        self.fixup_target = self.meter.latest
        self.catching_up = True
        load_s = time.monotonic() - start
        self.grace_below = int(time.time() * 1000 + (60 + 3 * load_s) * 1000)
        link.send_ack(reply.offset)  # diskless: the master puts us online on the first ACK

    def _horizon_ms(self, start: float, start_ms: int) -> int:
        """Keys expiring before this (wall ms) get a grace expiry: the load may outlast them."""
        elapsed = time.monotonic() - start
        st = self.status
        done = None
        if st.rdb_size:
            done = st.rdb_transferred / st.rdb_size
        elif st.keys_expected:
            done = st.keys_loaded / st.keys_expected
        remaining = elapsed * (1 - done) / done if done and done > 0.01 else 3 * elapsed
        return start_ms + int((elapsed + 2 * remaining + 60) * 1000)

    async def _probe(self, writer: Writer, item: Any, version: int, decode: Any, dump: Any) -> str:
        """Decide once per link how keys are written: RESTORE, or decoded commands."""
        reply = await writer.probe(dump.restore_command(item.key, item, version))
        if type(reply) is not hiredis.ReplyError:
            return "restore"
        msg = str(reply)
        if "payload version" not in msg and "checksum" not in msg and "Bad data format" not in msg:
            raise classify_reply_error(msg, where="destination", command=b"RESTORE")
        for cmd in self._decoded(decode, item):
            r = await writer.probe(cmd)
            if type(r) is hiredis.ReplyError:
                raise classify_reply_error(str(r), where="destination", command=cmd[0])
        return "decode"

    @staticmethod
    def _decoded(decode: Any, item: Any) -> list[list[bytes]]:
        try:
            return list(decode.value_commands(item.key, item))
        except decode.DecodeError as exc:
            raise FatalSyncError(
                f"key {item.key[:60]!r} cannot be copied: the destination refuses this RDB "
                f"version and the value cannot be decoded into commands ({exc})"
            ) from exc

    # -- command stream ------------------------------------------------------------------------

    async def _stream(self, link: SourceLink, writer: Writer) -> None:
        """Apply the command stream, one batch per read from the source (never splitting a
        source transaction), each batch sent without waiting for the previous one's EXEC."""
        assert self.ckpt is not None
        ckpt = self.ckpt
        st = self.status
        replid, offset, db = ckpt.replid, ckpt.offset, ckpt.db
        self.applied = offset
        self._update(phase=Phase.IN_SYNC, replid=replid, offset=offset, last_error=None)
        await writer.select(db)
        if self.engine._framer_ready is not None:
            await asyncio.shield(self.engine._framer_ready)
        special = _SPECIAL
        parser = CommandStreamParser(special)
        needs_args = writer.needs_args
        acker = asyncio.create_task(self._ack_loop(link))
        runs: list[bytes | memoryview] = []
        cmds: list[list[bytes]] = []
        ncmds = 0
        in_multi = False
        getack = False
        notable: Iterable[tuple[int, int, list[bytes]]]
        gather = False
        blind = False
        # Blind batches skip MULTI (checkpoint.py): only when this link is the destination's
        # only writer, so that applying a cut batch again cannot undo another source's writes.
        may_skip_multi = self.engine.single_link
        try:
            while True:
                if gather:
                    await asyncio.sleep(_GATHER_S)
                data = await link.read()
                gather = len(data) < _SMALL_READ
                st.ingress_bytes = link.bytes_in
                if not needs_args and not self.catching_up:
                    # Forwarding: the regex framer hands back only the commands we look at;
                    # the writer counts the applied commands from the EXEC reply.
                    raw, notable = parser.frame(data)
                    if not raw:
                        continue
                    blind = may_skip_multi and parser.blind and not runs
                else:
                    raw, parsed = parser.feed(data)
                    if not parsed:
                        continue
                    if not self.catching_up and special.isdisjoint(
                        map(bytes.upper, map(itemgetter(0), parsed))
                    ):
                        notable = ()  # plain data commands only, forwarded as they came
                        ncmds += len(parsed)
                        cmds.extend(parsed)
                    else:
                        ends = parser.ends(parsed)
                        notable = zip([0, *ends[:-1]], ends, parsed, strict=True)
                mv = memoryview(raw)
                start = 0
                for at, end, args in notable:
                    name = args[0].upper()
                    if name in special and name != b"SELECT":
                        if at > start:
                            runs.append(mv[start:at])
                        start = end
                        if name == b"MULTI":
                            in_multi = True
                        elif name == b"EXEC":
                            in_multi = False
                        elif name == b"REPLCONF" and len(args) > 1 and args[1].upper() == b"GETACK":
                            getack = True
                        continue
                    if name == b"SELECT":
                        try:
                            db = int(args[1])
                        except (IndexError, ValueError):
                            raise ProtocolError(f"{link.where}: bad SELECT in the stream") from None
                    elif self.catching_up and (name == b"PEXPIREAT" or name == b"SET"):
                        graced = self._graced(args, name, db)
                        if graced is not None:
                            if at > start:
                                runs.append(mv[start:at])
                            runs.append(pack(*graced))
                            start = end
                            args = graced
                    if needs_args:
                        ncmds += 1
                        cmds.append(args)
                if start < len(raw):
                    runs.append(mv[start:] if start else raw)
                offset += len(raw)
                if in_multi:
                    continue  # never split a source transaction between two of our batches
                new = Checkpoint(CheckpointState.STREAMING, replid, offset, db)
                await writer.apply_stream(
                    runs,
                    cmds,
                    ncmds,
                    self.link_id,
                    new,
                    self._committed(link, new, getack),
                    blind=blind,
                )
                runs, cmds, ncmds, getack, blind = [], [], 0, False, False
                if self.catching_up:
                    await self._fixup_ttls(writer, new)
        finally:
            acker.cancel()
            await asyncio.gather(acker, return_exceptions=True)

    def _committed(self, link: SourceLink, ckpt: Checkpoint, getack: bool) -> Callable[[int], None]:
        """What to do once a batch up to `ckpt` is applied (the writer says how many commands)."""
        st = self.status

        def done(n: int) -> None:
            self.ckpt = ckpt
            self.applied = ckpt.offset
            st.offset = ckpt.offset
            if n:
                st.commands_applied += n
                st.last_update = time.time()
            if getack:
                link.send_ack(ckpt.offset)

        return done

    def _graced(self, args: list[bytes], name: bytes, db: int) -> list[bytes] | None:
        """While catching up after a full sync, an absolute expiry that may pass before we have
        caught up is replaced by the grace expiry and remembered (module doc, expiry gap)."""
        try:
            if name == b"PEXPIREAT":
                at, real = 2, int(args[2])
            else:
                upper = [a.upper() for a in args[3:]]
                if b"PXAT" not in upper:
                    return None
                at = 3 + upper.index(b"PXAT") + 1
                real = int(args[at])
        except (IndexError, ValueError):
            return None
        if real >= self.grace_below:
            return None
        self.pending_ttl[db, args[1]] = real
        new = list(args)
        new[at] = b"%d" % self.grace_ms
        return new

    async def _fixup_ttls(self, writer: Writer, ckpt: Checkpoint) -> None:
        """Once caught up after a full sync: give keys that got the grace expiry their real one
        (unless the stream changed it since), and stop rewriting expiries."""
        if self.fixup_target is None:
            self.fixup_target = self.meter.latest
            return
        if ckpt.offset < self.fixup_target:
            return
        self.catching_up = False
        self.fixup_target = None
        self.engine._drops.pop(self.link_id, None)  # the source kept us through a whole load
        if not self.pending_ttl:
            return
        cmds: list[list[bytes]] = []
        cur = ckpt.db
        floor = b"%d" % (time.time() * 1000 + _FIXUP_MARGIN_MS)
        grace = b"%d" % self.grace_ms
        for (kdb, key), real in sorted(self.pending_ttl.items()):
            if kdb != cur:
                cmds.append([b"SELECT", b"%d" % kdb])
                cur = kdb
            cmds.append([b"EVAL", _FIXUP_SCRIPT, b"1", key, grace, b"%d" % real, floor])
        if cur != ckpt.db:
            cmds.append([b"SELECT", b"%d" % ckpt.db])
        self.pending_ttl = {}
        raw = [pack(*c) for c in cmds]
        await writer.apply_stream(raw, cmds, len(cmds), self.link_id, ckpt, _ignore_count)

    async def _ack_loop(self, link: SourceLink) -> None:
        while True:
            await asyncio.sleep(1.0)
            link.send_ack(self.applied)

    async def _sample_loop(self) -> None:
        """Sample the source's master_repl_offset (20/s) for the lag; never fails the link."""
        st = self.status
        backoff = 0.5
        while True:
            try:
                conn = await RespConnection.open(self.url, self.tls, select_db=False)
                backoff = 0.5
                try:
                    while True:
                        info = await conn.call(b"INFO", b"replication")
                        off = _info_int(info, b"master_repl_offset")
                        if off is not None:
                            self.meter.sample(off)
                        if st.phase is Phase.IN_SYNC:
                            st.lag_ms = self.meter.lag_ms(self.applied)
                        elif st.phase is Phase.SYNCING and st.keys_expected is None:
                            st.keys_expected = _keyspace_total(
                                await conn.call(b"INFO", b"keyspace")
                            )
                        await asyncio.sleep(_SAMPLE_PERIOD_S)
                finally:
                    await conn.aclose()
            except (SyncError, OSError):
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
