"""The replica side of the replication protocol: one link to one primary of a source.

Handshake, as `syncWithMaster()` in Redis's replication.c does it:

1. connect (TCP or TLS), `AUTH [user] password`;
2. `REPLCONF listening-port <port>`, `REPLCONF capa eof capa psync2`;
3. `PSYNC <replid> <offset+1>` to continue, or `PSYNC ? -1` for a full sync;
4. `+FULLRESYNC <replid> <offset>` then the RDB: `$<length>` + bytes, or `$EOF:<40 bytes>` +
   bytes + the same 40 bytes (diskless); newlines before the `$` are keepalives;
   `+CONTINUE [<new replid>]` instead goes straight to the command stream.

With `dual_channel`, step 2 also announces `capa dual-channel`: a Valkey 8 source that offers it
answers a PSYNC it cannot continue with `+DUALCHANNELSYNC` instead of a snapshot, and the full
sync goes on over a second connection (dualchannel.py); its buffered command stream is then
read back through `read()` first (`replay`).

After that the link carries the command stream; we answer `REPLCONF GETACK` and send
`REPLCONF ACK <offset>` every second (the caller does, with the offset applied on the destination).

`discover_primaries()` turns a Redis Cluster URL into one URL per primary.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any, Protocol

from .errors import (
    AuthError,
    ErrorKind,
    FatalSyncError,
    Origin,
    ProtocolError,
    RetryableError,
    Side,
    SyncError,
    classify_reply_error,
)
from .gateway import GatewayOptions, InflatingReader, open_gateway
from .resp import RespConnection, TlsOptions, auth_args, connection_error, open_stream, pack
from .urls import RedisUrl

__all__ = ["PsyncReply", "Replay", "SourceLink", "discover_primaries"]

_CHUNK = 1 << 18
# A read of the command stream takes everything buffered (the stream reader pauses the socket at
# twice its 1 MiB limit): asking for less makes the reader move the rest of its buffer each time.
_STREAM_READ = 8 << 20
_EOF_MARK_LEN = 40
# A healthy master sends at least a PING every repl-ping-replica-period (10 s) and newlines while
# it prepares the RDB; silence for this long means the link is dead (Redis's repl-timeout is 60).
READ_TIMEOUT_S = 60.0
# A master PINGs its replicas every `repl-ping-replica-period` (10 s by default) and sends a
# newline every second while it prepares a snapshot: once connected, no byte for twice the
# period means the link is dead (a silent partition), not 60 s of "in sync".
DEFAULT_PING_PERIOD_S = 10.0


@dataclass(frozen=True, slots=True)
class PsyncReply:
    full: bool
    replid: str
    offset: int  # FULLRESYNC: the snapshot's offset. CONTINUE: the offset we continue after.
    # +DUALCHANNELSYNC: a full sync over a second connection; replid and offset come with it.
    dual: bool = False


class Replay(Protocol):
    """Command-stream bytes that arrived before the stream was applied (dualchannel.py)."""

    async def next(self) -> bytes | None:
        """The next buffered bytes, or None once everything was read back."""
        ...

    def close(self) -> None: ...


class SourceLink:
    """One replication connection to one primary (of the source at `source` in the engine's
    list: its errors say so)."""

    def __init__(
        self,
        url: RedisUrl,
        tls: TlsOptions | None = None,
        *,
        read_timeout: float = READ_TIMEOUT_S,
        source: int | None = None,
        gateway: GatewayOptions | None = None,
        dual_channel: bool = False,
    ) -> None:
        self.url = url
        self.tls = tls
        self.read_timeout = read_timeout
        self.origin = Origin(Side.SOURCE, url.address, source)
        self.gateway = gateway
        # Never through a gateway: it relays one connection (dual-channel needs two).
        self.dual_channel = dual_channel and gateway is None
        self.replay: Replay | None = None  # read back before the socket (dualchannel.py)
        self.bytes_in = 0  # the replication stream's bytes (inflated, through a gateway)
        self.rdb_size: int | None = None
        self.rdb_transferred = 0
        self._reader: asyncio.StreamReader | InflatingReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    @property
    def where(self) -> str:
        return self.url.address

    @property
    def wire_bytes(self) -> int:
        """Bytes read from the network: deflated ones through a gateway, else `bytes_in`."""
        if isinstance(self._reader, InflatingReader):
            return self._reader.wire_bytes
        return self.bytes_in

    async def connect(self) -> None:
        await self._open()
        period = await self._ping_period()
        self.read_timeout = min(self.read_timeout, 2 * period + 1)
        await self._expect_ok(b"REPLCONF", b"listening-port", self._local_port())
        capa = [b"capa", b"eof", b"capa", b"psync2"]
        if self.dual_channel:
            capa += [b"capa", b"dual-channel"]  # a source that does not offer it ignores it
        await self._expect_ok(b"REPLCONF", *capa)

    async def _open(self) -> None:
        """Connect and authenticate."""
        if self.gateway is not None:
            # The gateway authenticated us with the database already (gateway.py, step 2).
            self._reader, self._writer = await open_gateway(
                self.url, self.tls, self.gateway, self.origin
            )
            args = None
        else:
            self._reader, self._writer = await open_stream(self.url, self.tls, self.origin)
            args = auth_args(self.url)
        if args is not None:
            reply = await self._simple(*args)
            if reply.startswith("-"):
                raise AuthError(
                    f"{self.where}: authentication failed: {reply[1:]}", origin=self.origin
                )

    def _local_port(self) -> int:
        assert self._writer is not None
        sock_port = self._writer.get_extra_info("sockname")
        return sock_port[1] if isinstance(sock_port, tuple) else 0

    async def _ping_period(self) -> float:
        """The source's `repl-ping-replica-period` (the default when it may not be read)."""
        assert self._writer is not None
        self._writer.write(pack(b"CONFIG", b"GET", b"repl-ping-replica-period"))
        head = await self._line()
        if not head.startswith("*"):
            return DEFAULT_PING_PERIOD_S  # e.g. -NOPERM: CONFIG is not for this user
        values = [await self._line() for _ in range(2 * max(0, int(head[1:] or 0)))]
        # [$len, name, $len, value] -> the value is the fourth line
        try:
            return max(1.0, float(values[3])) if len(values) >= 4 else DEFAULT_PING_PERIOD_S
        except ValueError:
            return DEFAULT_PING_PERIOD_S

    async def psync(self, replid: str | None, offset: int) -> PsyncReply:
        """Ask to continue after `offset` of history `replid` (or for a full sync when None)."""
        if replid is None:
            reply = await self._simple(b"PSYNC", b"?", b"-1")
        else:
            reply = await self._simple(b"PSYNC", replid, offset + 1)
        if reply.startswith("+FULLRESYNC"):
            parts = reply.split()
            if len(parts) != 3 or len(parts[1]) != 40 or not parts[2].lstrip("-").isdigit():
                raise ProtocolError(f"{self.where}: malformed {reply!r}", origin=self.origin)
            return PsyncReply(True, parts[1], int(parts[2]))
        if reply.startswith("+CONTINUE"):
            parts = reply.split()
            new_id = parts[1] if len(parts) > 1 else replid
            if new_id is None or len(new_id) != 40:
                raise ProtocolError(f"{self.where}: malformed {reply!r}", origin=self.origin)
            return PsyncReply(False, new_id, offset)
        if reply == "+DUALCHANNELSYNC" and self.dual_channel:
            return PsyncReply(True, "", -1, dual=True)
        if reply.startswith("-"):
            err = classify_reply_error(
                reply[1:], where=self.where, command=b"PSYNC", origin=self.origin
            )
            if isinstance(err, FatalSyncError) and not isinstance(err, AuthError):
                # e.g. "-ERR Can't SYNC while not connected with my master": transient on the source
                raise RetryableError(str(err), kind=err.kind, origin=self.origin)
            raise err
        raise ProtocolError(
            f"{self.where}: unexpected reply to PSYNC: {reply[:80]!r}", origin=self.origin
        )

    async def rdb_chunks(self) -> AsyncIterator[bytes]:
        """The snapshot's bytes as they arrive (bounded memory), for either transfer format."""
        header = await self._line()
        if not header.startswith("$"):
            raise ProtocolError(
                f"{self.where}: expected the RDB bulk header, got {header[:80]!r}",
                origin=self.origin,
            )
        if header.startswith("$EOF:"):
            mark = header[5:].encode()
            if len(mark) != _EOF_MARK_LEN:
                raise ProtocolError(f"{self.where}: bad EOF mark in {header!r}", origin=self.origin)
            self.rdb_size = None
            async for chunk in self._until_mark(mark):
                yield chunk
            return
        try:
            remaining = int(header[1:])
        except ValueError:
            raise ProtocolError(
                f"{self.where}: bad RDB length in {header!r}", origin=self.origin
            ) from None
        self.rdb_size = remaining
        while remaining > 0:
            data = await self._read(min(remaining, _CHUNK))
            remaining -= len(data)
            self.rdb_transferred += len(data)
            yield data

    async def _until_mark(self, mark: bytes) -> AsyncIterator[bytes]:
        # Like readSyncBulkPayload(): the transfer ends when the last 40 bytes read are the mark.
        tail = b""
        while True:
            data = tail + await self._read(_CHUNK)
            if len(data) >= _EOF_MARK_LEN and data[-_EOF_MARK_LEN:] == mark:
                body = data[:-_EOF_MARK_LEN]
                self.rdb_transferred += len(body)
                if body:
                    yield body
                return
            cut = max(0, len(data) - _EOF_MARK_LEN)
            body, tail = data[:cut], data[cut:]
            self.rdb_transferred += len(body)
            if body:
                yield body

    async def read(self) -> bytes:
        """The next bytes of the command stream, all that arrived (raises RetryableError when the
        link ends): what `replay` holds first, then the socket."""
        if self.replay is not None:
            data = await self.replay.next()
            if data is not None:
                return data
            self.replay = None
        return await self._read(_STREAM_READ)

    async def read_socket(self) -> bytes:
        """The next bytes from the socket itself, past `replay` (dualchannel.py buffers them)."""
        return await self._read(_STREAM_READ)

    async def request(self, *args: bytes | int | str) -> str:
        """Send one command and return its reply line (for handshakes)."""
        return await self._simple(*args)

    def send(self, *args: bytes | int | str) -> None:
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(pack(*args))

    def send_ack(self, offset: int) -> None:
        self.send(b"REPLCONF", b"ACK", offset)

    def close(self) -> None:
        if self.replay is not None:
            self.replay.close()
            self.replay = None
        if self._writer is not None and not self._writer.is_closing():
            self._writer.close()

    # -- plumbing ------------------------------------------------------------------------------

    async def _read(self, n: int) -> bytes:
        assert self._reader is not None
        try:
            # asyncio.timeout, never wait_for: on Python 3.11 wait_for loses a cancellation that
            # arrives together with data, and the cancelled link then streams on forever.
            async with asyncio.timeout(self.read_timeout):
                data = await self._reader.read(n)
        except TimeoutError:
            raise RetryableError(
                f"{self.where}: no data for {self.read_timeout:.0f} s, link considered dead",
                kind=ErrorKind.TIMEOUT,
                origin=self.origin,
            ) from None
        except OSError as exc:
            raise self._lost(exc) from exc
        if not data:
            raise RetryableError(
                f"{self.where}: the source closed the replication link",
                kind=ErrorKind.CLOSED,
                origin=self.origin,
            )
        self.bytes_in += len(data)
        return data

    async def _line(self) -> str:
        """One reply line, skipping the bare newlines a master sends as keepalive."""
        assert self._reader is not None
        while True:
            try:
                async with asyncio.timeout(self.read_timeout):
                    raw = await self._reader.readuntil(b"\n")
            except TimeoutError:
                raise RetryableError(
                    f"{self.where}: no reply for {self.read_timeout:.0f} s",
                    kind=ErrorKind.TIMEOUT,
                    origin=self.origin,
                ) from None
            except asyncio.IncompleteReadError:
                raise RetryableError(
                    f"{self.where}: the source closed the connection",
                    kind=ErrorKind.CLOSED,
                    origin=self.origin,
                ) from None
            except asyncio.LimitOverrunError as exc:
                raise ProtocolError(
                    f"{self.where}: reply line too long", origin=self.origin
                ) from exc
            except OSError as exc:
                raise self._lost(exc) from exc
            self.bytes_in += len(raw)
            line = raw.rstrip(b"\r\n")
            if line:
                return line.decode(errors="replace")

    async def _simple(self, *args: bytes | int | str) -> str:
        assert self._writer is not None
        self._writer.write(pack(*args))
        try:
            await self._writer.drain()
        except OSError as exc:
            raise self._lost(exc) from exc
        return await self._line()

    def _lost(self, exc: OSError) -> SyncError:
        return connection_error(exc, self.where, self.origin)

    async def _expect_ok(self, *args: bytes | int | str) -> None:
        reply = await self._simple(*args)
        if reply.startswith("-"):
            raise classify_reply_error(
                reply[1:], where=self.where, command=b"REPLCONF", origin=self.origin
            )
        if not reply.startswith("+"):
            raise ProtocolError(
                f"{self.where}: unexpected reply {reply[:80]!r}", origin=self.origin
            )


def _pairs(flat: Any) -> dict[bytes, Any]:
    if isinstance(flat, dict):
        return {k if isinstance(k, bytes) else str(k).encode(): v for k, v in flat.items()}
    return {flat[i]: flat[i + 1] for i in range(0, len(flat) - 1, 2)}


async def discover_primaries(
    url: RedisUrl, tls: TlsOptions | None = None, *, source: int | None = None
) -> list[RedisUrl]:
    """One URL per primary when `url` is a Redis Cluster node, else `[url]`.

    Uses `CLUSTER SHARDS` (Redis >= 7.0) and falls back to `CLUSTER NODES`. `source` (the index
    of this source in the engine's list) goes into the errors.
    """
    if url.cluster is False:
        return [url]
    conn = await RespConnection.open(url, tls, select_db=False, side=Side.SOURCE, source=source)
    try:
        info = await conn.call(b"INFO", b"cluster")
        if b"cluster_enabled:1" not in info:
            if url.cluster:
                raise FatalSyncError(
                    f"{url.address}: cluster=yes but the server is not a cluster node",
                    kind=ErrorKind.CONFIG,
                    origin=conn.origin,
                )
            return [url]
        addresses: list[tuple[str, int]] = []
        try:
            shards = await conn.call(b"CLUSTER", b"SHARDS")
            for shard in shards:
                for node in _pairs(shard)[b"nodes"]:
                    n = _pairs(node)
                    if n.get(b"role") != b"master" or n.get(b"health") == b"fail":
                        continue
                    host = (n.get(b"endpoint") or n.get(b"ip") or b"").decode()
                    port = n.get(b"tls-port") if url.tls and n.get(b"tls-port") else n.get(b"port")
                    if port is None:
                        continue
                    if host in ("", "?"):
                        host = url.host
                    addresses.append((host, int(port)))
        except FatalSyncError:
            nodes = (await conn.call(b"CLUSTER", b"NODES")).decode()
            for line in nodes.splitlines():
                fields = line.split()
                if len(fields) < 8 or "master" not in fields[2].split(",") or "fail" in fields[2]:
                    continue
                if len(fields) < 9:
                    continue  # a primary without slots holds no data
                hostport = fields[1].split("@")[0]
                host, _, port = hostport.rpartition(":")
                addresses.append((host or url.host, int(port)))
    finally:
        await conn.aclose()
    if not addresses:
        raise RetryableError(
            f"{url.address}: the cluster reports no primaries",
            kind=ErrorKind.UNAVAILABLE,
            origin=Origin(Side.SOURCE, url.address, source),
        )
    return [replace(url, host=h, port=p, cluster=False) for h, p in sorted(set(addresses))]
