"""The sync gateway: a database's replication stream, compressed, for syncers of other clusters.

A source entry with compression on does not connect to the database's port: its syncer connects
to the sync gateway of the source's host, which opens the replication connection to the database
on that host and relays it, the database's side deflated (DESIGN §2-§3). Redis Enterprise uses
zlib level 6; the level is the syncer's to ask (1-9).

Protocol, version 2 (the gateway also serves version 1), on one TCP (or TLS) connection:

1. The syncer sends one RESP command, uncompressed:
   `SYNCGATEWAY <version> <database port> <zlib level> <user> <password>` (user may be empty:
   `AUTH password`). The database is named by its port on the gateway's host.
2. The gateway refuses a port outside its databases' range (`-ERR`), connects to the database,
   and authenticates there with the user and password the syncer gave: the database itself
   checks the internal password, the gateway keeps no secret of its own. It answers the
   database's refusal (`-WRONGPASS …`) and closes, `-UNAVAILABLE <why>` when it serves its
   limit of sessions already (`GatewayConfig.max_sessions`: the syncer retries later), or
   `+OK zlib <level>`.
3. Then the connection is a relay: what the syncer sends (REPLCONF, PSYNC with its replication
   id and offset, REPLCONF ACK) reaches the database as it is; what the database sends
   (+FULLRESYNC/+CONTINUE, the RDB, the command stream) comes back deflated, flushed
   (`Z_SYNC_FLUSH`) after every read from the database: every byte the database sent is
   decodable as soon as its deflated form arrives, so compression adds CPU time, never waiting
   for more data (the streaming lag stays bounded).
   Version 2: a full sync's RDB is rewritten on its way (rdbrewrite.py: the source's LZF strings
   raw, so that zlib sees text rather than LZF output; its own CRC64), sent in the EOF-marked
   form, and the zlib stream ends right after the RDB's EOF mark and a new one begins: the
   syncer's reader never returns bytes of both streams in one read. Version 1: the bytes pass
   unchanged, one zlib stream.

`open_gateway()` is the syncer's side: it returns a reader that inflates (`InflatingReader`, with
the bytes on the wire counted apart from the bytes inflated) that source.py reads like a socket.
`Gateway` is the server (gatewayd.py runs it: `python -m replication.syncer.gatewayd`; the
console's `manage.py sync_gateway`, which `make run` starts, does the same with its settings).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import ssl
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import hiredis
from zlib_ng import zlib_ng

from .errors import (
    AuthError,
    ErrorKind,
    FatalSyncError,
    Origin,
    ProtocolError,
    RetryableError,
    classify_reply_error,
)
from .rdb import RdbError
from .rdbrewrite import BOUNDARY, StreamRewriter
from .resp import TlsOptions, open_stream, pack
from .urls import RedisUrl

__all__ = [
    "DEFAULT_GATEWAY_PORT",
    "DEFAULT_MAX_SESSIONS",
    "VERSION",
    "Deflater",
    "Gateway",
    "GatewayConfig",
    "GatewayOptions",
    "GatewayUnreachable",
    "Hello",
    "Inflater",
    "InflatingReader",
    "TlsPair",
    "database_ssl_context",
    "deflate_chunk",
    "open_gateway",
    "parse_hello",
    "serve",
    "server_ssl_context",
]

DEFAULT_GATEWAY_PORT = 9443
VERSION = 2
VERSIONS = (1, 2)
DEFAULT_MAX_SESSIONS = 64
# Connections beyond the session limit that still get their refusal in words (a handshake each);
# past these, a connection is closed at once: a flood costs an accept and a close.
_REFUSING_MAX = 16
COMMAND = b"SYNCGATEWAY"
_HELLO_MAX = 4096  # a hello line longer than this is not one
_HELLO_TIMEOUT_S = 10.0
_CHUNK = 1 << 18  # one read from the database: one flushed batch
# Chunks this large are deflated in a thread: zlib releases the GIL, so the gateway's event loop
# keeps relaying the other sessions (and their ACKs) meanwhile.
_OFFLOAD = 1 << 15
_INFLATE_MAX = 8 << 20  # inflated bytes per step: a small deflated input cannot blow memory up
_UPSTREAM_CHUNK = 1 << 16

log = logging.getLogger("replication.syncer.gateway")


# -- framing ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    """The syncer's first command (step 1). `__repr__` hides the password."""

    port: int
    level: int
    user: str
    password: str = field(repr=False)
    version: int = VERSION

    def pack(self) -> bytes:
        return pack(COMMAND, self.version, self.port, self.level, self.user, self.password)


def parse_hello(args: Sequence[bytes]) -> Hello:
    """The hello from its RESP arguments; ValueError says what is wrong (never the password)."""
    if not args or args[0].upper() != COMMAND:
        raise ValueError("not a sync gateway hello")
    if len(args) != 6:
        raise ValueError(f"a hello has 6 arguments, got {len(args)}")
    _, version, port, level, user, password = args
    if version not in [str(v).encode() for v in VERSIONS]:
        speaks = " and ".join(map(str, VERSIONS))
        raise ValueError(
            f"unsupported protocol version {version[:8]!r} (this gateway speaks {speaks})"
        )
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError("the database port is not a port number")
    if not level.isdigit() or not 1 <= int(level) <= 9:
        raise ValueError("the zlib level must be 1 to 9")
    try:
        return Hello(int(port), int(level), user.decode(), password.decode(), int(version))
    except UnicodeDecodeError:
        raise ValueError("the user or password is not UTF-8") from None


def deflate_chunk(comp: zlib._Compress, data: bytes) -> bytes:
    """`data` deflated and flushed (Z_SYNC_FLUSH): the receiver can inflate all of it now."""
    return comp.compress(data) + comp.flush(zlib.Z_SYNC_FLUSH)


class Deflater:
    """The sending end: zlib streams at one level, each batch flushed; `BOUNDARY` in a batch's
    parts ends the stream there and begins the next one (version 2, after the RDB).

    Deflating is nearly all of the gateway's CPU time; zlib-ng writes the same format (any zlib
    inflates it) at the same level about 30% faster than zlib (measured on the text workload's
    rewritten snapshot: 1.17 s instead of 1.67 s for 52 MB, 0.5% smaller)."""

    def __init__(self, level: int) -> None:
        self.level = level
        self._z = zlib_ng.compressobj(level)

    def deflate(self, parts: Sequence[bytes | None]) -> bytes:
        out = []
        for part in parts:
            if part is BOUNDARY:
                out.append(self._z.flush(zlib_ng.Z_FINISH))
                self._z = zlib_ng.compressobj(self.level)
            elif part:
                out.append(self._z.compress(part))
        out.append(self._z.flush(zlib_ng.Z_SYNC_FLUSH))
        return b"".join(out)


class Inflater:
    """The receiving end of the zlib streams, in bounded steps. `ended` says that the last step
    reached the end of a stream (what follows is the next one)."""

    def __init__(self) -> None:
        self._z = zlib.decompressobj()
        self._pending = b""  # deflated input not inflated yet (it held more than one step)
        self.ended = False

    @property
    def pending(self) -> bool:
        return bool(self._pending)

    def feed(self, data: bytes) -> bytes:
        """Inflate `data` (plus what an earlier step left), at most `_INFLATE_MAX` bytes of it."""
        src = self._pending + data if self._pending else data
        try:
            out = self._z.decompress(src, _INFLATE_MAX)
        except zlib.error as exc:
            raise ValueError(f"corrupt compressed stream: {exc}") from None
        self.ended = self._z.eof
        if self.ended:
            self._pending = self._z.unused_data
            self._z = zlib.decompressobj()
        else:
            self._pending = self._z.unconsumed_tail
        return out


class InflatingReader:
    """What source.py reads the replication stream from, like an `asyncio.StreamReader`
    (`read`, `readuntil`, with the same exceptions), inflating the raw reader's bytes on demand:
    nothing is read from the socket before it is asked for, so the socket's flow control holds.
    A `read()` stops at the end of a zlib stream: the bytes before it and after it never come
    back in one read (source.py sees the RDB's EOF mark as the end of a read)."""

    def __init__(
        self, raw: asyncio.StreamReader, *, limit: int = 1 << 20, origin: Origin | None = None
    ) -> None:
        self.raw = raw
        self.origin = origin
        self.limit = limit
        self.wire_bytes = 0  # deflated bytes read from the network
        self._inflater = Inflater()
        self._buf = bytearray()
        self._ends: list[int] = []  # offsets in _buf where a zlib stream ended (all > 0)

    def _consumed(self, n: int) -> None:
        del self._buf[:n]
        if self._ends:
            self._ends = [e - n for e in self._ends if e > n]

    async def _fill(self) -> bool:
        """More inflated bytes in the buffer; False at the end of the stream."""
        while True:
            if self._inflater.pending:
                data = b""
            else:
                data = await self.raw.read(_CHUNK)
                if not data:
                    return False
                self.wire_bytes += len(data)
            try:
                out = self._inflater.feed(data)
            except ValueError as exc:
                raise ProtocolError(f"sync gateway: {exc}", origin=self.origin) from None
            if out:
                self._buf += out
            if self._inflater.ended and self._buf and self._buf_end() != len(self._buf):
                self._ends.append(len(self._buf))
            if out:
                return True

    def _buf_end(self) -> int:
        return self._ends[-1] if self._ends else 0

    async def read(self, n: int = -1) -> bytes:
        if not self._buf and not await self._fill():
            return b""
        size = self._ends[0] if self._ends else len(self._buf)
        if 0 <= n < size:
            size = n
        data = bytes(self._buf[:size])
        self._consumed(size)
        return data

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        start = 0
        while True:
            at = self._buf.find(separator, start)
            if at >= 0:
                end = at + len(separator)
                data = bytes(self._buf[:end])
                self._consumed(end)
                return data
            if len(self._buf) > self.limit:
                raise asyncio.LimitOverrunError("separator not found within the limit", 0)
            start = max(0, len(self._buf) - len(separator) + 1)
            if not await self._fill():
                partial = bytes(self._buf)
                self._consumed(len(partial))
                raise asyncio.IncompleteReadError(partial, None)


# -- the syncer's side -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GatewayOptions:
    """A source read through the gateway of its host: its port there and the zlib level."""

    port: int = DEFAULT_GATEWAY_PORT
    level: int = 6


class GatewayUnreachable(RetryableError):
    """Nothing listens at the gateway's address (the link decides whether that is fatal: a
    gateway never reached is a configuration to fix, one that was there is restarting)."""

    default_kind = ErrorKind.REFUSED


async def open_gateway(
    url: RedisUrl,
    tls: TlsOptions | None,
    options: GatewayOptions,
    origin: Origin | None = None,
) -> tuple[InflatingReader, asyncio.StreamWriter]:
    """Connect to the gateway of `url`'s host and ask for the database at `url`'s port; TLS when
    the URL is rediss:// (the gateway presents the source cluster's proxy certificate)."""
    if url.password is None:
        raise FatalSyncError(
            f"{url.address}: compression goes through the source cluster's sync gateway, which "
            "needs the database's password in the source URL",
            kind=ErrorKind.CONFIG,
            origin=origin,
        )
    gw = RedisUrl(
        host=url.host,
        port=options.port,
        tls=url.tls,
        sni=url.sni,
        connect_timeout=url.connect_timeout,
    )
    where = f"the sync gateway at {gw.address}"
    try:
        reader, writer = await open_stream(gw, tls, origin)
    except RetryableError as exc:
        if exc.kind is not ErrorKind.REFUSED:
            raise
        raise GatewayUnreachable(
            f"{url.address}: compression is on, but no sync gateway answers at {gw.address} "
            f"({exc}). Start the source cluster's sync gateway, set this source's gateway port "
            "if it is not the default, or turn compression off (nothing is ever sent "
            "uncompressed instead)",
            origin=origin,
        ) from exc
    try:
        hello = Hello(url.port, options.level, url.username or "", url.password)
        writer.write(hello.pack())
        async with asyncio.timeout(_HELLO_TIMEOUT_S):
            line = await reader.readuntil(b"\n")
    except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
        writer.close()
        # Something listens there but does not answer a hello like a gateway.
        raise FatalSyncError(
            f"{url.address}: {where} does not answer like a sync gateway (compression is on: "
            "check this source's gateway port)",
            kind=ErrorKind.CONFIG,
            origin=origin,
        ) from None
    reply = line.rstrip(b"\r\n").decode(errors="replace")
    if reply.startswith("+OK zlib"):
        return InflatingReader(reader, origin=origin), writer
    writer.close()
    if reply.startswith("-GATEWAY "):
        raise FatalSyncError(
            f"{url.address}: {where} refused: {reply[9:]}", kind=ErrorKind.CONFIG, origin=origin
        )
    if reply.startswith("-UNAVAILABLE "):
        raise RetryableError(f"{url.address}: {where}: {reply[13:]}", origin=origin)
    if reply.startswith("-"):
        err = classify_reply_error(reply[1:], where=f"{url.address} (via {where})", origin=origin)
        if isinstance(err, AuthError):
            raise err
        raise FatalSyncError(
            f"{url.address}: {gw.address} is not a sync gateway (it answered {reply[:80]!r}); "
            "check this source's gateway port",
            kind=ErrorKind.CONFIG,
            origin=origin,
        )
    raise FatalSyncError(
        f"{url.address}: {gw.address} is not a sync gateway (it answered {reply[:80]!r})",
        kind=ErrorKind.CONFIG,
        origin=origin,
    )


# -- the server ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """Where the gateway listens and which databases it serves: ports in `ports` on
    `database_host` (the node's address: its databases listen there). With `tls`, a syncer that
    opens with a TLS handshake gets TLS (the proxy certificate), one that opens with its hello
    gets plain TCP: one port for sources with and without encryption. A syncer that came with
    TLS named a TLS port (its URL is rediss://): the gateway connects to it with
    `database_tls` (the cluster's syncer certificate, which its databases trust); both may be
    replaced while it runs (`Gateway.set_tls`). At most `max_sessions` sessions at once."""

    host: str
    port: int
    database_host: str
    ports: range
    tls: ssl.SSLContext | None = None
    database_tls: ssl.SSLContext | None = None
    max_sessions: int = DEFAULT_MAX_SESSIONS


@dataclass(slots=True)
class _Counters:
    sessions: int = 0
    active: int = 0
    refused: int = 0  # connections over the session limit
    bytes_from_databases: int = 0  # what the databases sent (before rewriting and deflating)
    bytes_deflated: int = 0  # what was deflated (the rewritten RDBs, the rest as it came)
    bytes_to_syncers: int = 0  # what went out on the wire


class Gateway:
    """The server (steps 2 and 3 of the protocol). `async with Gateway(cfg) as gw: ...`, or
    `await gw.start()` … `await gw.close()`.

    It accepts connections itself (not `asyncio.start_server`) so that it can look at a
    connection's first byte before any transport reads it: 0x16 opens a TLS handshake."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.counters = _Counters()
        self.tls, self.database_tls = config.tls, config.database_tls
        self._refusing = 0
        self._listener: socket.socket | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._sessions: set[asyncio.Task[None]] = set()

    def set_tls(self, tls: ssl.SSLContext | None, database_tls: ssl.SSLContext | None) -> None:
        """New TLS material for the sessions that start from now on (running ones keep theirs):
        a replaced proxy or syncer certificate, without a restart."""
        self.tls, self.database_tls = tls, database_tls

    @property
    def port(self) -> int:
        assert self._listener is not None
        return int(self._listener.getsockname()[1])

    async def start(self) -> Gateway:
        family = socket.AF_INET6 if ":" in self.config.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.config.host, self.config.port))
            sock.listen(128)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self._listener = sock
        self._accepting = asyncio.create_task(self._accept_loop(), name="gateway accept")
        return self

    async def close(self) -> None:
        tasks = [t for t in [self._accepting, *self._sessions] if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        if self._listener is not None:
            self._listener.close()

    async def __aenter__(self) -> Gateway:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _accept_loop(self) -> None:
        assert self._listener is not None
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = await loop.sock_accept(self._listener)
            except OSError as exc:  # e.g. EMFILE: wait instead of spinning
                log.warning("accept failed: %s", exc)
                await asyncio.sleep(0.5)
                continue
            conn.setblocking(False)
            if self.counters.active >= self.config.max_sessions:
                self.counters.refused += 1
                if self._refusing >= _REFUSING_MAX:
                    conn.close()
                    continue
                self._refusing += 1
                task = asyncio.create_task(self._refuse(conn))
            else:
                # Counted here, not when the task first runs: the next accept sees it.
                self.counters.sessions += 1
                self.counters.active += 1
                task = asyncio.create_task(self._session(conn))
                task.add_done_callback(self._ended)
            self._sessions.add(task)
            task.add_done_callback(self._sessions.discard)

    async def _streams(
        self, conn: socket.socket
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Plain or TLS streams on an accepted socket, by its first byte (not consumed)."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(_HELLO_TIMEOUT_S):
            while True:
                ready: asyncio.Future[None] = loop.create_future()

                def readable(ready: asyncio.Future[None] = ready) -> None:
                    if not ready.done():
                        ready.set_result(None)

                loop.add_reader(conn.fileno(), readable)
                try:
                    await ready
                finally:
                    loop.remove_reader(conn.fileno())
                try:
                    first = conn.recv(1, socket.MSG_PEEK)
                    break
                except BlockingIOError:  # woken for another socket that had this fd number
                    continue
        tls = self.tls if first == b"\x16" else None
        reader = asyncio.StreamReader(limit=_CHUNK * 4)
        protocol = asyncio.StreamReaderProtocol(reader)
        if tls is None:
            transport, _ = await loop.connect_accepted_socket(lambda: protocol, conn)
        else:
            transport, _ = await loop.connect_accepted_socket(
                lambda: protocol, conn, ssl=tls, ssl_handshake_timeout=_HELLO_TIMEOUT_S
            )
        return reader, asyncio.StreamWriter(transport, protocol, reader, loop)

    async def _refuse(self, conn: socket.socket) -> None:
        """Over the session limit: say so (the syncer retries later), then close."""
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(_HELLO_TIMEOUT_S):
                reader, writer = await self._streams(conn)
                await _read_hello(reader)
                writer.write(
                    b"-UNAVAILABLE the sync gateway serves %d sessions, its limit; retry later\r\n"
                    % self.config.max_sessions
                )
                await writer.drain()
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError, TimeoutError, ValueError):
            pass
        finally:
            self._refusing -= 1
            if writer is not None:
                writer.close()
            else:
                conn.close()

    def _ended(self, _: asyncio.Task[None]) -> None:
        self.counters.active -= 1

    async def _session(self, conn: socket.socket) -> None:
        peer = conn.getpeername() if conn.fileno() >= 0 else None
        writer: asyncio.StreamWriter | None = None
        try:
            reader, writer = await self._streams(conn)
            await self._serve(reader, writer, peer)
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError) as exc:
            log.info("session from %s ended: %s", peer, type(exc).__name__)
        except RdbError as exc:  # the database's own words about its snapshot, no secret
            log.warning("session from %s ended: its RDB cannot be rewritten: %s", peer, exc)
        except Exception:  # a bug: said, and the session closed, never swallowed silently
            log.exception("session from %s failed", peer)
        finally:
            if writer is not None:
                writer.close()
            else:
                conn.close()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: object
    ) -> None:
        try:
            async with asyncio.timeout(_HELLO_TIMEOUT_S):
                hello = await _read_hello(reader)
        except (TimeoutError, ValueError) as exc:
            writer.write(b"-GATEWAY " + _one_line(str(exc) or "no hello") + b"\r\n")
            await writer.drain()
            return
        if hello.port not in self.config.ports:
            writer.write(b"-GATEWAY port %d is not a database port here\r\n" % hello.port)
            await writer.drain()
            return
        db_ssl = None
        if writer.get_extra_info("ssl_object") is not None:
            db_ssl = self.database_tls
            if db_ssl is None:
                writer.write(b"-GATEWAY no TLS material for this host's databases\r\n")
                await writer.drain()
                return
        try:
            db_reader, db_writer = await asyncio.open_connection(
                self.config.database_host, hello.port, limit=_CHUNK * 4, ssl=db_ssl
            )
        except (OSError, ssl.SSLError):
            writer.write(b"-GATEWAY no database runs on port %d of this host\r\n" % hello.port)
            await writer.drain()
            return
        try:
            user = (hello.user,) if hello.user else ()
            db_writer.write(pack(b"AUTH", *user, hello.password))
            try:
                async with asyncio.timeout(_HELLO_TIMEOUT_S):
                    answer = await db_reader.readuntil(b"\n")
            except (TimeoutError, asyncio.IncompleteReadError):
                writer.write(b"-UNAVAILABLE the database on port %d is silent\r\n" % hello.port)
                await writer.drain()
                return
            if not answer.startswith(b"+"):
                writer.write(_one_line(answer.decode(errors="replace")) + b"\r\n")
                await writer.drain()
                return
            writer.write(b"+OK zlib %d\r\n" % hello.level)
            log.info(
                "session from %s (%s): database port %d, zlib %d, protocol %d",
                peer,
                "TLS" if db_ssl is not None else "plain",
                hello.port,
                hello.level,
                hello.version,
            )
            rewriter = StreamRewriter() if hello.version >= 2 else None
            await _relay(reader, writer, db_reader, db_writer, hello, rewriter, self.counters)
        finally:
            db_writer.close()


async def _read_hello(reader: asyncio.StreamReader) -> Hello:
    parser = hiredis.Reader()
    seen = 0
    while True:
        data = await reader.read(_HELLO_MAX)
        if not data:
            raise ValueError("the connection closed before the hello")
        seen += len(data)
        if seen > _HELLO_MAX:
            raise ValueError("hello too long")
        try:
            parser.feed(data)
            args = parser.gets()
        except hiredis.ProtocolError:
            raise ValueError("not a sync gateway hello") from None
        if args is False:
            continue
        if not isinstance(args, list) or not all(isinstance(a, bytes) for a in args):
            raise ValueError("not a sync gateway hello")
        if parser.gets() is not False:
            # The syncer waits for the answer before it sends anything else.
            raise ValueError("data after the hello")
        return parse_hello(args)


def _one_line(text: str) -> bytes:
    return text.replace("\r", " ").replace("\n", " ").strip().encode()[:400]


async def _relay(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    db_reader: asyncio.StreamReader,
    db_writer: asyncio.StreamWriter,
    hello: Hello,
    rewriter: StreamRewriter | None,
    counters: _Counters,
) -> None:
    """Both directions until either side closes (step 3)."""

    deflater = Deflater(hello.level)

    def encode(data: bytes) -> tuple[bytes, int]:
        parts = [data] if rewriter is None else rewriter.feed(data)
        return deflater.deflate(parts), sum(len(p) for p in parts if p is not None)

    async def up() -> None:
        while data := await reader.read(_UPSTREAM_CHUNK):
            db_writer.write(data)
            await db_writer.drain()

    async def down() -> None:
        while data := await db_reader.read(_CHUNK):
            if len(data) >= _OFFLOAD:
                out, deflated = await asyncio.to_thread(encode, data)
            else:
                out, deflated = encode(data)
            counters.bytes_from_databases += len(data)
            counters.bytes_deflated += deflated
            counters.bytes_to_syncers += len(out)
            writer.write(out)
            await writer.drain()

    tasks = [asyncio.create_task(up()), asyncio.create_task(down())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()  # an RdbError of the rewrite: the session says it
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task


# -- TLS ---------------------------------------------------------------------------------------


def server_ssl_context(cert: str, key: str) -> ssl.SSLContext:
    """TLS 1.2 or newer, with the cluster's proxy certificate."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


def database_ssl_context(ca: str | None, cert: str | None, key: str | None) -> ssl.SSLContext:
    """The gateway as a TLS client of its own host's databases: the chain verified against
    `ca` (the proxy certificate), not the name (it connects to the node's address)."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    ctx.check_hostname = False
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


TlsPair = tuple[ssl.SSLContext | None, ssl.SSLContext | None]
RELOAD_EVERY_S = 2.0


async def serve(
    config: GatewayConfig,
    reload: Callable[[], TlsPair | None] | None = None,
    *,
    reload_every: float = RELOAD_EVERY_S,
) -> None:
    """Run the gateway until SIGTERM or SIGINT. `reload` (run in a thread every `reload_every`
    seconds, and at once on SIGHUP) returns new TLS contexts when the certificates changed, None
    when they did not; new sessions use them. A reload that fails keeps the old ones, said in the
    log (e.g. a certificate file read while it was being written: the next try reads it whole)."""
    stop = asyncio.Event()
    wake = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, wake.set)
    async with Gateway(config) as gw:
        log.info(
            "sync gateway on %s:%d (%s) for ports %d-%d of %s",
            config.host,
            gw.port,
            "TLS" if config.tls else "plain",
            config.ports.start,
            config.ports.stop - 1,
            config.database_host,
        )
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(reload_every if reload is not None else None):
                    await _first(stop, wake)
            wake.clear()
            if reload is None or stop.is_set():
                continue
            try:
                fresh = await asyncio.to_thread(reload)
            except Exception as exc:  # said, and the old material kept
                log.warning("TLS material not reloaded (kept the old): %s", type(exc).__name__)
                continue
            if fresh is not None:
                gw.set_tls(*fresh)
                log.info("TLS material reloaded: new sessions use it")


async def _first(*events: asyncio.Event) -> None:
    """Until one of `events` is set."""
    waits = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
