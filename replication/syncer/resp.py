"""RESP on asyncio streams: connections (plain or TLS), replies via hiredis, and the framer that
cuts a master's replication stream into commands with their exact byte lengths.

Commands always leave as length-prefixed multibulk built by `hiredis.pack_command`; nothing here
joins strings into a command line.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import re
import ssl
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate, chain
from operator import itemgetter
from typing import Any

import hiredis

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
from .urls import RedisUrl

__all__ = [
    "CLIENT_CERT_REFUSED",
    "Arg",
    "CommandStreamParser",
    "RespConnection",
    "TlsOptions",
    "connection_error",
    "pack",
    "pack_restore",
    "ssl_context",
]

Arg = bytes | bytearray | memoryview | str | int | float
# What a connection's reply parser returns while no complete reply is buffered.
_NOT_YET: Any = object()
_READ_SIZE = 1 << 18


# hiredis's stub types the argument as a 1-tuple; it takes a tuple of any length.
pack_command: Callable[[tuple[Any, ...]], bytes] = hiredis.pack_command


_RESTORE = (
    b"*6\r\n$7\r\nRESTORE\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n"
    b"$7\r\nREPLACE\r\n$6\r\nABSTTL\r\n"
)


def pack_restore(key: bytes, ttl: bytes, payload: bytes) -> bytes:
    """`RESTORE key ttl payload REPLACE ABSTTL` as multibulk: byte for byte what `pack()` gives
    (every argument length-prefixed), in one C-level format instead of hiredis's per-argument
    work, for the million calls of a full sync."""
    return _RESTORE % (len(key), key, len(ttl), ttl, len(payload), payload)


def pack(*args: Arg) -> bytes:
    """One command as RESP multibulk."""
    return pack_command(
        tuple(bytes(a) if isinstance(a, bytearray | memoryview) else a for a in args)
    )


@dataclass(frozen=True, slots=True)
class TlsOptions:
    """Client side TLS: our certificate and key, what to trust, and the SNI name to send.

    `ca` is a CA bundle or the server's own (self-signed) certificate; without it the system trust
    store is used. `verify_hostname` is off by default because Redis certificates rarely name the
    host the operator typed; the certificate chain is always verified.
    """

    cert: str | None = None
    key: str | None = None
    ca: str | None = None
    sni: str | None = None
    verify_hostname: bool = False


def ssl_context(tls: TlsOptions) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=tls.ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = tls.verify_hostname
    if tls.cert:
        ctx.load_cert_chain(tls.cert, tls.key)
    return ctx


# The alerts a TLS server sends when it does not accept our client certificate (or got none;
# OpenSSL reason codes). With TLS 1.2 they come in the handshake; with TLS 1.3 after our side of
# it completed, on the first read or write: every read and write of a TLS connection passes its
# error through `connection_error`, else they would read as "connection lost", retried forever.
CLIENT_CERT_REFUSED = frozenset(
    {
        "TLSV13_ALERT_CERTIFICATE_REQUIRED",
        "TLSV1_ALERT_UNKNOWN_CA",
        "TLSV1_ALERT_ACCESS_DENIED",
        "SSLV3_ALERT_BAD_CERTIFICATE",
        "SSLV3_ALERT_CERTIFICATE_EXPIRED",
        "SSLV3_ALERT_CERTIFICATE_REVOKED",
        "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
        "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE",
    }
)
_X509_V_ERR_CERT_HAS_EXPIRED = 10
_X509_V_ERR_CERT_NOT_YET_VALID = 9


def tls_verify_failed(
    address: str, origin: Origin | None, exc: ssl.SSLCertVerificationError | None = None
) -> FatalSyncError:
    """The server's certificate is not the one configured for the source (or is out of date)."""
    code = getattr(exc, "verify_code", None)
    if code in (_X509_V_ERR_CERT_HAS_EXPIRED, _X509_V_ERR_CERT_NOT_YET_VALID):
        when = "has expired" if code == _X509_V_ERR_CERT_HAS_EXPIRED else "is not valid yet"
        message = (
            f"TLS: the certificate of {address} {when}: renew it on the source's cluster, "
            "then update the certificate configured for this source"
        )
    else:
        message = (
            f"TLS: the certificate of {address} does not match the certificate configured for "
            "this source"
        )
    return FatalSyncError(message, kind=ErrorKind.TLS, origin=origin)


def tls_refusal(exc: BaseException, address: str, origin: Origin | None) -> FatalSyncError | None:
    """The fatal error for a server that refused our client certificate, or None."""
    if isinstance(exc, ssl.SSLError) and getattr(exc, "reason", None) in CLIENT_CERT_REFUSED:
        return FatalSyncError(
            f"TLS: {address} refused this cluster's syncer certificate — add it to the source "
            "database's trusted certificates",
            kind=ErrorKind.TLS_CLIENT,
            origin=origin,
        )
    return None


def connection_error(exc: OSError, where: str, origin: Origin | None) -> SyncError:
    """A connection that broke under us: retryable, unless the server's TLS alert says it
    refuses our client certificate (configuration: retrying cannot help)."""
    return tls_refusal(exc, where, origin) or RetryableError(
        f"{where}: connection lost: {exc}", kind=ErrorKind.LOST, origin=origin
    )


def origin_of(url: RedisUrl, side: Side | None, source: int | None = None) -> Origin | None:
    """Where errors of a connection to `url` come from (None when the caller did not say)."""
    return None if side is None else Origin(side, url.address, source)


async def open_stream(
    url: RedisUrl, tls: TlsOptions | None, origin: Origin | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """TCP (or TLS when the URL is rediss://) connection with a timeout; errors are retryable,
    except a server certificate we do not trust."""
    ctx: ssl.SSLContext | None = None
    server_hostname: str | None = None
    if url.tls:
        opts = tls or TlsOptions()
        ctx = ssl_context(opts)
        server_hostname = url.sni or opts.sni or url.host
    try:
        # asyncio.timeout, not wait_for, which on 3.11 can lose a cancellation (source.py).
        async with asyncio.timeout(url.connect_timeout):
            return await asyncio.open_connection(
                url.host, url.port, ssl=ctx, server_hostname=server_hostname, limit=_READ_SIZE * 4
            )
    except ssl.SSLCertVerificationError as exc:
        # The server's certificate is not the one we were told to trust: configuration, not luck.
        raise tls_verify_failed(url.address, origin, exc) from exc
    except ssl.SSLError as exc:
        refused = tls_refusal(exc, url.address, origin)
        if refused is not None:
            raise refused from exc
        raise RetryableError(
            f"{url.address}: TLS handshake failed: {exc}", kind=ErrorKind.TLS, origin=origin
        ) from exc
    except (OSError, TimeoutError) as exc:
        # TimeoutError is an OSError too: the connect timeout (or the handshake's) ran out.
        kind = ErrorKind.TIMEOUT if isinstance(exc, TimeoutError) else ErrorKind.REFUSED
        raise RetryableError(
            f"{url.address}: cannot connect: {exc or type(exc).__name__}", kind=kind, origin=origin
        ) from exc


def auth_args(url: RedisUrl) -> tuple[bytes, ...] | None:
    if url.password is None:
        return None
    if url.username:
        return (b"AUTH", url.username.encode(), url.password.encode())
    return (b"AUTH", url.password.encode())


class RespConnection:
    """A client connection that sends packed commands and reads replies with hiredis.

    Error replies come back as `hiredis.ReplyError` instances from `read_reply()`; `call()` raises
    them, classified. `side` and `source` say what the connection is for: every error it raises
    carries them (errors.py).
    """

    def __init__(
        self,
        url: RedisUrl,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        origin: Origin | None = None,
    ) -> None:
        self.url = url
        self.reader = reader
        self.writer = writer
        self.origin = origin
        self.parser = hiredis.Reader(notEnoughData=_NOT_YET)
        self.bytes_in = 0

    @classmethod
    async def open(
        cls,
        url: RedisUrl,
        tls: TlsOptions | None = None,
        *,
        select_db: bool = True,
        side: Side | None = None,
        source: int | None = None,
    ) -> RespConnection:
        origin = origin_of(url, side, source)
        reader, writer = await open_stream(url, tls, origin)
        conn = cls(url, reader, writer, origin)
        try:
            # The handshake has the connect timeout too: a server that accepts and never
            # answers (stopped, overloaded, not Redis) must not hold us forever.
            async with asyncio.timeout(url.connect_timeout):
                args = auth_args(url)
                if args is not None:
                    reply = await conn.call_raw(*args)
                    if isinstance(reply, hiredis.ReplyError):
                        raise AuthError(
                            f"{url.address}: authentication failed: {reply}", origin=origin
                        )
                if select_db and url.db:
                    await conn.call(b"SELECT", url.db)
        except TimeoutError:
            conn.close()
            raise RetryableError(
                f"{url.address}: no answer to the handshake within {url.connect_timeout:g} s",
                kind=ErrorKind.TIMEOUT,
                origin=origin,
            ) from None
        except BaseException:
            conn.close()
            raise
        return conn

    def send(self, data: bytes | bytearray | memoryview) -> None:
        self.writer.write(data)

    async def drain(self) -> None:
        try:
            await self.writer.drain()
        except OSError as exc:
            raise connection_error(exc, self.url.address, self.origin) from exc

    async def read_reply(self) -> Any:
        while True:
            reply = self.parser.gets()
            if reply is not _NOT_YET:
                return reply
            await self._fill()

    async def read_raw(self) -> bytes:
        """The next bytes that arrived, not given to `parser` (the caller owns them)."""
        try:
            data = await self.reader.read(_READ_SIZE)
        except OSError as exc:
            raise connection_error(exc, self.url.address, self.origin) from exc
        if not data:
            raise RetryableError(
                f"{self.url.address}: connection closed by peer",
                kind=ErrorKind.CLOSED,
                origin=self.origin,
            )
        self.bytes_in += len(data)
        return data

    def parse(self, data: bytes) -> None:
        """Give `parser` more bytes (then `replies_ready()` has the replies they complete)."""
        try:
            self.parser.feed(data)
        except hiredis.ProtocolError as exc:
            raise ProtocolError(f"{self.url.address}: {exc}", origin=self.origin) from exc

    async def _fill(self) -> None:
        self.parse(await self.read_raw())

    def replies_ready(self) -> list[Any]:
        """Every reply already parsed, without waiting."""
        # C-level iteration; the sentinel is our own object (False would stop at an integer 0).
        return list(iter(self.parser.gets, _NOT_YET))

    async def call_raw(self, *args: Arg) -> Any:
        self.send(pack(*args))
        await self.drain()
        return await self.read_reply()

    async def call(self, *args: Arg) -> Any:
        reply = await self.call_raw(*args)
        if isinstance(reply, hiredis.ReplyError):
            raise classify_reply_error(
                str(reply), where=self.url.address, command=_name(args), origin=self.origin
            )
        return reply

    def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()

    async def aclose(self) -> None:
        self.close()
        with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):
            async with asyncio.timeout(2):
                await self.writer.wait_closed()


def _name(args: Sequence[Arg]) -> bytes | None:
    if not args:
        return None
    a = args[0]
    return (
        a.encode()
        if isinstance(a, str)
        else bytes(a)
        if isinstance(a, bytes | bytearray | memoryview)
        else None
    )


# Bytes a bulk string of length n adds beyond its content ("$<n>\r\n" + "\r\n"), and a
# command of argc arguments beyond them ("*<argc>\r\n"), for the usual sizes; larger ones fall
# back to encoding the command.
_BULK_EXTRA = [len(str(n)) + 5 for n in range(1 << 16)]
_ARRAY_EXTRA = [len(str(n)) + 3 for n in range(1 << 16)]
_first = itemgetter(0)


def encoded_size(cmds: list[list[bytes]]) -> int:
    """Bytes of these commands as canonical multibulk (C-level sums, no per-command Python)."""
    lens = list(map(len, chain.from_iterable(cmds)))
    try:
        return (
            sum(lens)
            + sum(map(_BULK_EXTRA.__getitem__, lens))
            + sum(map(_ARRAY_EXTRA.__getitem__, map(len, cmds)))
        )
    except IndexError:  # an argument (or argument count) of 64 KiB or more
        return sum(map(len, map(pack_command, map(tuple, cmds))))


# The fast framer (CommandStreamParser.frame) recognises, in one C-level regex match, a run of
# commands of at most _FAST_ARGC arguments of at most _FAST_LEN bytes each; any other command is
# parsed alone with hiredis. Bigger limits make the pattern (and its compile time) grow fast.
_FAST_ARGC = 9
_FAST_LEN = 999
# First bytes handed to hiredis for a command the fast framer does not take; also the size above
# which an incomplete one stays half-parsed until its end arrives (smaller ones are parsed again,
# so a command the fast framer does take is never handed back just for arriving in pieces).
_WINDOW = 16384
# Arguments this large are checked in place, not packed again (`_one_size`).
_BIG_ARG = 1 << 20


def _bulk_pattern(max_len: int) -> bytes:
    """`$<n>CRLF<n bytes>CRLF` for every n in 0..max_len, as a trie on the decimal digits of n (no
    leading zeros), so that the regex engine reads each digit once and then skips n bytes."""

    def node(digits: bytes) -> bytes:
        alts = []
        if digits:
            n = int(digits)
            alts.append(rb"\r\n" + (rb".{%d}" % n if n else b"") + rb"\r\n")
        if digits != b"0":
            for d in b"0123456789":
                nxt = digits + bytes([d])
                if int(nxt) <= max_len:
                    alts.append(bytes([d]) + node(nxt))
        return alts[0] if len(alts) == 1 else b"(?:" + b"|".join(alts) + b")"

    return rb"\$" + node(b"")


# Where a pattern below holds one bulk string (`_bulk_pattern(_FAST_LEN)`): a byte that no
# pattern text holds otherwise, replaced after parsing (`_compile_with_bulks`).
_BULK = b"\x01"


def _compile_with_bulks(pattern: bytes) -> re.Pattern[bytes]:
    """re.compile(pattern with every `_BULK` replaced by the bulk-string trie, DOTALL).

    The trie (a thousand lengths) appears a dozen times in the framer's patterns, and Python's
    regex parser (pure Python) spent most of the ~0.5 s of CPU that compiling them took on
    parsing the same text again and again. Here the trie is parsed once and its parsed form
    spliced into the parsed pattern wherever `_BULK` stands, then compiled: the same program
    as compiling the whole text (the test compares them). Falls back to compiling the text if
    the regex internals are not what this expects."""
    bulk = _bulk_pattern(_FAST_LEN)
    try:
        parser: Any = importlib.import_module("re._parser")
        compiler: Any = importlib.import_module("re._compiler")
        literal = parser.LITERAL
        items = list(parser.parse(bulk, re.DOTALL).data)
        tree = parser.parse(pattern, re.DOTALL)
        marker = (literal, _BULK[0])

        def splice(sub: Any) -> None:
            data = sub.data
            i = 0
            while i < len(data):
                item = data[i]
                if item == marker:
                    data[i : i + 1] = items
                    i += len(items)
                    continue
                for av in item[1] if isinstance(item[1], tuple | list) else ():
                    for node in av if isinstance(av, list) else (av,):
                        if isinstance(node, parser.SubPattern):
                            splice(node)
                i += 1
            sub.width = None

        splice(tree)
        compiled: re.Pattern[bytes] = compiler.compile(tree, re.DOTALL)
        return compiled
    except (AttributeError, ImportError, TypeError):  # pragma: no cover - other Pythons
        return re.compile(pattern.replace(_BULK, bulk), re.DOTALL)


@functools.cache
def _plain_run(stop_names: frozenset[bytes]) -> re.Pattern[bytes]:
    """A maximal run of canonical multibulk commands (1.._FAST_ARGC arguments of at most
    _FAST_LEN bytes) whose name is none of `stop_names` (any case). Compiled once."""
    return _compile_with_bulks(_plain_run_text(stop_names))


def _plain_run_text(stop_names: frozenset[bytes]) -> bytes:
    bulk = _BULK
    stop = b"|".join(
        rb"\$%d\r\n(?i:%s)\r\n" % (len(name), re.escape(name)) for name in sorted(stop_names)
    )
    not_stop = rb"(?!" + stop + rb")" if stop else b""
    command = (
        rb"\*(?:"
        + b"|".join(
            rb"%d\r\n" % n + not_stop + rb"(?:" + bulk + rb"){%d}" % n
            for n in range(1, _FAST_ARGC + 1)
        )
        + rb")"
    )
    return rb"(?:" + command + rb")*"


@functools.cache
def _blind_run() -> re.Pattern[bytes]:
    """A maximal run of *blind writes*: commands whose effect on their keys does not depend on
    what the keys held, so that applying a run again in order, over any prefix of it already
    applied, ends with the same data. Only `SET key value`, `SET key value PXAT ms` (what a
    Redis 7 master propagates for SET EX/PX, SETEX and PSETEX), and `DEL`/`UNLINK` of one to
    four keys (what it propagates for expired and evicted keys), in canonical multibulk with
    arguments of at most _FAST_LEN bytes. Conditional or relative forms (NX, XX, GET, KEEPTTL,
    EX, PX) and PEXPIREAT (which depends on the key existing) are not blind."""
    return _compile_with_bulks(_blind_run_text())


def _blind_run_text() -> bytes:
    b = rb"(?:" + _BULK + rb")"
    delete = rb"(?:\$3\r\n(?i:DEL)|\$6\r\n(?i:UNLINK))\r\n"
    set_ = rb"\$3\r\n(?i:SET)\r\n"
    command = (
        rb"\*(?:2\r\n"
        + delete
        + b
        + rb"|3\r\n(?:"
        + set_
        + b
        + b
        + rb"|"
        + delete
        + b
        + rb"{2})|4\r\n"
        + delete
        + b
        + rb"{3}|5\r\n(?:"
        + set_
        + b
        + b
        + rb"\$4\r\n(?i:PXAT)\r\n"
        + b
        + rb"|"
        + delete
        + b
        + rb"{4}))"
    )
    return rb"(?:" + command + rb")*"


class CommandStreamParser:
    """Frames a master's replication stream into commands with exact byte counts.

    `feed(data)` returns `(raw, cmds)`: `raw` holds exactly the bytes of the complete commands
    found so far (a partial command at the end stays buffered) and `cmds` their arguments. The
    replication offset advances by `len(raw)`; `raw` (or slices of it, cut at `ends(cmds)`) is
    what we forward to a standalone destination.

    Parsing is hiredis (C); the size of a command is that of its canonical multibulk encoding,
    which is what masters emit (checked: the commands must start with `*` and end with CRLF
    where we think they do, otherwise `ProtocolError`).
    """

    @staticmethod
    def prepare(stop_names: frozenset[bytes]) -> None:
        """Compile the fast framer's patterns now (once per process, ~0.2 s of CPU) rather than
        when the first commands of the stream are waiting."""
        _plain_run(stop_names)
        _blind_run()

    def __init__(
        self, stop_names: frozenset[bytes] = frozenset(), *, origin: Origin | None = None
    ) -> None:
        self.origin = origin  # the source whose stream this is, for the errors
        self._reader = hiredis.Reader()
        self._pending = bytearray()
        self._broken = False
        self._stop_names = stop_names
        # Which method `_reader` follows: feed() keeps it fed with `_pending`; frame() only uses
        # it for one command at a time, fed from the start of `_pending` (`_one_open`).
        self._reader_feeds = True
        self._one_open = False
        # After frame(): the `raw` it returned holds only blind writes (see _blind_run).
        self.blind = False

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a complete command."""
        return len(self._pending)

    @staticmethod
    def ends(cmds: list[list[bytes]]) -> list[int]:
        """Position in `raw` just after each command (for cutting it into runs)."""
        return list(accumulate(map(len, map(pack_command, map(tuple, cmds)))))

    def feed(self, data: bytes | bytearray | memoryview) -> tuple[bytes, list[list[bytes]]]:
        self._check_usable()
        self.blind = False
        pending = self._pending
        if not self._reader_feeds:  # coming from frame(): resume from the buffered bytes
            self._reader = hiredis.Reader()
            self._reader.feed(bytes(pending))
            self._reader_feeds, self._one_open = True, False
        pending += data
        with self._failing():
            self._reader.feed(bytes(data) if not isinstance(data, bytes) else data)
            # C-level iteration (iter(gets, False) is safe because a command is a list, never 0).
            parsed = list(iter(self._reader.gets, False))
            pos = 0
            if parsed:
                if set(map(type, parsed)) != {list} or set(map(type, map(_first, parsed))) != {
                    bytes
                }:
                    raise ProtocolError(
                        "replication stream: expected command arrays", origin=self.origin
                    )
                pos = encoded_size(parsed)
                if pending[0] != 42 or pending[pos - 2 : pos] != b"\r\n":  # '*' ... CRLF
                    raise ProtocolError(
                        "replication stream: command framing mismatch", origin=self.origin
                    )
                if pos < len(pending) and pending[pos] != 42:
                    raise ProtocolError(
                        "replication stream: command framing mismatch", origin=self.origin
                    )
        return self._take(pos), parsed

    def frame(
        self, data: bytes | bytearray | memoryview
    ) -> tuple[bytes, list[tuple[int, int, list[bytes]]]]:
        """Like `feed()` for forwarding: `raw` is the same, but only the commands the fast framer
        does not take come back, as `(start, end, args)` in `raw`: commands named in `stop_names`
        and ones with more than `_FAST_ARGC` arguments or an argument over `_FAST_LEN` bytes.
        Every other command is framed by one regex match over the whole run (no Python object per
        command), so the caller does not learn how many commands `raw` holds. Afterwards
        `blind` says whether `raw` holds only blind writes (see `_blind_run`)."""
        self._check_usable()
        pending = self._pending
        if self._reader_feeds:  # coming from feed(): its reader holds only what `pending` does
            self._reader = hiredis.Reader()
            self._reader_feeds, self._one_open = False, False
        fed = len(pending)
        # Nothing buffered (the usual case): frame `data` itself and keep only its partial tail.
        whole = data if not fed and type(data) is bytes else None
        buf: bytes | bytearray
        if whole is not None:
            buf = whole
        else:
            pending += data
            buf = pending
        n = len(buf)
        run = _plain_run(self._stop_names).match
        others: list[tuple[int, int, list[bytes]]] = []
        pos = 0
        blind_end = -1
        self.blind = False
        with self._failing():
            if self._one_open:  # the rest of a command that did not fit before
                args = self._one_more(buf, fed)
                if args is None:
                    return b"", others
                pos = self._one_size(args, buf, 0)
                others.append((0, pos, args))
            else:
                # Blind writes first (one pass when that is all there is), then anything.
                match = _blind_run().match(buf)
                assert match is not None  # the pattern matches the empty string
                pos = blind_end = match.end()
            while True:
                match = run(buf, pos)
                assert match is not None  # the pattern matches the empty string
                pos = match.end()
                if pos == n:
                    break
                self._reader = hiredis.Reader()
                args = self._one_more(buf, pos)
                if args is None:
                    break
                end = pos + self._one_size(args, buf, pos)
                others.append((pos, end, args))
                pos = end
        self.blind = pos > 0 and pos == blind_end
        if whole is None:
            return self._take(pos), others
        pending += whole[pos:]
        return (whole if pos == n else whole[:pos]), others

    def _take(self, pos: int) -> bytes:
        """The complete commands framed so far, removed from the buffer (one copy: a command
        of 30 MB must not cost a slice and then its bytes)."""
        with memoryview(self._pending) as mv:
            raw = mv[:pos].tobytes()
        del self._pending[:pos]
        return raw

    def _check_usable(self) -> None:
        if self._broken:
            raise ProtocolError(
                "replication stream parser used after a protocol error", origin=self.origin
            )

    @contextlib.contextmanager
    def _failing(self) -> Iterator[None]:
        """A parse error breaks the parser for good: after one it could only guess."""
        try:
            yield
        except (hiredis.ProtocolError, TypeError, IndexError, ValueError) as exc:
            self._broken = True
            raise ProtocolError(f"replication stream: {exc}", origin=self.origin) from exc
        except ProtocolError:
            self._broken = True
            raise

    def _one_more(self, pending: bytes | bytearray, start: int) -> list[bytes] | None:
        """The command at `start`, parsed alone by `_reader`; None while it is incomplete.

        With `_one_open`, the reader already holds `pending[:start]`, the beginning of the command
        at 0. Otherwise the reader is new and gets growing windows from `start`, so a big command
        costs a few times its size, not the size of everything behind it."""
        reader = self._reader
        # feed(buffer, offset, length): hiredis copies the bytes once, with no slice between
        # (it takes any buffer; its stub says bytes).
        if self._one_open:
            reader.feed(pending, start, len(pending) - start)  # type: ignore[arg-type]
            args = reader.gets()
        else:
            n, fed, window, args = len(pending), start, _WINDOW, False
            while args is False and fed < n:
                upto = min(n, start + window)
                reader.feed(pending, fed, upto - fed)  # type: ignore[arg-type]
                fed, window = upto, window * 4
                args = reader.gets()
        if args is False:
            self._one_open = self._one_open or len(pending) - start > _WINDOW
            return None
        self._one_open = False
        if type(args) is not list or not args or {type(a) for a in args} != {bytes}:
            raise ProtocolError("replication stream: expected command arrays", origin=self.origin)
        return args

    def _one_size(self, args: list[bytes], pending: bytes | bytearray, start: int) -> int:
        """Length of the command at `start`, which must be exactly the canonical encoding of
        `args` (hiredis alone does not check every CRLF)."""
        mismatch = ProtocolError("replication stream: command framing mismatch", origin=self.origin)
        if max(map(len, args)) < _BIG_ARG:
            packed = pack_command(tuple(args))
            if not pending.startswith(packed, start):
                raise mismatch
            return len(packed)
        # A huge argument (a 30 MB SET): check the headers and CRLFs around the arguments hiredis
        # took from these very bytes, without packing (copying) them again.
        pos = start
        for part in (b"*%d\r\n" % len(args), *(b"$%d\r\n" % len(a) for a in args)):
            if not pending.startswith(part, pos):
                raise mismatch
            pos += len(part)
            if part[0] == 36:  # '$': its argument follows, then CRLF
                pos += int(part[1:-2])
                if not pending.startswith(b"\r\n", pos):
                    raise mismatch
                pos += 2
        return pos - start
