"""The syncer: N sources → one destination, each link applying in its own order.

Construct a `SyncEngine`, `await engine.run()` in an event loop, and from anywhere (any thread)
call `stop()`, `pause()`, `resume()`; read `statuses()` or pass `on_status`.

How one run goes (state machine of the engine):

1. Resolve every source into links (one per primary of a sharded source; link.py).
2. Read the checkpoints stored in the destination (checkpoint.py). If every link has a
   `streaming` checkpoint and `flush` is off, each link continues with `PSYNC replid offset+1`.
   Otherwise all links full-sync; the destination is flushed first when `flush` is set, or when the
   checkpoints show that this destination was ours and is now incomplete. With a `job_tag`
   (the control plane passes destination + generation), the destination is also flushed unless
   the checkpoint hash carries that same tag, which is written right after the flush: a new
   generation always starts clean, a re-queued job of the same generation resumes.
3. Each link runs independently (its own source connection, its own destination connection):
   full sync (snapshot → RESTORE or decoded commands; fullsync.py, which also explains the
   expiry gap; over a second connection where a Valkey source offers dual channel,
   dualchannel.py) then the command stream, batch by batch in `MULTI … EXEC` with its checkpoint
   (or, for a batch of blind writes when there is one link, pipelined and followed by its
   checkpoint: checkpoint.py, stream.py). A dropped link is retried with backoff and resumes from
   its checkpoint.
4. When a link cannot resume (the source answers FULLRESYNC to our PSYNC, or the link dropped
   in the middle of a snapshot we had started to load), the whole round ends with
   `FullSyncRequired`: with `auto_full_sync` the engine flushes and starts again at 2, otherwise
   `run()` raises it for the caller (DESIGN §3: everything restarts).
5. A fatal error stops everything: statuses say `stopped` with the error (and its kind),
   `run()` raises it.

The links share with the engine only what `LinkContext` holds (context.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .aio import cancel_all
from .backoff import Backoff
from .checkpoint import CHECKPOINT_KEY, JOB_TAG_FIELD, CheckpointState
from .cluster import ClusterWriter
from .context import Identity, LinkContext
from .dualchannel import MEMORY_LIMIT, DualChannelConfig
from .errors import (
    ErrorKind,
    FatalSyncError,
    FullSyncRequired,
    Origin,
    RetryableError,
    Side,
    SyncError,
)
from .events import EventKind, EventLog, SyncEvent
from .gateway import GatewayOptions
from .link import STALE_AFTER_S, Link
from .resp import CommandStreamParser, RespConnection, TlsOptions
from .source import discover_primaries
from .status import LinkStatus, Phase, SourceStatus
from .stream import FRAMER_STOPS
from .urls import RedisUrl, UrlError, parse_redis_url
from .writer import MAX_IN_FLIGHT, StandaloneWriter, Writer

__all__ = ["DestinationConfig", "SourceConfig", "SyncEngine"]

_IDENTITY_CHECK_S = 1.0  # how often the destination's epoch markers are checked
STOP_GRACE_S = 3.0  # after stop(), how long the engine may take to end before it is cancelled
# The watchdog (SyncEngine._watchdog).
STUCK_S = 30.0  # a streaming link that applies nothing this long while the source moves on
HANDSHAKE_S = 120.0  # a link that has not streamed nor loaded for this long
ESCALATIONS_BEFORE_STOP = 3  # stuck this often within the window: stop with the error
ESCALATION_WINDOW_S = 15 * 60.0
_WATCHDOG_TICK_S = 1.0
_STALE_S = 2.0  # a sample older than this does not say where the source is
_STOP_POLL_S = 0.25


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """One source: its URL (redis:// or rediss://), TLS material, and a stable name; with
    `gateway`, its replication links go compressed through the sync gateway of its host
    (gateway.py)."""

    url: str | RedisUrl
    tls: TlsOptions | None = None
    name: str | None = None  # names the checkpoint entries; default: the URL's host:port
    gateway: GatewayOptions | None = None


@dataclass(frozen=True, slots=True)
class DestinationConfig:
    url: str | RedisUrl
    tls: TlsOptions | None = None


def _as_url(url: str | RedisUrl, side: Side, source: int | None = None) -> RedisUrl:
    if isinstance(url, RedisUrl):
        return url
    try:
        return parse_redis_url(url)
    except UrlError as exc:
        raise FatalSyncError(
            f"bad URL: {exc}", kind=ErrorKind.CONFIG, origin=Origin(side, None, source)
        ) from None


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
        on_event: Callable[[SyncEvent], None] | None = None,
        stuck_after: float | None = None,
        dual_channel: bool = True,
        work_dir: str | None = None,
        stream_buffer_memory: int | None = None,
    ) -> None:
        if not 1 <= len(sources) <= 32:
            raise FatalSyncError("a destination has 1 to 32 sources", kind=ErrorKind.CONFIG)
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
        self._statuses = [
            SourceStatus(source=_as_url(s.url, Side.SOURCE, i).redacted())
            for i, s in enumerate(self.sources)
        ]
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
        self._events = EventLog(on_event)
        self._stuck: dict[str, list[float]] = {}  # link id -> when the watchdog found it stuck
        self.stuck_after = STUCK_S if stuck_after is None else stuck_after
        self._identity = Identity(job_tag=job_tag.encode() if job_tag is not None else None)
        self._links: list[Link] = []  # once resolved: their meters say how old each lag is
        # Dual-channel full syncs (dualchannel.py): where a source offers them, unless turned off;
        # the command stream buffered meanwhile spills to files in `work_dir` (private to the
        # job; None: the system's temporary directory) past `stream_buffer_memory` per link.
        self.dual_channel = dual_channel
        self.work_dir = work_dir
        self.stream_buffer_memory = stream_buffer_memory

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
        now = time.monotonic()
        ages = {id(ln.state.status): ln.state.meter.age_s(now) for ln in self._links}
        with self._lock:
            return [
                SourceStatus(
                    s.source,
                    [_as_of_now(ln, ages.get(id(ln))) for ln in s.links],
                    s.stopped_error,
                    s.stopped_error_kind,
                )
                for s in self._statuses
            ]

    def events(self) -> list[SyncEvent]:
        """The recent events (flushes, full syncs, resyncs, reconnects: events.py), oldest first."""
        return self._events.recent()

    # -- main loop -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until `stop()` (returns) or a fatal error / unrecoverable state (raises).

        `stop()` ends it within `STOP_GRACE_S` whatever it is doing: the engine gets that long
        to end by itself (applied batches stay applied), then it is cancelled (a connection that
        hangs in a handshake, a silent destination)."""
        self._loop = asyncio.get_running_loop()
        self._control_event = asyncio.Event()
        # The stream framer's regex takes ~0.3 s of CPU to compile: done in a thread while we
        # connect and load, not when the first stream commands are waiting.
        self._framer_ready = asyncio.ensure_future(
            asyncio.to_thread(CommandStreamParser.prepare, FRAMER_STOPS)
        )
        body = asyncio.create_task(self._main(), name="syncer engine")
        try:
            while not body.done():
                await asyncio.wait({body}, timeout=_STOP_POLL_S)
                if self._stop_requested and not body.done():
                    await asyncio.wait({body}, timeout=STOP_GRACE_S)
                    if not body.done():
                        await cancel_all([body])
                        self._set_all(Phase.STOPPED, None)
                        if self.on_status:
                            self.on_status(self.statuses())
                        return
        finally:
            if not body.done():  # run() itself was cancelled
                await cancel_all([body])
        body.result()

    async def _main(self) -> None:
        reporter = asyncio.create_task(self._report_loop()) if self.on_status else None
        links_made: list[Link] = []
        try:
            await self._detect_destination()
            links = await self._resolve_links()
            links_made.extend(links)
            self._links = links
            flush: str | None = "asked to flush the destination first" if self.flush else None
            # Not reset between rounds: a destination that keeps dropping the checkpoint read
            # is asked less and less often.
            round_backoff = Backoff(self.backoff_max)
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
                    self._note_all(str(exc), exc.kind)
                    self._events.emit(
                        EventKind.ROUND_RESTART,
                        f"every source is loaded again from a full sync: {exc}",
                        source=exc.source,
                    )
                    flush = str(exc)
                    continue
                except RetryableError as exc:
                    # The destination dropped the connection that reads the checkpoints (it
                    # restarted, or closed its clients): try the round again, flush still pending.
                    self._set_all(Phase.OUT_OF_SYNC, None)
                    self._note_all(f"destination: {exc}", exc.kind)
                    await round_backoff.sleep()
                    continue
                flush = None  # paused: the next round resumes from the checkpoints
        except SyncError as exc:
            if exc.fatal:
                self._set_all(Phase.STOPPED, exc)
                # Tied to the source whose data it was, but said where it happened.
                where = "the destination refused it: " if exc.side is Side.DESTINATION else ""
                self._events.emit(EventKind.STOPPED, f"{where}{exc}", source=exc.source)
            raise
        finally:
            for ln in links_made:
                ln.drop_offer()  # a snapshot a source offered that no round will read now
            if reporter is not None:
                await cancel_all([reporter])
            if self._stop_requested or self._paused:
                self._set_all(Phase.STOPPED, None)
            if self.on_status:
                self.on_status(self.statuses())

    async def _wait_control(self) -> None:
        assert self._control_event is not None
        await self._control_event.wait()
        self._control_event.clear()

    def _set_all(self, phase: Phase, error: SyncError | None) -> None:
        with self._lock:
            for st in self._statuses:
                if error is not None:
                    st.stopped_error = str(error)
                    st.stopped_error_kind = error.kind
                for ln in st.links:
                    ln.phase = phase

    def _note_all(self, message: str, kind: ErrorKind) -> None:
        """The same last error on every link (what ended a round concerns them all)."""
        with self._lock:
            for st in self._statuses:
                for ln in st.links:
                    ln.last_error = message
                    ln.last_error_kind = kind

    async def _report_loop(self) -> None:
        assert self.on_status is not None
        while True:
            await asyncio.sleep(self.status_interval)
            self.on_status(self.statuses())

    async def _resolve_links(self) -> list[Link]:
        dest = _as_url(self.destination.url, Side.DESTINATION)
        found: list[tuple[int, RedisUrl, TlsOptions | None, str, LinkStatus]] = []
        for i, src in enumerate(self.sources):
            url = _as_url(src.url, Side.SOURCE, i)
            if url.address == dest.address:
                raise FatalSyncError(
                    f"{url.address}: a database cannot replicate into itself",
                    kind=ErrorKind.CONFIG,
                    origin=Origin(Side.SOURCE, url.address, i),
                )
            primaries: list[RedisUrl] = await self._retry(
                functools.partial(discover_primaries, url, src.tls, source=i),
                self._statuses[i],
                url,
            )
            name = src.name or url.address
            status_links = []
            for p in primaries:
                link_id = name if len(primaries) == 1 else f"{name}/{p.address}"
                ln = LinkStatus(p.address)
                status_links.append(ln)
                found.append((i, p, src.tls, link_id, ln))
            with self._lock:
                self._statuses[i].links = status_links
        self.single_link = len(found) == 1
        # Unanswered bytes to the destination: 8 MiB for one link, 64 MiB shared by many (the
        # syncer's memory stays bounded with 32 sources), never under 1 MiB per link.
        self.in_flight_per_link = max(1 << 20, min(MAX_IN_FLIGHT, (64 << 20) // len(found)))
        dual = None
        if self.dual_channel:
            # The same for the stream buffered during dual-channel full syncs: 32 MiB for one
            # link, 64 MiB shared by many, never under 1 MiB per link; the rest spills to disk.
            memory = self.stream_buffer_memory
            if memory is None:
                memory = max(1 << 20, min(MEMORY_LIMIT, (64 << 20) // len(found)))
            dual = DualChannelConfig(memory_limit=memory, spill_dir=self.work_dir)
        ctx = LinkContext(
            lock=self._lock,
            make_writer=self.make_writer,
            framer_ready=self._framer_ready,
            single_link=self.single_link,
            backoff_max=self.backoff_max,
            destination=dest.address,
            drops=self._drops,
            events=self._events,
            identity=self._identity,
            dual_channel=dual,
        )
        return [
            Link(ctx, p, tls, link_id, ln, source=i, gateway=self.sources[i].gateway)
            for i, p, tls, link_id, ln in found
        ]

    async def _retry(self, fn: Callable[[], Any], status: SourceStatus, url: RedisUrl) -> Any:
        backoff = Backoff(self.backoff_max)
        while True:
            try:
                return await fn()
            except RetryableError as exc:
                with self._lock:
                    if not status.links:
                        status.links = [LinkStatus(url.address)]
                    status.links[0].phase = Phase.OUT_OF_SYNC
                    status.links[0].last_error = str(exc)
                    status.links[0].last_error_kind = exc.kind
                if self._stop_requested:
                    raise
                await backoff.sleep()

    def make_writer(self, source: int | None = None) -> Writer:
        """A new writer to the destination, for the link(s) of source `source` (None: the
        engine's own, which reads and writes the checkpoints of a round)."""
        url = _as_url(self.destination.url, Side.DESTINATION)
        if self._writer_factory is not None:
            return self._writer_factory(url, self.destination.tls)
        budget = self.in_flight_per_link
        if self._dest_cluster:
            return ClusterWriter(url, self.destination.tls, max_in_flight=budget, source=source)
        return StandaloneWriter(url, self.destination.tls, max_in_flight=budget, source=source)

    async def _detect_destination(self) -> None:
        url = _as_url(self.destination.url, Side.DESTINATION)
        if url.cluster is not None:
            self._dest_cluster = url.cluster
            return
        backoff = Backoff(self.backoff_max)
        while True:
            try:
                conn = await RespConnection.open(
                    url, self.destination.tls, select_db=False, side=Side.DESTINATION
                )
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
                        st.links[0].last_error_kind = exc.kind
                if self._stop_requested:
                    raise
                await backoff.sleep()

    async def _round(self, links: list[Link], flush: str | None) -> None:
        """One pass of steps 2-4; returns when paused or stopped. `flush` says why the
        destination must be flushed first (None: resume if the destination allows it)."""
        control = self.make_writer()
        backoff = Backoff(self.backoff_max)
        while True:
            try:
                await control.open()
                break
            except RetryableError:
                if self._stop_requested:
                    return
                await backoff.sleep()
        identity = self._identity
        try:
            ckpts = await control.read_checkpoints()
            keys = control.epoch_keys()
            marks = [await control.probe((b"GET", key)) for key in keys]
            if flush is None and identity.job_tag is not None:
                tag = await control.probe((b"HGET", CHECKPOINT_KEY, JOB_TAG_FIELD))
                if tag != identity.job_tag:
                    # Written by another job (or by nobody): this job starts from scratch.
                    flush = "a new sync job (another generation) starts from scratch"
            saved = [ckpts.get(ln.link_id) for ln in links]
            resumable = all(c is not None and c.state is CheckpointState.STREAMING for c in saved)
            tokens = {m for m in marks if m is not None}
            ours = any(c is not None for c in saved) or bool(tokens)
            adopt = False
            if flush is None and resumable and (len(tokens) > 1 or (tokens and None in marks)):
                lost = sum(m is None for m in marks)
                flush = self._lost(
                    f"{lost} of its {len(marks)} shards came back without their data "
                    "(restarted without persistence, or flushed)"
                )
            elif flush is None and resumable and not tokens:
                adopt = True  # a checkpoint from before epoch markers: this run marks it
            elif flush is None and not resumable and ours:
                # Our own load was interrupted, a link has no position, or the checkpoint is gone
                # but not the markers: what the destination holds is incomplete and may contain
                # keys the sources no longer have.
                flush = self._lost("the saved replication position cannot be resumed")
            if flush is not None:
                self._events.emit(EventKind.FLUSH, f"flushing the destination: {flush}")
                await control.flushall()
            full = flush is not None or not resumable
            if full or adopt:
                identity.token = secrets.token_hex(16).encode()
                identity.keys = keys
                for cmd in identity.mark_commands():
                    await control.probe(cmd)
            else:
                identity.token, identity.keys = tokens.pop(), keys
        finally:
            await control.aclose()
        if full:
            self.full_sync_rounds += 1
        for ln, c in zip(links, saved, strict=True):
            ln.reset(None if full else c)
        tasks = [asyncio.create_task(ln.run(), name=f"link {ln.link_id}") for ln in links]
        tasks.append(asyncio.create_task(self._watch_identity(), name="destination identity"))
        tasks.append(asyncio.create_task(self._watchdog(links), name="watchdog"))
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
            await cancel_all([*tasks, ctl])

    async def _watchdog(self, links: list[Link]) -> None:
        """A stuck link is a fault the syncer reports itself, never "in sync" or "connecting"
        forever. Every second, for each link:

        1. streaming, the source's offset (freshly sampled) beyond what we applied, and nothing
           applied for `STUCK_S`: stuck. Said in the status and the log, and the round is
           restarted (every link resumes from its checkpoint); the third time within
           `ESCALATION_WINDOW_S` the sync stops with the error.
        2. not streaming nor loading for `HANDSHAKE_S`: no successful handshake. With an error
           (the source is down, refuses us…) it is retried by design and only reported, every
           `HANDSHAKE_S`; without any error it hangs, and is treated like 1.
        """
        reported: dict[str, float] = {}
        behind: dict[str, float] = {}  # link id -> since when the source is ahead of it
        while True:
            await asyncio.sleep(_WATCHDOG_TICK_S)
            now = time.monotonic()
            for ln in links:
                state, st = ln.state, ln.state.status
                if st.phase is Phase.IN_SYNC or st.phase is Phase.SYNCING:
                    reported.pop(state.link_id, None)
                latest = state.meter.latest
                ahead = (
                    state.streaming
                    and latest is not None
                    and latest > state.applied
                    and state.meter.age_s(now) < _STALE_S
                )
                if not ahead:
                    behind.pop(state.link_id, None)
                    stuck = False
                else:
                    since = max(behind.setdefault(state.link_id, now), state.progress_at)
                    stuck = now - since > self.stuck_after
                why = ""
                if stuck and latest is not None:
                    why = (
                        f"applied nothing for {self.stuck_after:.0f} s although the source is "
                        f"{latest - state.applied} bytes ahead"
                    )
                    behind.pop(state.link_id, None)
                elif st.phase in {Phase.CONNECTING, Phase.OUT_OF_SYNC} and not state.streaming:
                    since = reported.setdefault(state.link_id, now)
                    if now - since >= HANDSHAKE_S:
                        reported[state.link_id] = now
                        if st.last_error:
                            self._events.emit(
                                EventKind.WATCHDOG,
                                f"no successful handshake for {HANDSHAKE_S:.0f} s; still "
                                f"retrying (last error: {st.last_error})",
                                source=state.source,
                                link=state.link_id,
                            )
                        else:
                            why = f"no handshake and no error for {HANDSHAKE_S:.0f} s"
                if why:
                    self._escalate(ln, why, now)

    def _escalate(self, ln: Link, why: str, now: float) -> None:
        state = ln.state
        times = [t for t in self._stuck.get(state.link_id, []) if now - t < ESCALATION_WINDOW_S]
        times.append(now)
        self._stuck[state.link_id] = times
        message = f"watchdog: {state.link_id} is stuck: {why}"
        self._events.emit(EventKind.WATCHDOG, message, source=state.source, link=state.link_id)
        state.update(last_error=message, last_error_kind=ErrorKind.TIMEOUT)
        if len(times) >= ESCALATIONS_BEFORE_STOP:
            raise FatalSyncError(
                f"{message}; it was stuck {len(times)} times in "
                f"{ESCALATION_WINDOW_S / 60:.0f} minutes, stopping",
                kind=ErrorKind.TIMEOUT,
                origin=state.at_source,
            )
        raise RetryableError(
            f"{message}; restarting every link from its checkpoint",
            kind=ErrorKind.TIMEOUT,
            origin=state.at_source,
        )

    def _lost(self, reason: str) -> str:
        """`reason` to flush now, or, when the caller restarts things itself, FullSyncRequired."""
        if not self.auto_full_sync:
            raise FullSyncRequired("destination", reason, origin=self._dest_origin())
        return reason

    def _dest_origin(self) -> Origin:
        return Origin(Side.DESTINATION, _as_url(self.destination.url, Side.DESTINATION).address)

    async def _watch_identity(self) -> None:
        """Every second, check that the destination still holds the epoch markers of this copy
        (checkpoint.py): one missing means the data it stood for is gone (a restart without
        persistence, a flush behind our back, a shard that came back empty), and the round ends
        with FullSyncRequired so that everything is flushed and loaded again. Connection errors
        are the links' business: the watch just tries again."""
        identity = self._identity
        backoff = Backoff(self.backoff_max)
        while True:
            writer = self.make_writer()
            try:
                await writer.open()
                backoff.reset()
                while True:
                    await asyncio.sleep(_IDENTITY_CHECK_S)
                    keys, token = list(identity.keys), identity.token
                    marks = [await writer.probe((b"GET", key)) for key in keys]
                    lost = sum(m != token for m in marks)
                    if lost and identity.token == token:
                        raise FullSyncRequired(
                            "destination",
                            f"the destination lost the data of this copy: {lost} of its "
                            f"{len(keys)} epoch markers are gone (it restarted without "
                            "persistence, was flushed, or a shard came back empty)",
                            origin=self._dest_origin(),
                        )
            except RetryableError:
                await backoff.sleep()
            finally:
                await writer.aclose()


def _as_of_now(ln: LinkStatus, age: float | None) -> LinkStatus:
    """A copy of `ln` whose lag is no fresher than its last sample (`age` seconds old). The
    sampler and the staleness watch write the figures from the event loop; a loop that was frozen
    (SIGSTOP, a long block) would otherwise publish the last figure as exact when it wakes, before
    they run again (issue 18's random run: "in-sync lag 0 ms" 6 s behind, right after SIGCONT)."""
    copy = dataclasses.replace(ln)
    if age is not None and age >= STALE_AFTER_S and ln.phase in {Phase.IN_SYNC, Phase.OUT_OF_SYNC}:
        copy.lag_ms = max(ln.lag_ms or 0.0, age * 1000.0)
        copy.lag_exact = False
    return copy


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
