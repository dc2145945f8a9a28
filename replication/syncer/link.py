"""One replication link: a primary of a source → its own destination connection.

A link connects to its primary (source.py) and to the destination (its own writer), then either
continues from its checkpoint with `PSYNC replid offset+1` or loads a full sync (fullsync.py),
and streams (stream.py). When the link drops it is retried with backoff and resumes from its
checkpoint; what cannot be resumed ends the round with `FullSyncRequired` (engine.py). Beside
it, a side connection samples the source's offset for the lag.
"""

from __future__ import annotations

import asyncio
import dataclasses

from .aio import cancel_all
from .backoff import Backoff
from .checkpoint import Checkpoint, CheckpointState
from .context import LinkContext, LinkState
from .errors import (
    ErrorKind,
    FullSyncRequired,
    Origin,
    OutputBufferLimitError,
    ProtocolError,
    RetryableError,
    Side,
    SyncError,
)
from .fullsync import SnapshotLoad
from .resp import RespConnection, TlsOptions
from .source import SourceLink
from .status import LinkStatus, Phase
from .stream import stream
from .urls import RedisUrl

__all__ = ["Link"]

_DROPS_BEFORE_FATAL = 3
_SAMPLE_PERIOD_S = 0.05  # lag sampling: 20 per second
_SAMPLE_BACKOFF_MAX_S = 5.0  # the sampler never fails the link: it just tries again, calmly


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
    ) -> None:
        self.ctx = ctx
        self.url = url
        self.tls = tls
        self.state = LinkState(
            link_id=link_id,
            source=source,
            status=status,
            lock=ctx.lock,
            at_source=Origin(Side.SOURCE, url.address, source),
            at_destination=Origin(Side.DESTINATION, ctx.destination, source),
        )

    @property
    def link_id(self) -> str:
        return self.state.link_id

    def reset(self, ckpt: Checkpoint | None) -> None:
        """Start a round from `ckpt` (None: full sync)."""
        state = self.state
        state.ckpt = ckpt
        state.loaded_any = False
        state.gap = None
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

    async def _run(self) -> None:
        state = self.state
        sampler = asyncio.create_task(self._sample_loop(), name=f"lag {state.link_id}")
        backoff = Backoff(self.ctx.backoff_max)
        try:
            while True:
                writer = self.ctx.make_writer(state.source)
                link = SourceLink(self.url, self.tls, source=state.source)
                accepted = False  # the source answered this connection's PSYNC
                try:
                    state.update(phase=Phase.CONNECTING)
                    await writer.open()
                    await link.connect()
                    ckpt = state.ckpt
                    if ckpt is not None and ckpt.state is CheckpointState.STREAMING:
                        # The destination is the authority: a batch may have committed after
                        # we lost its reply.
                        saved = (await writer.read_checkpoints()).get(state.link_id)
                        if saved is None or saved.state is not CheckpointState.STREAMING:
                            # Our position is gone from the destination: it restarted empty or
                            # was flushed. Continuing by PSYNC would add new writes to a copy
                            # that lost the old ones; everything must be loaded again.
                            raise FullSyncRequired(
                                state.link_id,
                                "the destination lost the replication position it held (it "
                                "restarted without its data, or was flushed)",
                                origin=state.at_destination,
                            )
                        state.ckpt = saved
                        reply = await link.psync(saved.replid, saved.offset)
                        accepted = True
                        if reply.full:
                            raise FullSyncRequired(
                                state.link_id,
                                f"the source cannot continue after offset {saved.offset} "
                                f"of {saved.replid} (its backlog is too small for the "
                                "outage, or it has a new history)",
                                origin=state.at_source,
                            )
                        state.ckpt = dataclasses.replace(saved, replid=reply.replid)
                        with state.lock:
                            state.status.partial_syncs += 1
                            state.status.replid = reply.replid
                    else:
                        if state.loaded_any:
                            raise FullSyncRequired(
                                state.link_id,
                                "the link dropped while loading the snapshot",
                                origin=state.at_source,
                            )
                        reply = await link.psync(None, -1)
                        accepted = True
                        if not reply.full:
                            raise ProtocolError(
                                f"{link.where}: PSYNC ? -1 answered without FULLRESYNC",
                                origin=state.at_source,
                            )
                        await SnapshotLoad(state).run(link, writer, reply)
                    backoff.reset()
                    await stream(self.ctx, state, link, writer)
                except RetryableError as exc:
                    self._note_drop(exc, accepted=accepted)
                    state.update(
                        phase=Phase.OUT_OF_SYNC,
                        last_error=str(exc),
                        last_error_kind=exc.kind,
                        lag_ms=None,
                    )
                    await backoff.sleep()
                finally:
                    link.close()
                    await writer.aclose()
        finally:
            await cancel_all([sampler])

    def _note_drop(self, exc: RetryableError, *, accepted: bool) -> None:
        """A source that keeps closing the link while we load (or catch up after loading) is
        over its output buffer limit for replicas. Only closes after the source accepted us as
        a replica count: a close before its PSYNC answer means it is down or restarting."""
        state = self.state
        loading = state.status.phase is Phase.SYNCING or state.gap is not None
        if not accepted or not loading or exc.kind is not ErrorKind.CLOSED:
            return
        drops = self.ctx.drops.get(state.link_id, 0) + 1
        self.ctx.drops[state.link_id] = drops
        if drops >= _DROPS_BEFORE_FATAL:
            raise OutputBufferLimitError(
                f"{self.url.redacted()}: the source closed the replication link {drops} times "
                "during the full sync. It is most likely dropping us because the writes buffered "
                "for us while we load exceed its `client-output-buffer-limit replica` setting "
                "(default 'replica 256mb 64mb 60'): raise it on the source, e.g. "
                'CONFIG SET client-output-buffer-limit "replica 1gb 512mb 120".',
                origin=state.at_source,
            ) from exc

    async def _sample_loop(self) -> None:
        """Sample the source's master_repl_offset (20/s) for the lag; never fails the link."""
        state = self.state
        st = state.status
        backoff = Backoff(_SAMPLE_BACKOFF_MAX_S)
        while True:
            try:
                conn = await RespConnection.open(
                    self.url, self.tls, select_db=False, side=Side.SOURCE, source=state.source
                )
                backoff.reset()
                try:
                    while True:
                        info = await conn.call(b"INFO", b"replication")
                        off = _info_int(info, b"master_repl_offset")
                        if off is not None:
                            state.meter.sample(off)
                        if st.phase is Phase.IN_SYNC:
                            st.lag_ms = state.meter.lag_ms(state.applied)
                        elif st.phase is Phase.SYNCING and st.keys_expected is None:
                            st.keys_expected = _keyspace_total(
                                await conn.call(b"INFO", b"keyspace")
                            )
                        await asyncio.sleep(_SAMPLE_PERIOD_S)
                finally:
                    await conn.aclose()
            except (SyncError, OSError):
                await backoff.sleep()


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
