"""Writing the destination: a pipelined connection that reads every reply and stops on any error.

`Pipeline` is the mechanism (one connection, commands in flight up to a byte budget, replies
matched to batches in order, errors classified); `StandaloneWriter` applies a source's snapshot and
stream to a standalone destination. Each replication link gets its own writer (its own
connection), so several sources never serialise on a lock and each keeps its own order.

Stream batches are applied as `MULTI … EXEC` together with the checkpoint (see checkpoint.py), so
a crash at any moment leaves the destination with whole batches and a position that matches them;
batches of blind writes are pipelined and followed by the checkpoint and a PING, and their
one-line replies are checked in the received bytes, without one Python object per reply.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import hiredis

from .aio import cancel_all
from .checkpoint import CHECKPOINT_KEY, EPOCH_KEY, Checkpoint
from .errors import ErrorKind, FatalSyncError, Side, SyncError, classify_reply_error
from .resp import RespConnection, TlsOptions, pack, pack_command
from .urls import RedisUrl

__all__ = [
    "MAX_IN_FLIGHT",
    "UNTIL_EXEC",
    "UNTIL_PONG",
    "Pipeline",
    "StandaloneWriter",
    "StreamBatch",
    "Writer",
]

# Bytes sent to the destination and not yet answered, per writer (the engine lowers it when
# there are many links, so that their sum stays bounded).
MAX_IN_FLIGHT = _MAX_IN_FLIGHT = 8 << 20
# Batches from this size on are written part by part, not joined (`Pipeline.send_nowait`).
_JOIN_MAX = 1 << 20
# A MULTI … EXEC batch whose number of commands the sender does not know: inside MULTI every
# command answers +QUEUED or an error, so its replies end at the first array or nil (EXEC's).
UNTIL_EXEC = -1
# Commands whose replies are each one line (+OK, :n or an error), then a PING: the replies end
# at +PONG. The reader checks and counts them in the received bytes, with no object per reply.
UNTIL_PONG = -2
_PONG = b"+PONG\r\n"
_PING = pack(b"PING")
_NoneType = type(None)
_MULTI = pack(b"MULTI")
_EXEC = pack(b"EXEC")
_SELECT0 = pack(b"SELECT", 0)
ReplyError = hiredis.ReplyError


@dataclass(slots=True)
class _Batch:
    replies: int  # how many replies this batch produces; UNTIL_EXEC: up to its EXEC's reply
    nbytes: int
    on_done: Callable[[], None] | None = None
    on_exec: Callable[[int], None] | None = None  # UNTIL_EXEC: gets the EXEC array's length
    future: asyncio.Future[list[Any]] | None = None  # set: collect replies and do not raise
    exec_at: int = -1  # index of the EXEC reply whose array must be checked too
    cmds: Sequence[bytes] | None = None  # packed commands, one per reply: can be redirected
    seen: int = 0
    scanned: int = 0  # UNTIL_PONG read from the bytes: where the search for +PONG goes on
    holds: int = 0  # redirected commands not yet applied elsewhere: on_done waits for them
    answered: bool = False  # every reply arrived (on_done then runs when holds reach 0)
    collected: list[Any] = field(default_factory=list)


class Pipeline:
    """Commands in flight on one connection; a reader task checks every reply in order."""

    def __init__(
        self,
        conn: RespConnection,
        *,
        max_in_flight: int = _MAX_IN_FLIGHT,
        redirect: Callable[[str, bytes, Callable[[], None]], None] | None = None,
    ) -> None:
        self.conn = conn
        self.origin = conn.origin  # every error of this pipeline is about its connection
        # Called with a MOVED/ASK error, the command it answers, and a function to call once
        # the command is applied where it was sent again: the batch is done only then.
        self.redirect = redirect
        self.where = conn.url.address
        self.max_in_flight = max_in_flight
        self._batches: deque[_Batch] = deque()
        self._in_flight = 0
        self._room = asyncio.Event()
        self._room.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self.error: SyncError | None = None
        # When a batch failed: how many batches had been sent after it. The destination may have
        # applied them (a refused MULTI is discarded, the next one commits with its checkpoint),
        # so the checkpoint can then be ahead of a batch that never applied.
        self.sent_after_error = 0
        self._task = asyncio.create_task(self._read_replies(), name=f"replies {self.where}")

    def _check(self) -> None:
        if self.error is not None:
            raise self.error

    async def send(
        self,
        data: bytes | Sequence[bytes | memoryview],
        replies: int,
        *,
        on_done: Callable[[], None] | None = None,
        exec_at: int = -1,
        cmds: Sequence[bytes] | None = None,
        on_exec: Callable[[int], None] | None = None,
    ) -> None:
        """Queue `data` (packed commands) that produce `replies` replies (or `UNTIL_EXEC`: one
        `MULTI … EXEC`, whose EXEC array is checked and its length given to `on_exec`; or
        `UNTIL_PONG`: one-line replies up to a PING's, their number given to `on_exec`); waits
        for room, not for the replies: batches follow each other on the connection."""
        self.send_nowait(
            data, replies, on_done=on_done, exec_at=exec_at, cmds=cmds, on_exec=on_exec
        )
        await self.conn.drain()
        while not self._room.is_set():
            await self._wait(self._room)

    def send_nowait(
        self,
        data: bytes | Sequence[bytes | memoryview],
        replies: int,
        *,
        on_done: Callable[[], None] | None = None,
        exec_at: int = -1,
        cmds: Sequence[bytes] | None = None,
        on_exec: Callable[[int], None] | None = None,
    ) -> None:
        """Like `send` without waiting (for use in callbacks); the byte budget still counts."""
        self._check()
        if isinstance(data, bytes):
            nbytes = len(data)
            self.conn.writer.write(data)
        else:
            nbytes = sum(len(d) for d in data)
            if nbytes < _JOIN_MAX:
                self.conn.writer.writelines(data)
            else:
                # writelines joins the parts first: a 30 MB command would be copied once more.
                for d in data:
                    self.conn.writer.write(d)
        self._batches.append(_Batch(replies, nbytes, on_done, on_exec, exec_at=exec_at, cmds=cmds))
        self._in_flight += nbytes
        self._idle.clear()
        if self._in_flight >= self.max_in_flight:
            self._room.clear()

    async def call(self, data: bytes, replies: int = 1) -> list[Any]:
        """Send and return the replies themselves (errors included, not raised)."""
        self._check()
        fut: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self.conn.writer.write(data)
        self._batches.append(_Batch(replies, len(data), future=fut))
        self._in_flight += len(data)
        self._idle.clear()
        await self.conn.drain()
        await self._wait(fut)
        return fut.result()

    @property
    def idle(self) -> bool:
        """Every command sent so far has been answered."""
        return not self._batches

    async def wait_idle(self) -> None:
        """Every command sent so far has been answered without error."""
        while not self._idle.is_set():
            await self._wait(self._idle)
        self._check()

    async def _wait(self, waitable: asyncio.Event | asyncio.Future[Any]) -> None:
        waiter = asyncio.ensure_future(
            waitable.wait() if isinstance(waitable, asyncio.Event) else waitable
        )
        done, _ = await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if waiter not in done:
            waiter.cancel()
        self._check()

    async def _read_replies(self) -> None:
        """Match every reply to its batch, in order, and check it.

        Replies of `UNTIL_PONG` batches are read *directly*: searched and counted in the bytes
        as they arrive (a line that starts with `-` is an error, then parsed to be classified).
        Any other batch goes through hiredis; the reader returns to direct reading whenever
        hiredis holds no partial reply."""
        try:
            conn = self.conn
            batches = self._batches
            raw = bytearray()  # received, not given to hiredis
            direct = True  # hiredis holds nothing: new bytes go to `raw`
            while True:
                data = await conn.read_raw()
                if direct:
                    raw += data
                    self._direct(raw)
                    if not raw:
                        continue
                    if not batches:
                        raise FatalSyncError(
                            f"{self.where}: unexpected reply {bytes(raw)!r:.80}",
                            kind=ErrorKind.PROTOCOL,
                            origin=self.origin,
                        )
                    if batches[0].replies == UNTIL_PONG:
                        continue  # the rest of its replies is still coming
                    conn.parse(bytes(raw))
                    raw.clear()
                    direct = False
                else:
                    conn.parse(data)
                self._parsed(conn.replies_ready())
                direct = not conn.parser.has_data()
        except SyncError as exc:
            self.error = exc
            if exc.fatal:  # the failing batch is the first one still waiting for its replies
                self.sent_after_error = max(0, len(self._batches) - 1)
        except Exception as exc:
            self.error = FatalSyncError(
                f"{self.where}: reply reader failed: {exc!r}",
                kind=ErrorKind.INTERNAL,
                origin=self.origin,
            )
        finally:
            if self.error is None:
                self.error = FatalSyncError(
                    f"{self.where}: reply reader stopped",
                    kind=ErrorKind.INTERNAL,
                    origin=self.origin,
                )
            for b in self._batches:
                if b.future is not None and not b.future.done():
                    b.future.set_exception(self.error)
                    # Whoever waited may have been cancelled meanwhile (the link is closing):
                    # the error is the pipeline's own (`self.error`), not lost if unread.
                    b.future.exception()

    def _direct(self, raw: bytearray) -> None:
        """Take the replies of the `UNTIL_PONG` batches at the front from `raw`."""
        batches = self._batches
        while batches and batches[0].replies == UNTIL_PONG:
            b = batches[0]
            at = raw.find(_PONG, b.scanned)
            if at < 0:
                b.scanned = max(0, len(raw) - len(_PONG) + 1)
                return
            if raw.startswith(b"-") or raw.find(b"\n-", 0, at) >= 0:
                self._line_errors(bytes(raw[:at]))
            n = b.seen + raw.count(b"\r\n", 0, at)
            del raw[: at + len(_PONG)]
            self._finish(batches.popleft(), n)

    def _line_errors(self, replies: bytes) -> None:
        """Raise the first error among these one-line replies."""
        reader = hiredis.Reader()
        reader.feed(replies)
        for reply in iter(reader.gets, False):
            if type(reply) is ReplyError:
                raise classify_reply_error(str(reply), where=self.where, origin=self.origin)

    def _parsed(self, replies: list[Any]) -> None:
        """Hand parsed replies to the batches they answer, in order."""
        batches = self._batches
        i, n = 0, len(replies)
        types: list[type] | None = None
        while i < n:
            if not batches:
                raise FatalSyncError(
                    f"{self.where}: unexpected reply {replies[i]!r:.80}",
                    kind=ErrorKind.PROTOCOL,
                    origin=self.origin,
                )
            b = batches[0]
            if b.replies == UNTIL_EXEC:
                if types is None:
                    types = list(map(type, replies))
                i = self._until_exec(b, replies, types, i)
                continue
            if b.replies == UNTIL_PONG:
                try:
                    j = replies.index(b"PONG", i)
                except ValueError:
                    j = n
                chunk = replies[i:j]
                if ReplyError in map(type, chunk):
                    self._reply_errors(b, chunk)
                b.seen += j - i
                i = j + 1
                if j < n:
                    self._finish(batches.popleft(), b.seen)
                continue
            take = min(b.replies - b.seen, n - i)
            chunk = replies[i : i + take]
            i += take
            if b.future is not None:
                b.collected += chunk
            else:
                if ReplyError in map(type, chunk):
                    self._reply_errors(b, chunk)
                if b.seen <= b.exec_at < b.seen + take:
                    self._check_exec(chunk[b.exec_at - b.seen])
            b.seen += take
            if b.seen == b.replies:
                self._finish(batches.popleft())

    def _until_exec(self, b: _Batch, replies: list[Any], types: list[type], i: int) -> int:
        """Consume the replies of an UNTIL_EXEC batch from `i`; where the next batch starts."""
        n = len(replies)
        try:
            j = types.index(list, i)
        except ValueError:
            j = n
        head = types[i:j]
        if ReplyError in head or _NoneType in head:
            # A refused command (EXEC then answers EXECABORT) or EXEC's nil: the first says why.
            k = next(k for k in range(i, j) if types[k] is ReplyError or types[k] is _NoneType)
            if types[k] is ReplyError:
                raise classify_reply_error(str(replies[k]), where=self.where, origin=self.origin)
            self._check_exec(None)
        if j == n:
            b.seen += n - i
            return n
        self._check_exec(replies[j])
        b.seen += j + 1 - i
        self._finish(self._batches.popleft(), len(replies[j]))
        return j + 1

    def _reply_errors(self, b: _Batch, chunk: list[Any]) -> None:
        """Redirect MOVED/ASK (cluster) and raise on any other error reply."""
        for j, reply in enumerate(chunk):
            if type(reply) is not ReplyError:
                continue
            msg = str(reply)
            if (
                self.redirect is not None
                and b.cmds is not None
                and msg.startswith(("MOVED ", "ASK "))
            ):
                b.holds += 1
                self.redirect(msg, b.cmds[b.seen + j], functools.partial(self._release, b))
            else:
                raise classify_reply_error(msg, where=self.where, origin=self.origin)

    def _release(self, b: _Batch) -> None:
        """A command of `b` that was redirected is applied where it was sent again."""
        b.holds -= 1
        if b.holds == 0 and b.answered and b.on_done is not None:
            b.on_done()

    def _finish(self, b: _Batch, exec_len: int = 0) -> None:
        self._in_flight -= b.nbytes
        b.answered = True
        if b.on_done is not None and b.holds == 0:
            b.on_done()
        if b.on_exec is not None:
            b.on_exec(exec_len)
        if b.future is not None and not b.future.done():
            b.future.set_result(b.collected)
        if self._in_flight < self.max_in_flight // 2:
            self._room.set()
        if not self._batches:
            self._idle.set()

    def _check_exec(self, reply: Any) -> None:
        if reply is None:
            raise FatalSyncError(
                f"{self.where}: transaction aborted (EXEC returned nil)", origin=self.origin
            )
        if type(reply) is list and ReplyError in map(type, reply):
            first = next(r for r in reply if type(r) is ReplyError)
            raise classify_reply_error(str(first), where=self.where, origin=self.origin)

    async def aclose(self) -> None:
        await cancel_all([self._task])
        await self.conn.aclose()


# A command to load: its arguments, or already packed (`dump.restore_packed`), which only a
# writer without `needs_args` is given.
Command = list[bytes] | bytes


@dataclass(frozen=True, slots=True)
class StreamBatch:
    """One batch of a link's command stream, and the checkpoint the destination holds after it.

    stream.py builds one per read from the source, or per source transaction when one spans
    several reads (an object per batch, nothing per command).
    `runs`: the batch's bytes as they came from the source (with our expiry rewrites), which a
    writer without `needs_args` forwards. `cmds`: the same commands parsed, `ncmds` of them,
    which a writer with `needs_args` routes; the others ignore them (they may be missing) and
    count the applied commands from the destination's reply. `on_applied` gets that count once
    the destination holds the batch and `ckpt`; `blind`: `runs` holds only blind writes and
    may go without MULTI (checkpoint.py)."""

    runs: Sequence[bytes | memoryview]
    cmds: list[list[bytes]]
    ncmds: int
    link_id: str
    ckpt: Checkpoint
    on_applied: Callable[[int], None]
    blind: bool = False


class Writer(Protocol):
    """What a replication link needs from its destination (standalone or cluster)."""

    needs_args: bool  # True: stream batches need parsed commands (routing); False: raw bytes do

    async def open(self) -> None: ...
    async def aclose(self) -> None: ...
    async def read_checkpoints(self) -> dict[str, Checkpoint]: ...
    def epoch_keys(self) -> list[bytes]: ...  # one epoch marker per primary (checkpoint.py)
    async def flushall(self) -> None: ...
    async def probe(self, cmd: Sequence[bytes]) -> Any: ...
    # one_line: every command answers with one line (+OK, :n or an error), e.g. RESTORE.
    async def load(
        self, cmds: list[Command], on_done: Callable[[], None] | None, *, one_line: bool = False
    ) -> None: ...
    async def select(self, db: int) -> None: ...
    async def commit_load(self, link_id: str, ckpt: Checkpoint) -> None: ...
    async def apply_stream(self, batch: StreamBatch) -> None: ...
    async def wait_idle(self) -> None: ...
    def sent_after_error(self) -> int: ...  # Pipeline.sent_after_error, over its pipelines


async def read_checkpoint_hash(conn_call: Callable[..., Any]) -> dict[str, Checkpoint]:
    raw = await conn_call(b"HGETALL", CHECKPOINT_KEY)
    pairs = raw.items() if isinstance(raw, dict) else zip(raw[::2], raw[1::2], strict=True)
    out: dict[str, Checkpoint] = {}
    for k, v in pairs:
        ckpt = Checkpoint.decode(v)
        if ckpt is not None:
            out[k.decode()] = ckpt
    return out


class StandaloneWriter:
    """Standalone destination: one pipelined connection, SELECT tracked, stream bytes forwarded.

    `source` is the index of the source whose link writes through it (None for the engine's
    own connection), for its errors."""

    needs_args = False

    def __init__(
        self,
        url: RedisUrl,
        tls: TlsOptions | None = None,
        *,
        max_in_flight: int = _MAX_IN_FLIGHT,
        source: int | None = None,
    ) -> None:
        self.url = url
        self.tls = tls
        self.max_in_flight = max_in_flight
        self.source = source
        self.db = 0
        self._pipe: Pipeline | None = None

    @property
    def pipe(self) -> Pipeline:
        assert self._pipe is not None, "writer not open"
        return self._pipe

    async def open(self) -> None:
        conn = await RespConnection.open(
            self.url, self.tls, select_db=False, side=Side.DESTINATION, source=self.source
        )
        self._pipe = Pipeline(conn, max_in_flight=self.max_in_flight)
        self.db = 0

    async def aclose(self) -> None:
        if self._pipe is not None:
            await self._pipe.aclose()
            self._pipe = None

    async def _call(self, *args: bytes | int) -> Any:
        (reply,) = await self.pipe.call(pack(*args))
        if type(reply) is ReplyError:
            raise classify_reply_error(
                str(reply),
                where=self.pipe.where,
                command=bytes(args[0]) if isinstance(args[0], bytes) else None,
                origin=self.pipe.origin,
            )
        return reply

    async def read_checkpoints(self) -> dict[str, Checkpoint]:
        await self.select(0)
        return await read_checkpoint_hash(self._call)

    def epoch_keys(self) -> list[bytes]:
        return [EPOCH_KEY]

    async def flushall(self) -> None:
        await self._call(b"FLUSHALL")

    async def probe(self, cmd: Sequence[bytes]) -> Any:
        await self.pipe.wait_idle()
        (reply,) = await self.pipe.call(pack(*cmd))
        return reply

    async def select(self, db: int) -> None:
        if db != self.db:
            await self.pipe.send(pack(b"SELECT", db), 1)
            self.db = db

    async def load(
        self, cmds: list[Command], on_done: Callable[[], None] | None, *, one_line: bool = False
    ) -> None:
        """Send commands of the snapshot. With `one_line` (RESTOREs: +OK or an error each) their
        replies are checked in the received bytes up to a PING's (`UNTIL_PONG`), with no Python
        object per reply."""
        packcmd = pack_command
        packed = [c if type(c) is bytes else packcmd(tuple(c)) for c in cmds]
        if one_line:
            packed.append(_PING)
            await self.pipe.send(packed, UNTIL_PONG, on_done=on_done)
        else:
            await self.pipe.send(packed, len(cmds), on_done=on_done)

    async def commit_load(self, link_id: str, ckpt: Checkpoint) -> None:
        """Record a checkpoint after everything before it was acknowledged."""
        await self.pipe.wait_idle()
        await self.select(0)
        await self.pipe.send(pack(b"HSET", CHECKPOINT_KEY, link_id, ckpt.encode()), 1)
        await self.select(ckpt.db)
        await self.pipe.wait_idle()

    async def apply_stream(self, batch: StreamBatch) -> None:
        """Send one batch and return without waiting for its replies: `on_applied` runs, with
        the number of commands of `runs` (counted by the destination: `ncmds` is not needed),
        when the batch is applied. Batches apply in order on this one connection; if it breaks,
        the checkpoint in the destination says which of them did: each is all or nothing
        (`MULTI … EXEC`), or, with `blind` (`runs` holds only blind writes, checkpoint.py), a
        pipeline followed by its checkpoint, which is applied again from its start when it
        was cut before its checkpoint."""
        ckpt, blind, on_done = batch.ckpt, batch.blind, batch.on_applied
        # The forwarded bytes may contain SELECTs; ckpt.db is where the stream is at the end.
        parts: list[bytes | memoryview] = [] if blind else [_MULTI]
        parts += batch.runs
        tail = pack(b"HSET", CHECKPOINT_KEY, batch.link_id, ckpt.encode())
        if ckpt.db != 0:
            parts += [_SELECT0, tail, pack(b"SELECT", ckpt.db)]
            ours = 3
        else:
            parts.append(tail)
            ours = 1
        self.db = ckpt.db

        def applied(n: int) -> None:
            on_done(n - ours)

        if blind:
            parts.append(_PING)
            await self.pipe.send(parts, UNTIL_PONG, on_exec=applied)
        else:
            parts.append(_EXEC)
            await self.pipe.send(parts, UNTIL_EXEC, on_exec=applied)

    async def wait_idle(self) -> None:
        await self.pipe.wait_idle()

    def sent_after_error(self) -> int:
        return self._pipe.sent_after_error if self._pipe is not None else 0
