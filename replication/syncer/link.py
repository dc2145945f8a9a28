"""One replication link: a primary of a source → its own destination connection.

A link connects to its primary (source.py) and to the destination (its own writer), then either
continues from its checkpoint with `PSYNC replid offset+1` or loads a full sync (fullsync.py;
over Valkey's dual channel where the source offers it, dualchannel.py), and streams (stream.py).
When the link drops it is retried with backoff and resumes from its checkpoint; what cannot be
resumed ends the round with `FullSyncRequired` (engine.py). Beside it, a side connection samples
the source's offset for the lag.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass

from .aio import cancel_all
from .backoff import Backoff
from .checkpoint import CHECKPOINT_KEY, Checkpoint, CheckpointState
from .context import LinkContext, LinkState
from .dualchannel import DualChannelRefused, StreamBuffer, open_dual_channel
from .errors import (
    ErrorKind,
    FatalSyncError,
    FullSyncRequired,
    Origin,
    OutputBufferLimitError,
    ProtocolError,
    RetryableError,
    Side,
    SyncError,
)
from .events import EventKind
from .fullsync import SnapshotLoad
from .gateway import GatewayOptions, GatewayUnreachable
from .resp import RespConnection, TlsOptions
from .source import PsyncReply, SourceLink
from .status import LinkStatus, Phase
from .stream import stream
from .urls import RedisUrl
from .writer import Writer

__all__ = ["Link"]

_DROPS_BEFORE_FATAL = 3
# A close while the source was this far ahead of what we applied counts as an output-buffer drop
# (the smallest replica limit anyone sets is larger; a link that keeps up is never this far).
_BEHIND_BYTES = 32 << 10
_SAMPLE_PERIOD_S = 0.05  # lag sampling: 20 per second
_SAMPLE_BACKOFF_MAX_S = 5.0  # the sampler never fails the link: it just tries again, calmly
_SAMPLE_TIMEOUT_S = 2.0  # an INFO the source does not answer in this long is a failed sample
_STALENESS_TICK_S = 0.25
STALE_AFTER_S = 1.0  # a sample older than this no longer gives the lag: "at least its age"
_UNSAMPLED_OUT_OF_SYNC_S = 5.0  # no sample this long: an in-sync link says out-of-sync


@dataclass(frozen=True, slots=True)
class _Offer:
    """A snapshot the source started to send when it refused to continue (`+FULLRESYNC` to our
    `PSYNC replid offset`): the next round loads it from this very connection."""

    link: SourceLink
    reply: PsyncReply
    why: str


class Link:
    """One replication link: a primary of source `source` (its index in `SyncEngine.sources`)."""

    def __init__(
        self,
        ctx: LinkContext,
        url: RedisUrl,
        tls: TlsOptions | None,
        link_id: str,
        status: LinkStatus,
        *,
        source: int,
        gateway: GatewayOptions | None = None,
    ) -> None:
        self.ctx = ctx
        self.url = url
        self.tls = tls
        self.gateway = gateway
        # A gateway that answered once and is gone now is restarting: retried. One never
        # reached is a configuration to fix: the source stops (never sent uncompressed instead).
        self._gateway_seen = False
        self.state = LinkState(
            link_id=link_id,
            source=source,
            status=status,
            lock=ctx.lock,
            at_source=Origin(Side.SOURCE, url.address, source),
            at_destination=Origin(Side.DESTINATION, ctx.destination, source),
        )
        self._offer: _Offer | None = None
        # Why this round's full syncs use the classic handshake although dual channel is on
        # (the source refused the rdb connection); None: dual channel is asked for.
        self._dual_off: str | None = None

    @property
    def link_id(self) -> str:
        return self.state.link_id

    def reset(self, ckpt: Checkpoint | None) -> None:
        """Start a round from `ckpt` (None: full sync)."""
        state = self.state
        state.ckpt = ckpt
        state.loaded_any = False
        state.gap = None
        self._dual_off = None
        state.update(
            phase=Phase.CONNECTING,
            replid=ckpt.replid if ckpt else None,
            offset=ckpt.offset if ckpt else -1,
        )

    async def run(self) -> None:
        """Replicate until cancelled or an error that is not retryable (raised)."""
        try:
            await self._run()
        except SyncError as exc:
            exc.on_source(self.state.source)
            raise

    def drop_offer(self) -> None:
        """Close the connection of a snapshot the source offered, if no round will load it."""
        if self._offer is not None:
            self._offer.link.close()
            self._offer = None

    async def _run(self) -> None:
        state = self.state
        events = self.ctx.events
        sampler = asyncio.create_task(self._sample_loop(), name=f"lag {state.link_id}")
        backoff = Backoff(self.ctx.backoff_max)
        try:
            while True:
                writer = self.ctx.make_writer(state.source)
                offer, self._offer = self._offer, None
                link = offer.link if offer else self._source_link()
                keep = False  # the source connection outlives this attempt (its offered snapshot)
                accepted = offer is not None  # the source answered this connection's PSYNC
                try:
                    # No phase change here: a round starts its links as connecting (reset()), and
                    # a link that dropped stays out-of-sync, its lag still growing, through every
                    # attempt until it loads or streams again. A reconnection that hangs (a silent
                    # partition) is not a link "connecting" with the lag it had when it dropped.
                    await writer.open()
                    if offer is not None:
                        await self._full_sync(link, writer, offer.reply, offer.why)
                    else:
                        await link.connect()
                        self._gateway_seen = True
                        reply = await self._handshake(link, writer)
                        accepted = True
                        if reply.full and state.ckpt is not None:
                            # The source refused to continue and is preparing this snapshot now:
                            # keep the connection and load it in the next round (after the
                            # flush), instead of asking again and making it fork a second time.
                            why = (
                                f"the source cannot continue after offset {state.ckpt.offset} "
                                f"of {state.ckpt.replid} (its backlog is too small for the "
                                "outage, or it has a new history)"
                            )
                            self._offer, keep = _Offer(link, reply, why), True
                            raise FullSyncRequired(state.link_id, why, origin=state.at_source)
                        if reply.full:
                            await self._full_sync(link, writer, reply, "no position to continue")
                    backoff.reset()
                    try:
                        await stream(self.ctx, state, link, writer)
                    except FatalSyncError as exc:
                        if writer.sent_after_error():
                            exc.args = (f"{exc}; {await self._forget_position()}",)
                        raise
                except DualChannelRefused as exc:
                    self._dual_off = f"the source refused the dual-channel sync: {exc}"
                    events.emit(
                        EventKind.RECONNECT,
                        f"{exc}; connecting again for the classic handshake",
                        source=state.source,
                        link=state.link_id,
                    )
                except RetryableError as exc:
                    if isinstance(exc, GatewayUnreachable) and not self._gateway_seen:
                        raise FatalSyncError(
                            str(exc), kind=ErrorKind.CONFIG, origin=state.at_source
                        ) from exc
                    self._note_drop(exc, accepted=accepted)
                    # The lag is unknown from now on, and at least the age of the last sample.
                    age_ms = state.meter.age_s() * 1000
                    state.update(
                        phase=Phase.OUT_OF_SYNC,
                        last_error=str(exc),
                        last_error_kind=exc.kind,
                        lag_ms=max(state.status.lag_ms or 0.0, age_ms),
                        lag_exact=False,
                    )
                    events.emit(
                        EventKind.RECONNECT,
                        f"{exc}; connecting again in {backoff.delay:.1f} s",
                        source=state.source,
                        link=state.link_id,
                    )
                    await backoff.sleep()
                finally:
                    if not keep:
                        link.close()
                    await writer.aclose()
        finally:
            await cancel_all([sampler])

    def _source_link(self) -> SourceLink:
        return SourceLink(
            self.url,
            self.tls,
            source=self.state.source,
            gateway=self.gateway,
            dual_channel=self.ctx.dual_channel is not None and self._dual_off is None,
        )

    async def _forget_position(self) -> str:
        """A batch was refused while later ones were already sent: those may have committed with
        their checkpoints, which then claim a batch that never applied. Resuming from there would
        lose it silently, so the position is removed (HDEL is allowed even at maxmemory): the next
        start flushes and loads everything."""
        state = self.state
        writer = self.ctx.make_writer(state.source)
        try:
            await writer.open()
            await writer.probe((b"HDEL", CHECKPOINT_KEY, state.link_id.encode()))
        except SyncError as exc:
            return (
                "batches sent after the refused one may have been applied, and the saved "
                f"position could not be removed ({exc}): restart this sync with a flush"
            )
        finally:
            await writer.aclose()
        return (
            "batches sent after the refused one may have been applied, so the saved position "
            "was removed: the next start flushes the destination and loads everything again"
        )

    async def _handshake(self, link: SourceLink, writer: Writer) -> PsyncReply:
        """PSYNC from the position the destination holds (a partial resync), or for a full sync
        when there is none; a FULLRESYNC answer is the caller's to handle."""
        state = self.state
        ckpt = state.ckpt
        if ckpt is None or ckpt.state is not CheckpointState.STREAMING:
            if state.loaded_any:
                raise FullSyncRequired(
                    state.link_id,
                    "the link dropped while loading the snapshot",
                    origin=state.at_source,
                )
            state.ckpt = None
            reply = await link.psync(None, -1)
            if not reply.full:
                raise ProtocolError(
                    f"{link.where}: PSYNC ? -1 answered without FULLRESYNC",
                    origin=state.at_source,
                )
            return reply
        # The destination is the authority: a batch may have committed after we lost its reply.
        saved = (await writer.read_checkpoints()).get(state.link_id)
        if saved is None or saved.state is not CheckpointState.STREAMING:
            # Our position is gone from the destination: it restarted empty or was flushed.
            # Continuing by PSYNC would add new writes to a copy that lost the old ones;
            # everything must be loaded again.
            raise FullSyncRequired(
                state.link_id,
                "the destination lost the replication position it held (it restarted without "
                "its data, or was flushed)",
                origin=state.at_destination,
            )
        state.ckpt = saved
        reply = await link.psync(saved.replid, saved.offset)
        if not reply.full:
            state.ckpt = dataclasses.replace(saved, replid=reply.replid)
            with state.lock:
                state.status.partial_syncs += 1
                state.status.replid = reply.replid
            self.ctx.events.emit(
                EventKind.PARTIAL_RESYNC,
                f"continuing after offset {saved.offset} (partial resync, history {reply.replid})",
                source=state.source,
                link=state.link_id,
            )
        return reply

    async def _full_sync(
        self, link: SourceLink, writer: Writer, reply: PsyncReply, why: str
    ) -> None:
        state = self.state
        events = self.ctx.events
        snapshot, buffered = link, None
        if reply.dual and self.ctx.dual_channel is not None:
            snapshot, reply, buffered = await open_dual_channel(
                link, self.ctx.dual_channel, self._buffer_report
            )
            how = "dual channel: the snapshot on a second connection, the stream buffered here"
        else:
            how = f"classic handshake: {self._classic_why()}"
        state.update(
            full_sync_channel="dual-channel" if snapshot is not link else "classic",
            stream_buffer_peak=0,
            stream_spilled=0,
        )
        events.emit(
            EventKind.FULL_SYNC_STARTED,
            f"loading the source's snapshot at offset {reply.offset} of {reply.replid} ({why}; "
            f"{how})",
            source=state.source,
            link=state.link_id,
        )
        started = time.monotonic()
        try:
            await SnapshotLoad(state).run(snapshot, writer, reply)
        finally:
            if snapshot is not link:
                link.bytes_in += snapshot.bytes_in  # the stream's counters go on from both
                snapshot.close()
        st = state.status
        held = ""
        if buffered is not None:
            self._buffer_report(buffered.buffer)
            held = (
                " (the command stream since, buffered here meanwhile: up to "
                f"{st.stream_buffer_peak} bytes held, {st.stream_spilled} of them on disk)"
            )
        events.emit(
            EventKind.FULL_SYNC_DONE,
            f"snapshot loaded: {st.keys_loaded} keys, {st.rdb_transferred} bytes in "
            f"{time.monotonic() - started:.1f} s; streaming from offset {reply.offset}{held}",
            source=state.source,
            link=state.link_id,
        )

    def _classic_why(self) -> str:
        if self.gateway is not None:
            return "through the sync gateway (it relays one connection)"
        if self.ctx.dual_channel is None:
            return "dual channel is turned off"
        if self._dual_off is not None:
            return self._dual_off
        return (
            "the source does not offer dual-channel replication (Valkey 8 offers it with "
            "dual-channel-replication-enabled yes and repl-diskless-sync yes)"
        )

    def _buffer_report(self, buffer: StreamBuffer) -> None:
        state = self.state
        first_stall = buffer.full and state.status.stream_spilled < buffer.spilled
        state.update(stream_buffer_peak=buffer.peak, stream_spilled=buffer.spilled)
        if first_stall:
            self.ctx.events.emit(
                EventKind.WATCHDOG,
                f"the command stream buffered during the full sync reached its bound "
                f"({buffer.spilled} bytes on disk): the source buffers the rest until the "
                "snapshot is loaded",
                source=state.source,
                link=state.link_id,
            )

    def _note_drop(self, exc: RetryableError, *, accepted: bool) -> None:
        """A source that keeps closing the link while we load, or while we stream far behind
        it, is over its output buffer limit for replicas. Only closes after the source accepted
        us as a replica count: a close before its PSYNC answer means it is down or restarting.
        A close while we keep up is something else (a `CLIENT KILL`, a restart): it clears
        the count. Without the streaming case, a source whose backlog holds the writes takes us
        back by partial resync after each drop, and the link reconnects forever, saying only
        that the source closed it."""
        state = self.state
        loading = state.status.phase is Phase.SYNCING or state.gap is not None
        latest = state.meter.latest
        behind = latest is not None and latest - state.applied >= _BEHIND_BYTES
        if not accepted or exc.kind is not ErrorKind.CLOSED or exc.side is Side.DESTINATION:
            return  # a destination that closes on us says nothing of the source's buffers
        if not loading and not behind:
            self.ctx.drops.pop(state.link_id, None)
            return
        drops = self.ctx.drops.get(state.link_id, 0) + 1
        self.ctx.drops[state.link_id] = drops
        if drops >= _DROPS_BEFORE_FATAL:
            raise OutputBufferLimitError(
                f"{self.url.address}: the source closed the replication link {drops} times "
                "while we were loading or catching up. It is most likely dropping us because the "
                "writes buffered for us exceed its `client-output-buffer-limit replica` setting "
                "(default 'replica 256mb 64mb 60'): raise it on the source, e.g. "
                'CONFIG SET client-output-buffer-limit "replica 1gb 512mb 120".',
                origin=state.at_source,
            ) from exc

    async def _sample_loop(self) -> None:
        """Sample the source's master_repl_offset (20/s) for the lag; never fails the link.

        A lag is never reported from a stale sample: while the source cannot be sampled (a
        silent partition, an overloaded source) the lag is unknown and growing — at least the
        age of the last good sample (`lag_exact` False) — and after `_UNSAMPLED_OUT_OF_SYNC_S`
        an in-sync link says out-of-sync, until samples come again (`_watch_staleness`)."""
        state = self.state
        st = state.status
        backoff = Backoff(_SAMPLE_BACKOFF_MAX_S)
        watch = asyncio.create_task(self._watch_staleness(), name=f"staleness {state.link_id}")
        try:
            while True:
                try:
                    conn = await RespConnection.open(
                        self.url, self.tls, select_db=False, side=Side.SOURCE, source=state.source
                    )
                    backoff.reset()
                    try:
                        while True:
                            async with asyncio.timeout(_SAMPLE_TIMEOUT_S):
                                info = await conn.call(b"INFO", b"replication")
                            off = _info_int(info, b"master_repl_offset")
                            if off is not None:
                                state.meter.sample(off)
                            if st.phase is Phase.IN_SYNC:
                                state.update(
                                    lag_ms=state.meter.lag_ms(state.applied),
                                    lag_exact=state.meter.exact(state.applied),
                                )
                            elif st.phase is Phase.SYNCING and st.keys_expected is None:
                                async with asyncio.timeout(_SAMPLE_TIMEOUT_S):
                                    keyspace = await conn.call(b"INFO", b"keyspace")
                                st.keys_expected = _keyspace_total(keyspace)
                            await asyncio.sleep(_SAMPLE_PERIOD_S)
                    finally:
                        await conn.aclose()
                except (SyncError, OSError):  # TimeoutError included
                    await backoff.sleep()
        finally:
            await cancel_all([watch])

    async def _watch_staleness(self) -> None:
        state = self.state
        st = state.status
        unsampled = False  # this watch made an in-sync link out-of-sync
        while True:
            await asyncio.sleep(_STALENESS_TICK_S)
            age = state.meter.age_s()
            if age < STALE_AFTER_S:
                if unsampled and st.phase is Phase.OUT_OF_SYNC and state.streaming:
                    state.update(phase=Phase.IN_SYNC, last_error=None, last_error_kind=None)
                    self.ctx.events.emit(
                        EventKind.RECONNECT,
                        "the source can be sampled again; the lag is known again",
                        source=state.source,
                        link=state.link_id,
                    )
                unsampled = False
                continue
            if st.phase not in {Phase.IN_SYNC, Phase.OUT_OF_SYNC}:
                continue
            at_least = max(st.lag_ms or 0.0, age * 1000.0)
            state.update(lag_ms=at_least, lag_exact=False)
            if age >= _UNSAMPLED_OUT_OF_SYNC_S and st.phase is Phase.IN_SYNC:
                unsampled = True
                message = (
                    f"{self.url.address}: its replication offset could not be read for "
                    f"{age:.0f} s (network partition, or the source is overloaded): the lag is "
                    f"unknown, at least {age:.0f} s"
                )
                state.update(
                    phase=Phase.OUT_OF_SYNC, last_error=message, last_error_kind=ErrorKind.TIMEOUT
                )
                self.ctx.events.emit(
                    EventKind.WATCHDOG, message, source=state.source, link=state.link_id
                )


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
