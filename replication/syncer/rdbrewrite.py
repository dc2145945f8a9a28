"""The sync gateway's rewrite of a full sync: the source's LZF strings inflated before zlib.

A source saves its snapshot with `rdbcompression yes` (the default): every string longer than 20
bytes that LZF shrinks is stored LZF-compressed (`0xC3 <clen> <len> <data>`). zlib gets little out
of LZF output (1.9x on text, measured), but ~5x out of the same text raw. The gateway may not
change the database's configuration, so it rewrites the RDB it relays instead:

1. `RdbRewriter` cuts the snapshot into items with rdb.py's parser (which also verifies the
   source's CRC64 as the bytes pass) and writes them again with every LZF string stored raw: the
   keys, aux fields, function code, top-level string values and the strings nested in encoded
   values (list/set/hash elements, quicklist nodes, listpacks, ziplists, intsets, zset members,
   stream nodes). A string that is not LZF-compressed is copied as it is, byte for byte; a value
   with none is the parser's slice, not copied at all.
   What the parser does not hand out is dropped: RESIZEDB and slot-info hints, LRU/LFU metadata
   (IDLE/FREQ) — none of which the syncer uses (fullsync.py reads exactly the parser's items).
   Expiry is written as `EXPIRETIME_MS` (seconds converted exactly). Module values and stream
   metadata after the listpacks are copied unchanged.
2. The rewritten file gets its own CRC64 trailer, computed over what is sent. When the source's
   checksum did not match, the trailer is made not to match either (the syncer stops with its
   checksum message, as it would reading the database directly).

Memory is bounded like the syncer's own parser: one incomplete item plus one chunk.

`StreamRewriter` applies this to the database's side of a replication connection (gateway.py's
protocol version 2): replies up to `+FULLRESYNC` or `+CONTINUE` pass unchanged; the RDB bulk,
whatever its form (`$<length>` or the diskless `$EOF:<mark>`), is sent as the EOF-marked form
(`$EOF:<40 bytes>` + rewritten RDB + the same 40 bytes), since its new length is known only at
its end; the syncer already reads both forms and shows diskless progress by keys (INFO keyspace).
Right after the mark the output has a `BOUNDARY`: the gateway ends its zlib stream there and
starts a new one, and the syncer's reader never returns bytes from both sides of it in one read,
so the mark is the last 40 bytes of a read (source.py ends the transfer exactly so) even though
the database's command stream follows at once. The rest of the connection passes unchanged.
Anything it does not recognise before the RDB (e.g. another sync protocol) makes it pass the
rest of the connection unchanged.
"""

from __future__ import annotations

import os
from typing import Final

from .crc64 import crc64
from .rdb import (
    ONE_STRING_TYPES,
    RDB_TYPE_HASH,
    RDB_TYPE_HASH_LISTPACK_EX,
    RDB_TYPE_HASH_LISTPACK_EX_PRE_GA,
    RDB_TYPE_HASH_METADATA,
    RDB_TYPE_HASH_METADATA_PRE_GA,
    RDB_TYPE_LIST,
    RDB_TYPE_LIST_QUICKLIST,
    RDB_TYPE_LIST_QUICKLIST_2,
    RDB_TYPE_SET,
    RDB_TYPE_STREAM_LISTPACKS,
    RDB_TYPE_STREAM_LISTPACKS_2,
    RDB_TYPE_STREAM_LISTPACKS_3,
    RDB_TYPE_VALKEY_HASH_2,
    RDB_TYPE_ZSET,
    RDB_TYPE_ZSET_2,
    RdbAux,
    RdbEnd,
    RdbError,
    RdbFunction,
    RdbItem,
    RdbKey,
    RdbModuleAux,
    RdbParser,
    RdbSelectDb,
    read_length,
    read_string,
    string_end,
)

__all__ = [
    "BOUNDARY",
    "RdbRewriter",
    "StreamRewriter",
    "inflate_lzf_strings",
    "rdb_length",
    "rdb_raw_string",
]

_LZF: Final = 0xC3

# How a value is laid out, for finding its strings: fixed header bytes, whether a count of units
# follows (else one unit), and a unit's parts: "S" a string, "L" a length, "Z" a zset score as
# text (one length byte; 253-255 are nan/+inf/-inf), an int n: n fixed bytes. Whatever follows
# the units (stream metadata) is copied unchanged.
_Layout = tuple[int, bool, tuple[str | int, ...]]
_ONE_STRING: _Layout = (0, False, ("S",))
_LAYOUTS: dict[int, _Layout] = {
    t: _ONE_STRING for t in (*ONE_STRING_TYPES, RDB_TYPE_HASH_LISTPACK_EX_PRE_GA)
}
_LAYOUTS.update(
    {
        RDB_TYPE_LIST: (0, True, ("S",)),
        RDB_TYPE_SET: (0, True, ("S",)),
        RDB_TYPE_LIST_QUICKLIST: (0, True, ("S",)),
        RDB_TYPE_ZSET: (0, True, ("S", "Z")),
        RDB_TYPE_HASH: (0, True, ("S", "S")),
        RDB_TYPE_ZSET_2: (0, True, ("S", 8)),
        RDB_TYPE_LIST_QUICKLIST_2: (0, True, ("L", "S")),
        RDB_TYPE_STREAM_LISTPACKS: (0, True, ("S", "S")),
        RDB_TYPE_STREAM_LISTPACKS_2: (0, True, ("S", "S")),
        RDB_TYPE_STREAM_LISTPACKS_3: (0, True, ("S", "S")),
        RDB_TYPE_HASH_METADATA_PRE_GA: (0, True, ("L", "S", "S")),
        RDB_TYPE_HASH_METADATA: (8, True, ("L", "S", "S")),
        RDB_TYPE_HASH_LISTPACK_EX: (8, False, ("S",)),
    }
)
_VALKEY_LAYOUTS = dict(_LAYOUTS)
del _VALKEY_LAYOUTS[RDB_TYPE_HASH_METADATA_PRE_GA]
del _VALKEY_LAYOUTS[RDB_TYPE_HASH_LISTPACK_EX_PRE_GA]
del _VALKEY_LAYOUTS[RDB_TYPE_HASH_METADATA]
del _VALKEY_LAYOUTS[RDB_TYPE_HASH_LISTPACK_EX]
_VALKEY_LAYOUTS[RDB_TYPE_VALKEY_HASH_2] = (0, True, ("S", "S", 8))


def rdb_length(n: int) -> bytes:
    """`n` in the RDB's length encoding (6, 14, 32 or 64 bits)."""
    if n < 0x40:
        return bytes((n,))
    if n < 0x4000:
        return bytes((0x40 | n >> 8, n & 0xFF))
    if n <= 0xFFFFFFFF:
        return b"\x80" + n.to_bytes(4, "big")
    return b"\x81" + n.to_bytes(8, "big")


def rdb_raw_string(s: bytes) -> bytes:
    return rdb_length(len(s)) + s


def inflate_lzf_strings(rdb_type: int, payload: bytes, *, valkey_types: bool = False) -> bytes:
    """A value's serialized bytes with its LZF strings stored raw (`payload` itself when it has
    none, or when its type is one this does not look into: module values)."""
    layout = (_VALKEY_LAYOUTS if valkey_types else _LAYOUTS).get(rdb_type)
    if layout is None:
        return payload
    header, counted, unit = layout
    if not counted:  # one string (after `header` fixed bytes): the common case, kept short
        if payload[header] != _LZF:
            return payload
        raw, end = read_string(payload, header)
        if end != len(payload):
            raise RdbError(f"value of type {rdb_type} has bytes after its string")
        return payload[:header] + rdb_raw_string(raw)
    out: bytearray | None = None
    copied = 0  # payload[:copied] is in `out` already
    count, p = read_length(payload, header)
    try:
        for _ in range(count):
            for part in unit:
                if part == "S":
                    if payload[p] == _LZF:
                        raw, end = read_string(payload, p)
                        if out is None:
                            out = bytearray()
                        out += payload[copied:p]
                        out += rdb_raw_string(raw)
                        copied = p = end
                    else:
                        p = string_end(payload, p)
                elif part == "L":
                    p = read_length(payload, p)[1]
                elif part == "Z":
                    b = payload[p]
                    p += 1 if b >= 253 else 1 + b
                else:
                    assert isinstance(part, int)
                    p += part
    except IndexError:
        raise RdbError(f"truncated value of type {rdb_type}") from None
    if p > len(payload):
        raise RdbError(f"truncated value of type {rdb_type}")
    if out is None:
        return payload
    out += payload[copied:]
    return bytes(out)


class RdbRewriter:
    """An RDB in, the same RDB with its LZF strings raw out, chunk by chunk (step 1 and 2)."""

    def __init__(self) -> None:
        self.parser = RdbParser()
        self.bytes_in = 0
        self.bytes_out = 0
        self.strings_inflated = 0  # values and keys that had LZF strings
        self._crc = 0
        self._started = False

    @property
    def done(self) -> bool:
        """The end marker and checksum are written; `tail` holds the input after them."""
        return self.parser.done

    @property
    def tail(self) -> bytes:
        return bytes(self.parser.tail)

    def feed(self, data: bytes | bytearray | memoryview) -> bytes:
        """The rewritten bytes of every item that `data` completed. Raises RdbError."""
        self.bytes_in += len(data)
        items = self.parser.feed(data)
        out = bytearray()
        if not self._started and self.parser.version:
            self._started = True
            p = self.parser
            out += b"VALKEY%03d" % p.version if p.valkey_magic else b"REDIS%04d" % p.version
        if not (items and self._write(items, out)):
            self._crc = crc64(out, self._crc)
        self.bytes_out += len(out)
        return bytes(out)

    def _write(self, items: list[RdbItem], out: bytearray) -> bool:
        """Append `items` to `out`; True when the last one was the end (checksum written)."""
        for item in items:
            if type(item) is RdbKey:
                if item.expire_ms != -1:
                    out += b"\xfc"
                    out += item.expire_ms.to_bytes(8, "little", signed=True)
                out.append(item.type)
                out += rdb_length(len(item.key))
                out += item.key
                payload = inflate_lzf_strings(
                    item.type, item.payload, valkey_types=item.valkey_types
                )
                if payload is not item.payload:
                    self.strings_inflated += 1
                out += payload
            elif type(item) is RdbSelectDb:
                out += b"\xfe" + rdb_length(item.db)
            elif type(item) is RdbAux:
                out += b"\xfa" + rdb_raw_string(item.key) + rdb_raw_string(item.value)
            elif type(item) is RdbFunction:
                out += b"\xf5" + rdb_raw_string(item.code)
            elif type(item) is RdbModuleAux:
                out += b"\xf7" + rdb_length(item.module_id) + item.payload
            elif type(item) is RdbEnd:
                out.append(0xFF)
                if self.parser.version >= 5:
                    crc = crc64(out, self._crc)
                    if not item.checksum_ok:
                        crc ^= 1  # the source's did not match: neither will this one
                    out += crc.to_bytes(8, "little")
                return True
        return False


BOUNDARY: Final = None  # in StreamRewriter's output: end the zlib stream here
_MARK_LEN = 40
_LINE_MAX = 1 << 16  # a reply line before the RDB longer than this is not one

_HEAD, _AWAIT_RDB, _RDB, _RELAY = range(4)


class StreamRewriter:
    """The database's side of one replication connection, with its full sync rewritten."""

    def __init__(self) -> None:
        self._state = _HEAD
        self._buf = bytearray()
        self._mark = b""
        self._remaining = -1  # bytes of a `$<length>` RDB still to come; -1 for the EOF form
        self.rdb: RdbRewriter | None = None
        self.full_syncs = 0

    @property
    def relaying(self) -> bool:
        """Past the RDB (or never one): everything passes unchanged from now on."""
        return self._state == _RELAY

    def feed(self, data: bytes) -> list[bytes | None]:
        """What to send for `data`: byte strings and `BOUNDARY`s. Raises RdbError when the RDB
        cannot be read (the gateway ends the session: nothing half-rewritten goes on)."""
        if self._state == _RELAY:
            return [data]
        self._buf += data
        out: list[bytes | None] = []
        pending = bytearray()
        while self._buf and self._state != _RELAY:
            if not self._step(pending, out):
                break
        if self._state == _RELAY and self._buf:
            pending += self._buf
            self._buf.clear()
        if pending:
            out.append(bytes(pending))
        return out

    def _step(self, pending: bytearray, out: list[bytes | None]) -> bool:
        """One reply, or one piece of the RDB; False when more input is needed."""
        buf = self._buf
        if self._state == _RDB:
            self._rdb_step(pending, out)
            return False
        if buf[0] == 0x0A:  # a keepalive newline while the source prepares the snapshot
            pending.append(0x0A)
            del buf[:1]
            return True
        nl = buf.find(b"\n")
        if nl < 0:
            if len(buf) > _LINE_MAX:
                self._state = _RELAY
            return False
        line = bytes(buf[: nl + 1])
        if self._state == _AWAIT_RDB:
            return self._rdb_header(line, pending)
        head = line[:1]
        if line.startswith(b"+FULLRESYNC"):
            self._state = _AWAIT_RDB
        elif line.startswith(b"+CONTINUE"):
            self._state = _RELAY
        elif head == b"$" and line[1:-2].isdigit():  # a bulk reply (CONFIG GET's values)
            size = nl + 1 + int(line[1:-2]) + 2
            if size > _LINE_MAX:
                self._state = _RELAY
                return False
            if len(buf) < size:
                return False
            line = bytes(buf[:size])
        elif head not in (b"+", b"-", b":", b"*", b"$"):
            self._state = _RELAY  # not the replies of a replication handshake
            return False
        pending += line
        del buf[: len(line)]
        return True

    def _rdb_header(self, line: bytes, pending: bytearray) -> bool:
        body = line.rstrip(b"\r\n")
        if body.startswith(b"$EOF:") and len(body) == 5 + _MARK_LEN:
            self._mark, self._remaining = body[5:], -1
        elif body[:1] == b"$" and body[1:].isdigit():
            self._mark, self._remaining = os.urandom(_MARK_LEN // 2).hex().encode(), int(body[1:])
        else:  # e.g. an error instead of the snapshot
            self._state = _RELAY
            return False
        del self._buf[: len(line)]
        pending += b"$EOF:" + self._mark + b"\r\n"
        self._state = _RDB
        self.rdb = RdbRewriter()
        self.full_syncs += 1
        return True

    def _rdb_step(self, pending: bytearray, out: list[bytes | None]) -> None:
        rdb = self.rdb
        assert rdb is not None
        buf = self._buf
        if self._remaining >= 0:
            take = bytes(buf[: self._remaining])
            del buf[: len(take)]
            self._remaining -= len(take)
            if not rdb.done:
                pending += rdb.feed(take)
            elif take:
                raise RdbError("bytes after the RDB's end marker inside its bulk")
            if self._remaining:
                return
            if not rdb.done or rdb.tail:
                raise RdbError("the RDB bulk ended before the RDB's end marker")
        else:
            if not rdb.done:
                pending += rdb.feed(bytes(buf))
                buf.clear()
                if not rdb.parser.done:
                    return
                buf += rdb.tail
            if len(buf) < _MARK_LEN:
                return
            if buf[:_MARK_LEN] != self._mark:
                raise RdbError("the RDB is not followed by its EOF mark")
            del buf[:_MARK_LEN]
        pending += self._mark
        out.append(bytes(pending))
        out.append(BOUNDARY)
        pending.clear()
        self._state = _RELAY
