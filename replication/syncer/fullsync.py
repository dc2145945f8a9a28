"""Full sync of one link: the source's snapshot (RDB) into the destination, and the expiry gap.

The snapshot is streamed (never held in memory): keys are written with RESTORE (the raw payload,
absolute TTL) when the destination accepts the source's RDB version, else decoded into plain
commands; one key decides which, once per load (`SnapshotLoad._probe`). The load runs under a
`loading` checkpoint and ends with a `streaming` one at the snapshot's offset (checkpoint.py).

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

`ExpiryGap` holds what the load remembered; stream.py rewrites the expiries through it while
catching up and sends its fix-up once caught up.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable
from typing import Any

import hiredis

from .checkpoint import BOOKKEEPING_PREFIX, Checkpoint, CheckpointState
from .context import LinkState
from .errors import ErrorKind, FatalSyncError, ProtocolError, classify_reply_error
from .lag import LagMeter
from .source import PsyncReply, SourceLink
from .status import Phase
from .writer import Command, Writer

__all__ = ["ExpiryGap", "SnapshotLoad"]

_GRACE_MS = 24 * 3600 * 1000
# ARGV: grace expiry, real expiry, earliest expiry we set now (so a renewal still in flight in the
# stream gets a chance to arrive before the key goes).
_FIXUP_SCRIPT = (
    b"if redis.call('PEXPIRETIME', KEYS[1]) ~= tonumber(ARGV[1]) then return 0 end "
    b"return redis.call('PEXPIREAT', KEYS[1], math.max(tonumber(ARGV[2]), tonumber(ARGV[3])))"
)
_FIXUP_MARGIN_MS = 10_000
_LOAD_BATCH = 512  # keys per pipelined load batch


class ExpiryGap:
    """The keys of one full sync that got the grace expiry, with their real expiries, and the
    source offset after which the stream has caught up (module doc)."""

    def __init__(self, grace_ms: int) -> None:
        self.grace_ms = grace_ms  # the one grace expiry (wall ms) of this load
        self.grace_below = 0  # expiries before this (wall ms) get the grace while catching up
        self.pending: dict[tuple[int, bytes], int] = {}  # (db, key) -> real expiry
        # The source's offset when the load ended (sampled): once applied, we have caught up.
        # None: not sampled yet, the stream takes the next sample.
        self.target: int | None = None

    def graced(self, args: list[bytes], name: bytes, db: int) -> list[bytes] | None:
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
        self.pending[db, args[1]] = real
        new = list(args)
        new[at] = b"%d" % self.grace_ms
        return new

    def fixup(self, db: int, now_ms: float) -> list[list[bytes]]:
        """The commands that give every remembered key its real expiry unless the stream changed
        it since (one script per key), starting and ending in database `db`; forgets the keys."""
        cmds: list[list[bytes]] = []
        cur = db
        floor = b"%d" % (now_ms + _FIXUP_MARGIN_MS)
        grace = b"%d" % self.grace_ms
        for (kdb, key), real in sorted(self.pending.items()):
            if kdb != cur:
                cmds.append([b"SELECT", b"%d" % kdb])
                cur = kdb
            cmds.append([b"EVAL", _FIXUP_SCRIPT, b"1", key, grace, b"%d" % real, floor])
        if cur != db:
            cmds.append([b"SELECT", b"%d" % db])
        self.pending = {}
        return cmds


class SnapshotLoad:
    """One full sync of one link: `run()` loads the snapshot that follows a FULLRESYNC."""

    def __init__(self, state: LinkState) -> None:
        self.state = state

    async def run(self, link: SourceLink, writer: Writer, reply: PsyncReply) -> None:
        """Load the snapshot, then commit the `streaming` checkpoint at its offset (the link's
        `ckpt` from then on) and leave the link catching up (`gap`)."""
        from . import decode, dump, rdb  # the RDB side of the package

        state = self.state
        st = state.status
        state.ckpt = None
        state.meter = LagMeter()
        with state.lock:
            st.phase = Phase.SYNCING
            st.full_syncs += 1
            st.replid, st.offset = reply.replid, -1
            st.rdb_size, st.rdb_transferred, st.keys_loaded, st.keys_expected = None, 0, 0, None
            st.restore_mode = None
        await writer.commit_load(
            state.link_id, Checkpoint(CheckpointState.LOADING, reply.replid, reply.offset)
        )
        parser = rdb.RdbParser()
        start_ms = int(time.time() * 1000)
        start = time.monotonic()
        snapshot_ms = start_ms
        gap = ExpiryGap(start_ms + _GRACE_MS)
        grace_ms, pending = gap.grace_ms, gap.pending
        mode: str | None = None  # "restore" or "decode", decided by the first key
        db = 0
        batch: list[Command] = []
        nkeys = 0

        def loaded(n: int) -> Callable[[], None]:
            def done() -> None:
                st.keys_loaded += n

            return done

        # A writer that does not route by arguments is sent RESTOREs packed as they are built.
        packs = not writer.needs_args

        # The fast path (standalone destination, RESTORE): once the probe said RESTORE, the parser
        # packs keys itself (dump.restore_packer) and leaves to the loop below only the keys that
        # expire before `floor[0]` (skipped or graced) and the syncer's own keys.
        floor = [0]
        # The batch holds only RESTOREs (one-line replies: read without an object per reply).
        one_line = True

        async def flush() -> None:
            nonlocal batch, nkeys, one_line
            if batch:
                await writer.load(batch, loaded(nkeys), one_line=one_line)
                batch, nkeys, one_line = [], 0, True

        async for chunk in link.rdb_chunks():
            floor[0] = max(snapshot_ms, self._horizon_ms(start, start_ms))
            items = parser.feed(chunk)
            with state.lock:
                st.rdb_size, st.rdb_transferred = link.rdb_size, link.rdb_transferred
                st.ingress_bytes, st.ingress_bytes_decompressed = link.wire_bytes, link.bytes_in
            horizon = self._horizon_ms(start, start_ms)
            for item in items:
                if type(item) is rdb.RdbPacked:  # keys packed by the parser, in database `db`
                    batch += item.cmds
                    nkeys += len(item.cmds)
                    if nkeys >= _LOAD_BATCH:
                        await flush()
                elif type(item) is rdb.RdbSelectDb:
                    if item.db != db:
                        await flush()
                        await writer.select(item.db)
                        db = item.db
                elif type(item) is rdb.RdbKey:
                    if item.key.startswith(BOOKKEEPING_PREFIX):
                        continue  # a syncer's own key on the source (a chain): never copied
                    if item.db != db:
                        await flush()
                        await writer.select(item.db)
                        db = item.db
                    exp = item.expire_ms
                    if exp != -1:
                        if exp <= snapshot_ms:
                            continue  # expired already when the snapshot was taken
                        if exp < horizon:
                            pending[db, item.key] = exp
                            item = dataclasses.replace(item, expire_ms=grace_ms)
                    state.loaded_any = True
                    if mode is None:
                        await flush()
                        mode = await self._probe(writer, item, parser.version, decode, dump)
                        state.update(restore_mode=mode)
                        if mode == "restore" and packs:
                            parser.packer = dump.restore_packer(
                                parser.version, BOOKKEEPING_PREFIX, floor
                            )
                        st.keys_loaded += 1
                        continue
                    if mode != "restore":
                        one_line = False
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
                    state.loaded_any = True
                    one_line = False  # FUNCTION LOAD answers with the library's name
                    batch.append([b"FUNCTION", b"LOAD", b"REPLACE", item.code])
                elif type(item) is rdb.RdbEnd:
                    if not item.checksum_ok:
                        raise ProtocolError(
                            f"{link.where}: the snapshot's CRC64 checksum does not match",
                            origin=state.at_source,
                        )
                elif type(item) is rdb.RdbModuleAux:
                    # Module-global state has no command to restore it; module keys fail loudly
                    # at RESTORE if the destination lacks the module.
                    state.update(
                        last_error=f"module aux data (module id {item.module_id}) not replicated",
                        last_error_kind=ErrorKind.UNSUPPORTED,
                    )
            await flush()
        if not parser.done:
            raise ProtocolError(
                f"{link.where}: the snapshot ended before its EOF marker", origin=state.at_source
            )
        if st.rdb_size is None:
            with state.lock:  # diskless: the size is known once the transfer has ended
                st.rdb_size = st.rdb_transferred
        await writer.select(0)
        ckpt = Checkpoint(CheckpointState.STREAMING, reply.replid, reply.offset, 0)
        await writer.commit_load(state.link_id, ckpt)
        state.ckpt = ckpt
        state.applied = reply.offset
        gap.target = state.meter.latest
        state.gap = gap
        load_s = time.monotonic() - start
        gap.grace_below = int(time.time() * 1000 + (60 + 3 * load_s) * 1000)
        link.send_ack(reply.offset)  # diskless: the master puts us online on the first ACK

    def _horizon_ms(self, start: float, start_ms: int) -> int:
        """Keys expiring before this (wall ms) get a grace expiry: the load may outlast them."""
        elapsed = time.monotonic() - start
        st = self.state.status
        done = None
        if st.rdb_size:
            done = st.rdb_transferred / st.rdb_size
        elif st.keys_expected:
            done = st.keys_loaded / st.keys_expected
        remaining = elapsed * (1 - done) / done if done and done > 0.01 else 3 * elapsed
        return start_ms + int((elapsed + 2 * remaining + 60) * 1000)

    async def _probe(self, writer: Writer, item: Any, version: int, decode: Any, dump: Any) -> str:
        """Decide once per link how keys are written: RESTORE, or decoded commands."""
        at = self.state.at_destination
        reply = await writer.probe(dump.restore_command(item.key, item, version))
        if type(reply) is not hiredis.ReplyError:
            return "restore"
        msg = str(reply)
        if "payload version" not in msg and "checksum" not in msg and "Bad data format" not in msg:
            raise classify_reply_error(msg, where="destination", command=b"RESTORE", origin=at)
        for cmd in self._decoded(decode, item):
            r = await writer.probe(cmd)
            if type(r) is hiredis.ReplyError:
                raise classify_reply_error(str(r), where="destination", command=cmd[0], origin=at)
        return "decode"

    def _decoded(self, decode: Any, item: Any) -> list[list[bytes]]:
        try:
            return list(decode.value_commands(item.key, item))
        except decode.DecodeError as exc:
            raise FatalSyncError(
                f"key {item.key[:60]!r} cannot be copied: the destination refuses this RDB "
                f"version and the value cannot be decoded into commands ({exc})",
                kind=ErrorKind.UNSUPPORTED,
                origin=self.state.at_destination,
            ) from exc
