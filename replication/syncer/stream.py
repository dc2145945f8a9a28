"""The command stream of one link: batches to the destination, each with its checkpoint.

Every read from the source becomes one `StreamBatch` (never splitting a source transaction), sent
without waiting for the previous one's reply: `MULTI … EXEC` with its checkpoint, or, for a batch
of blind writes when this link is the destination's only writer, a pipeline followed by its
checkpoint (checkpoint.py). The position a link reports and acknowledges to the source is the
one of the last batch the destination applied.

Right after a full sync the stream is catching up, and closes the expiry gap (fullsync.py):
expiries that could pass before we caught up are rewritten through `ExpiryGap.graced`, and once
the source's offset at the end of the load is applied the real expiries are set (the TTL
fix-up, `_fixup_ttls`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from operator import itemgetter

import hiredis

from .aio import cancel_all
from .checkpoint import BOOKKEEPING_PREFIX, Checkpoint, CheckpointState
from .context import LinkContext, LinkState
from .errors import ProtocolError
from .events import EventKind
from .resp import CommandStreamParser, pack
from .source import SourceLink
from .status import Phase
from .writer import StreamBatch, Writer

__all__ = ["FRAMER_STOPS", "SPECIAL", "stream"]

# Stream commands that are ours to handle, not the destination's (the rest is forwarded).
SPECIAL = frozenset({b"PING", b"REPLCONF", b"SELECT", b"MULTI", b"EXEC"})
# After a read that returned little, let the stream gather this long before the next read: under
# a steady flow of small writes, batches (each a MULTI … EXEC with its checkpoint, on both sides)
# are then a few hundred per second instead of thousands, for at most this much added lag.
_GATHER_S = 0.002
_SMALL_READ = 64 << 10
_ACK_PERIOD_S = 1.0
# Commands to follow: a flush takes this copy's epoch markers with it (written again at once).
_FLUSH_NAMES = frozenset({b"FLUSHALL", b"FLUSHDB"})
# The commands the fast framer never takes into its runs (CommandStreamParser.frame), so that
# they come back to us one by one: ours to handle, and the flushes to follow.
FRAMER_STOPS = SPECIAL | _FLUSH_NAMES
# A read that holds this is looked at command by command: it may hold a command on one of the
# syncer's own keys (the source is itself a destination: a chain A → B → C must not copy B's
# checkpoint into C's). A substring search, at memory speed.
_OWN_KEYS = BOOKKEEPING_PREFIX


async def stream(ctx: LinkContext, state: LinkState, link: SourceLink, writer: Writer) -> None:
    """Apply the command stream from `state.ckpt` on, one batch per read from the source (never
    splitting a source transaction), each batch sent without waiting for the previous one's
    EXEC. Returns only by raising (the link dropped, or an error)."""
    assert state.ckpt is not None
    ckpt = state.ckpt
    st = state.status
    link_id = state.link_id
    replid, offset, db = ckpt.replid, ckpt.offset, ckpt.db
    state.applied = offset
    state.update(
        phase=Phase.IN_SYNC, replid=replid, offset=offset, last_error=None, last_error_kind=None
    )
    await writer.select(db)
    if ctx.framer_ready is not None:
        await asyncio.shield(ctx.framer_ready)
    special = SPECIAL
    parser = CommandStreamParser(FRAMER_STOPS, origin=state.at_source)
    needs_args = writer.needs_args
    acker = asyncio.create_task(_ack_loop(state, link))
    state.streaming = True
    state.progress_at = time.monotonic()
    runs: list[bytes | memoryview] = []
    cmds: list[list[bytes]] = []
    ncmds = 0
    in_multi = False
    getack = False
    notable: Iterable[tuple[int, int, list[bytes]]]
    gather = False
    blind = False
    gap = state.gap  # not None while catching up after a full sync
    # Blind batches skip MULTI (checkpoint.py): only when this link is the destination's
    # only writer, so that applying a cut batch again cannot undo another source's writes.
    may_skip_multi = ctx.single_link
    try:
        while True:
            if gather:
                await asyncio.sleep(_GATHER_S)
            data = await link.read()
            gather = len(data) < _SMALL_READ
            st.ingress_bytes, st.ingress_bytes_decompressed = link.wire_bytes, link.bytes_in
            if not needs_args and gap is None:
                # Forwarding: the regex framer hands back only the commands we look at;
                # the writer counts the applied commands from the EXEC reply.
                raw, notable = parser.frame(data)
                if not raw:
                    continue
                blind = may_skip_multi and parser.blind and not runs
                look = _OWN_KEYS in raw
                if look:  # every command of this read, to find the ones to drop or follow
                    parsed = _commands(raw)
                    ends = parser.ends(parsed)
                    notable = zip([0, *ends[:-1]], ends, parsed, strict=True)
            else:
                raw, parsed = parser.feed(data)
                if not parsed:
                    continue
                names = set(map(bytes.upper, map(itemgetter(0), parsed)))
                look = _OWN_KEYS in raw
                if (
                    gap is None
                    and not look
                    and special.isdisjoint(names)
                    and names.isdisjoint(_FLUSH_NAMES)
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
                if look and len(args) > 1 and args[1].startswith(BOOKKEEPING_PREFIX):
                    if at > start:
                        runs.append(mv[start:at])
                    start = end  # the source's own syncer bookkeeping: never applied
                    continue
                flushed = name == b"FLUSHALL" or (name == b"FLUSHDB" and db == 0)
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
                        raise ProtocolError(
                            f"{link.where}: bad SELECT in the stream", origin=state.at_source
                        ) from None
                elif gap is not None and (name == b"PEXPIREAT" or name == b"SET"):
                    graced = gap.graced(args, name, db)
                    if graced is not None:
                        if at > start:
                            runs.append(mv[start:at])
                        runs.append(pack(*graced))
                        start = end
                        args = graced
                if needs_args:
                    ncmds += 1
                    cmds.append(args)
                if flushed:
                    # This copy's epoch markers went with the source's flush: written again in
                    # the same batch, so the destination is never seen without them.
                    marks = ctx.identity.mark_commands()
                    if db != 0:
                        marks = [[b"SELECT", b"0"], *marks, [b"SELECT", b"%d" % db]]
                    runs.append(mv[start:end])
                    start = end
                    runs.extend(pack(*m) for m in marks)
                    if needs_args:
                        ncmds += len(marks)
                        cmds.extend(marks)
                    ctx.events.emit(
                        EventKind.FLUSH,
                        f"the source flushed ({name.decode()} in its stream): applied",
                        source=state.source,
                        link=link_id,
                    )
            if start < len(raw):
                runs.append(mv[start:] if start else raw)
            offset += len(raw)
            if in_multi:
                continue  # never split a source transaction between two of our batches
            new = Checkpoint(CheckpointState.STREAMING, replid, offset, db)
            await writer.apply_stream(
                StreamBatch(
                    runs, cmds, ncmds, link_id, new, _committed(state, link, new, getack), blind
                )
            )
            runs, cmds, ncmds, getack, blind = [], [], 0, False, False
            if gap is not None:
                await _fixup_ttls(ctx, state, writer, new)
                gap = state.gap
    finally:
        state.streaming = False
        await cancel_all([acker])


def _committed(
    state: LinkState, link: SourceLink, ckpt: Checkpoint, getack: bool
) -> Callable[[int], None]:
    """What to do once a batch up to `ckpt` is applied (the writer says how many commands)."""
    st = state.status

    def done(n: int) -> None:
        state.ckpt = ckpt
        if ckpt.offset != state.applied:
            state.progress_at = time.monotonic()
            # Redis Enterprise's `last_update`: the last update received from the source, its
            # PINGs of an idle link included (so it does not age while nothing is written).
            st.last_update = time.time()
        state.applied = ckpt.offset
        st.offset = ckpt.offset
        if n:
            st.commands_applied += n
        if getack:
            link.send_ack(ckpt.offset)

    return done


async def _fixup_ttls(ctx: LinkContext, state: LinkState, writer: Writer, ckpt: Checkpoint) -> None:
    """Once caught up after a full sync: give keys that got the grace expiry their real one
    (unless the stream changed it since), and stop rewriting expiries."""
    gap = state.gap
    assert gap is not None
    if gap.target is None:
        gap.target = state.meter.latest
        return
    if ckpt.offset < gap.target:
        return
    state.gap = None
    ctx.drops.pop(state.link_id, None)  # the source kept us through a whole load
    if not gap.pending:
        return
    cmds = gap.fixup(ckpt.db, time.time() * 1000)
    raw = [pack(*c) for c in cmds]
    await writer.apply_stream(StreamBatch(raw, cmds, len(cmds), state.link_id, ckpt, _ignore_count))


def _commands(raw: bytes) -> list[list[bytes]]:
    """The commands of `raw` (complete commands only, as framed by the stream parser)."""
    reader = hiredis.Reader()
    reader.feed(raw)
    return list(iter(reader.gets, False))


def _ignore_count(n: int) -> None:
    pass


async def _ack_loop(state: LinkState, link: SourceLink) -> None:
    while True:
        await asyncio.sleep(_ACK_PERIOD_S)
        link.send_ack(state.applied)
