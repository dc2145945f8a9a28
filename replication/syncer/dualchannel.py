"""Dual-channel full sync (Valkey 8's `dual-channel-replication-enabled yes`): the snapshot on a
second connection, the command stream buffered here, so that the source keeps no growing replica
output buffer while a long full sync loads.

In the classic handshake the source holds every write made during the load in its output buffer
for us, until the snapshot has been read (and drops us at `client-output-buffer-limit replica`:
"Replica Of repeatedly fails"). With dual channel, as Valkey's own replica does it
(`replication.c`: `dualChannelFullSyncWithPrimary`, `dualChannelSetupMainConnForPsync`):

1. main connection: `REPLCONF capa eof capa psync2 capa dual-channel`, then a PSYNC the source
   cannot continue is answered `+DUALCHANNELSYNC` instead of `+FULLRESYNC` (source.py). A source
   that does not offer it (Redis, Valkey < 8, the option off, `repl-diskless-sync no`) ignores the
   capability and answers as always: the classic handshake runs.
2. rdb connection: AUTH, `REPLCONF capa eof rdb-only 1 rdb-channel 1 listening-port <port>`, `SYNC`.
   The source answers `$ENDOFF:<offset> <replid> <dbid> <client id>` (newlines before it are
   keepalives while it waits to fork), forks and writes the snapshot (`$EOF:<mark>` … `<mark>`)
   on this connection, then closes it. The snapshot holds the data up to `<offset>`.
3. main connection: `REPLCONF set-rdb-client-id <client id>` (the source keeps its backlog from
   `<offset>` for us until then), `PSYNC <replid> <offset+1>` → `+CONTINUE`, and the command
   stream from `<offset+1>` on flows at once, while the snapshot loads.
4. We read that stream all along into a `StreamBuffer` (memory up to a bound, then a spill file
   in the job's private directory, then, past the spill bound, we stop reading and the source
   buffers the rest as in the classic handshake). The snapshot loads into the destination under
   its `loading` checkpoint and ends with the `streaming` checkpoint at `<offset>`
   (fullsync.py), and the first `REPLCONF ACK` tells the source that we are online.
5. The stream is applied as any stream is (stream.py): `SourceLink.read()` hands back the
   buffered bytes first, in order, then the socket's; each batch commits its checkpoint, so the
   position is `<offset>` plus what was applied, and a crash or a cut during the replay resumes
   from there exactly once (partial resync, the source's backlog permitting). The buffer keeps
   reading the socket until the replay has caught up with it.

If the main connection drops while the snapshot loads, the load goes on: what was buffered is
applied, then the link reconnects and continues by PSYNC from there. If the rdb connection drops,
the load is incomplete: the round restarts (link.py, "the link dropped while loading the
snapshot"). A source that says `+DUALCHANNELSYNC` but then refuses the rdb connection
(`DualChannelRefused`) is synced with the classic handshake instead, said in the events.

Through a sync gateway the classic handshake always runs: the gateway relays one connection.
Redis 8's own rdb channel is not spoken here (no Redis 8 server to test it against).
"""

from __future__ import annotations

import asyncio
import collections
import os
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import IO

from .errors import (
    AuthError,
    ErrorKind,
    FatalSyncError,
    ProtocolError,
    RetryableError,
    SyncError,
    classify_reply_error,
)
from .source import PsyncReply, SourceLink

__all__ = [
    "BufferedStream",
    "DualChannelConfig",
    "DualChannelRefused",
    "RdbChannel",
    "StreamBuffer",
    "open_dual_channel",
]

# Per link, memory the buffered stream may take before it spills to a file.
MEMORY_LIMIT = 32 << 20
# The spill file's bound: past it we stop reading and the source buffers (its own limit applies).
SPILL_LIMIT = 16 << 30
# The replay hands back at most this much per read (one stream batch).
_REPLAY_READ = 4 << 20
# While the snapshot loads, the buffer reads the main connection again this long after a read
# that took less than `_GATHER_BELOW`: a few reads per second instead of one per packet (the
# loader needs the CPU; the kernel holds the bytes meanwhile, not the source).
_GATHER_S = 0.01
_GATHER_BELOW = 1 << 20
_REPORT_EVERY_S = 0.1
_REPLID_LEN = 40


@dataclass(frozen=True, slots=True)
class DualChannelConfig:
    """How a link buffers the command stream during a dual-channel full sync."""

    memory_limit: int = MEMORY_LIMIT
    spill_limit: int = SPILL_LIMIT
    spill_dir: str | None = None  # None: the system's temporary directory


class DualChannelRefused(RetryableError):
    """The source offered dual channel but refused the rdb connection: sync the classic way."""

    default_kind = ErrorKind.COMMAND


@dataclass(frozen=True, slots=True)
class EndOffset:
    """`$ENDOFF`: the snapshot that follows on the rdb connection is at `offset` of `replid`."""

    offset: int
    replid: str
    db: int
    client_id: int


def parse_endoff(line: str) -> EndOffset | None:
    """`$ENDOFF:<offset> <replid> <dbid> <client id>` (None when `line` is not that)."""
    if not line.startswith("$ENDOFF:"):
        return None
    parts = line[len("$ENDOFF:") :].split()
    if len(parts) != 4 or len(parts[1]) != _REPLID_LEN:
        return None
    try:
        return EndOffset(int(parts[0]), parts[1], int(parts[2]), int(parts[3]))
    except ValueError:
        return None


class StreamBuffer:
    """Bytes in arrival order: in memory up to `memory_limit`, then in a spill file (an unlinked
    temporary file in `spill_dir`, readable by nobody else, gone when closed or when the process
    dies) up to `spill_limit`. While the file holds unread bytes every new byte goes to it too, so
    that `pop()` returns everything in the order `append()` got it."""

    def __init__(
        self, memory_limit: int, spill_limit: int = SPILL_LIMIT, spill_dir: str | None = None
    ) -> None:
        self.memory_limit = memory_limit
        self.spill_limit = spill_limit
        self.spill_dir = spill_dir
        self._chunks: collections.deque[bytes] = collections.deque()
        self._memory = 0
        self._file: IO[bytes] | None = None
        self._read_at = 0  # the spill file's unread bytes are [_read_at, _write_at)
        self._write_at = 0
        self.appended = 0  # bytes ever appended
        self.spilled = 0  # bytes ever written to the spill file
        self.peak = 0  # most bytes held at once (memory and file)

    @property
    def held(self) -> int:
        return self._memory + self._write_at - self._read_at

    @property
    def full(self) -> bool:
        """No room for more: the spill file reached its bound."""
        return self._write_at >= self.spill_limit

    def append(self, data: bytes) -> None:
        if not data:
            return
        self.appended += len(data)
        if self._write_at == self._read_at and self._memory + len(data) <= self.memory_limit:
            self._chunks.append(data)
            self._memory += len(data)
        else:
            if self._file is None:
                # Closed by close(); unlinked at once, so never left behind.
                self._file = tempfile.TemporaryFile(prefix="stream-", dir=self.spill_dir)  # noqa: SIM115
            os.pwrite(self._file.fileno(), data, self._write_at)
            self._write_at += len(data)
            self.spilled += len(data)
        self.peak = max(self.peak, self.held)

    def pop(self, limit: int = _REPLAY_READ) -> bytes:
        """The oldest bytes held, about `limit` of them (b"" when empty)."""
        if self._chunks:
            out = [self._chunks.popleft()]
            size = len(out[0])
            while self._chunks and size + len(self._chunks[0]) <= limit:
                chunk = self._chunks.popleft()
                out.append(chunk)
                size += len(chunk)
            self._memory -= size
            return out[0] if len(out) == 1 else b"".join(out)
        if self._read_at == self._write_at:
            return b""
        assert self._file is not None
        n = min(limit, self._write_at - self._read_at)
        data = os.pread(self._file.fileno(), n, self._read_at)
        if len(data) != n:
            raise OSError(f"spill file: read {len(data)} of {n} bytes")
        self._read_at += n
        if self._read_at == self._write_at:  # drained: new bytes go to memory again
            self._read_at = self._write_at = 0
            self._file.truncate(0)
        return data

    def close(self) -> None:
        self._chunks.clear()
        self._memory = 0
        if self._file is not None:
            self._file.close()
            self._file = None
        self._read_at = self._write_at = 0


class BufferedStream:
    """The main connection's command stream during a dual-channel full sync: a task reads the
    socket into a `StreamBuffer` from the `+CONTINUE` on; `next()` (through `SourceLink.read()`,
    its `replay`) hands the bytes back in order. When the buffer is empty the task is stopped
    between two reads (an asyncio stream read that is cancelled while it waits has taken nothing)
    and the link reads its socket directly from then on. An error of the socket (the link
    dropped) is raised by `next()` after every byte buffered before it."""

    def __init__(
        self,
        link: SourceLink,
        buffer: StreamBuffer,
        report: Callable[[StreamBuffer], None] | None = None,
    ) -> None:
        self.link = link
        self.buffer = buffer
        self.report = report  # called with the buffer after it changed
        self.error: SyncError | None = None
        self.stalled = False  # the spill bound was reached: the source buffers the rest
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._pump(), name=f"stream buffer {self.link.where}")

    async def _pump(self) -> None:
        reported = 0.0
        try:
            while not self.buffer.full:
                data = await self.link.read_socket()
                self.buffer.append(data)
                now = time.monotonic()
                if self.report is not None and (
                    now - reported >= _REPORT_EVERY_S or self.buffer.full
                ):
                    self.report(self.buffer)
                    reported = now
                if len(data) < _GATHER_BELOW:
                    await asyncio.sleep(_GATHER_S)
            self.stalled = True
        except SyncError as exc:
            self.error = exc
        except OSError as exc:  # the spill file: stop buffering, the source holds the rest
            self.error = RetryableError(
                f"the buffered command stream cannot be written: {exc}", kind=ErrorKind.INTERNAL
            )

    async def next(self) -> bytes | None:
        data = self.buffer.pop()
        if data:
            return data
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            # asyncio.wait, not `await task`: a cancellation of the caller must stay its own.
            await asyncio.wait([task])
            data = self.buffer.pop()  # what the task appended before it stopped
            if data:
                return data
        self._task = None
        if self.report is not None:
            self.report(self.buffer)
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        self.buffer.close()
        return None

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self.buffer.close()


class RdbChannel(SourceLink):
    """The second connection of a dual-channel full sync: it carries the snapshot only. It stands
    for the link while the snapshot loads (fullsync.py reads `rdb_chunks()` and its counters);
    its `send_ack` goes to the main connection."""

    def __init__(self, main: SourceLink) -> None:
        origin = main.origin
        super().__init__(main.url, main.tls, read_timeout=main.read_timeout, source=origin.source)
        self.main = main

    async def start(self) -> EndOffset:
        """Handshake and `SYNC`, up to the `$ENDOFF` line (the snapshot follows)."""
        await self._open()
        port = self._local_port()
        reply = await self._simple(
            b"REPLCONF", b"capa", b"eof", b"rdb-only", b"1", b"rdb-channel", b"1",
            b"listening-port", port,
        )  # fmt: skip
        if not reply.startswith("+"):
            raise self._refused(b"REPLCONF", reply)
        line = await self._simple(b"SYNC")
        end = parse_endoff(line)
        if end is None:
            raise self._refused(b"SYNC", line)
        return end

    def _refused(self, command: bytes, reply: str) -> SyncError:
        if not reply.startswith("-"):
            return ProtocolError(
                f"{self.where}: unexpected reply to {command.decode()} on the rdb connection: "
                f"{reply[:80]!r}",
                origin=self.origin,
            )
        err = classify_reply_error(reply[1:], where=self.where, command=command, origin=self.origin)
        # Bad credentials, or busy for now (LOADING…): as on the main connection. A NOPERM here
        # is a user that may PSYNC but not SYNC, and any other refusal a source that cannot do
        # it after all: the classic handshake can still work.
        if not reply.startswith("-NOPERM") and (
            isinstance(err, AuthError) or not isinstance(err, FatalSyncError)
        ):
            return err
        return DualChannelRefused(
            f"{self.where}: the rdb connection was refused ({reply[1:80]})", origin=self.origin
        )

    async def rdb_chunks(self) -> AsyncIterator[bytes]:
        async for chunk in super().rdb_chunks():
            yield chunk
            # A read of bytes that arrived already does not yield to the event loop: without
            # this the load could keep the buffer from reading the main connection for long
            # stretches, and the source would hold the stream meanwhile after all.
            await asyncio.sleep(0)

    def send_ack(self, offset: int) -> None:
        self.main.send_ack(offset)


async def open_dual_channel(
    main: SourceLink,
    config: DualChannelConfig,
    report: Callable[[StreamBuffer], None] | None = None,
) -> tuple[RdbChannel, PsyncReply, BufferedStream]:
    """Steps 2 and 3 of the module doc, after the main connection got `+DUALCHANNELSYNC`: the
    rdb connection (its snapshot is next), the reply the load starts from (the snapshot's
    offset and history), and the buffer that now reads the main connection (its `replay`)."""
    rdb = RdbChannel(main)
    try:
        end = await rdb.start()
        reply = await main.request(b"REPLCONF", b"set-rdb-client-id", end.client_id)
        if not reply.startswith("+"):
            raise ProtocolError(
                f"{main.where}: the source no longer knows the rdb connection "
                f"(set-rdb-client-id answered {reply[:80]!r})",
                origin=main.origin,
            )
        psync = await main.psync(end.replid, end.offset)
        if psync.full:
            raise ProtocolError(
                f"{main.where}: the source would not stream from the snapshot's end offset "
                f"{end.offset}",
                origin=main.origin,
            )
    except BaseException:
        rdb.close()
        raise
    buffered = BufferedStream(
        main, StreamBuffer(config.memory_limit, config.spill_limit, config.spill_dir), report
    )
    main.replay = buffered
    buffered.start()
    return rdb, PsyncReply(True, psync.replid, end.offset), buffered
