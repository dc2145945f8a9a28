"""Streaming RDB parser: cuts a snapshot into items without decoding the values.

A full sync receives the source's RDB snapshot in chunks of any size. `RdbParser.feed()` takes each
chunk and returns the items it completed: aux fields, database selections, functions, module aux
data, keys and the end marker. A key's value is returned as the raw bytes that follow its type byte
in the file, which is exactly the body of a DUMP payload, so the fast path can RESTORE it without
ever decoding elements; `decode.py` turns the same bytes into plain commands when the destination
cannot RESTORE them.

Per-key work is the hot path of a full sync, so each value type has a skipper that only finds where
the value ends: compact encodings (listpack, ziplist, intset, zipmap) are one length-prefixed blob,
LZF strings are skipped compressed. Large values that arrive over many chunks are scanned
incrementally: a skipper that runs out of data hands back a continuation from its last complete
element, so a million-element value is read once, not once per chunk.

Format references: Redis src/rdb.h, src/rdb.c (rdbLoadRioWithLoadingCtx, rdbLoadObject) and Valkey
src/rdb.h (VALKEY magic and RDB 80+, where type 22 is Valkey's hash with field expiry).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import lzf

from replication.syncer.crc64 import crc64

Buf = bytes | bytearray

# Value types (the byte before the key).
RDB_TYPE_STRING = 0
RDB_TYPE_LIST = 1
RDB_TYPE_SET = 2
RDB_TYPE_ZSET = 3
RDB_TYPE_HASH = 4
RDB_TYPE_ZSET_2 = 5
RDB_TYPE_MODULE_PRE_GA = 6
RDB_TYPE_MODULE_2 = 7
RDB_TYPE_HASH_ZIPMAP = 9
RDB_TYPE_LIST_ZIPLIST = 10
RDB_TYPE_SET_INTSET = 11
RDB_TYPE_ZSET_ZIPLIST = 12
RDB_TYPE_HASH_ZIPLIST = 13
RDB_TYPE_LIST_QUICKLIST = 14
RDB_TYPE_STREAM_LISTPACKS = 15
RDB_TYPE_HASH_LISTPACK = 16
RDB_TYPE_ZSET_LISTPACK = 17
RDB_TYPE_LIST_QUICKLIST_2 = 18
RDB_TYPE_STREAM_LISTPACKS_2 = 19
RDB_TYPE_SET_LISTPACK = 20
RDB_TYPE_STREAM_LISTPACKS_3 = 21
# Redis 7.4 hashes with field expiry (REDIS magic); 22/23 only came from 7.4 release candidates.
RDB_TYPE_HASH_METADATA_PRE_GA = 22
RDB_TYPE_HASH_LISTPACK_EX_PRE_GA = 23
RDB_TYPE_HASH_METADATA = 24
RDB_TYPE_HASH_LISTPACK_EX = 25
# Valkey 9 (VALKEY magic, RDB >= 80) gives 22 another meaning: a hash whose fields may expire.
RDB_TYPE_VALKEY_HASH_2 = 22

# Opcodes (bytes that are not value types).
RDB_OPCODE_SLOT_IMPORT = 243  # Valkey 9: slot import state
RDB_OPCODE_SLOT_INFO = 244
RDB_OPCODE_FUNCTION2 = 245
RDB_OPCODE_FUNCTION_PRE_GA = 246
RDB_OPCODE_MODULE_AUX = 247
RDB_OPCODE_IDLE = 248
RDB_OPCODE_FREQ = 249
RDB_OPCODE_AUX = 250
RDB_OPCODE_RESIZEDB = 251
RDB_OPCODE_EXPIRETIME_MS = 252
RDB_OPCODE_EXPIRETIME = 253
RDB_OPCODE_SELECTDB = 254
RDB_OPCODE_EOF = 255

# Sub-opcodes of module-serialized data.
RDB_MODULE_OPCODE_EOF = 0
RDB_MODULE_OPCODE_SINT = 1
RDB_MODULE_OPCODE_UINT = 2
RDB_MODULE_OPCODE_FLOAT = 3
RDB_MODULE_OPCODE_DOUBLE = 4
RDB_MODULE_OPCODE_STRING = 5

# Quicklist node containers (RDB_TYPE_LIST_QUICKLIST_2).
QUICKLIST_NODE_PLAIN = 1
QUICKLIST_NODE_PACKED = 2

REDIS_MAX_RDB_VERSION = 12  # Redis 7.4 / 8.x
VALKEY_MIN_RDB_VERSION = 80  # Valkey 9.0 starts the VALKEY magic at 80
VALKEY_MAX_RDB_VERSION = 81

# An LZF block cannot expand more than this (a 3-byte back reference copies at most 264 bytes).
_LZF_MAX_RATIO = 90


class RdbError(Exception):
    """The input is not an RDB stream we can read: malformed, bad checksum or unsupported."""


@dataclass(slots=True)
class RdbKey:
    """One key: its value's serialized bytes exactly as in the RDB, without the type byte."""

    db: int
    key: bytes
    type: int
    payload: bytes
    expire_ms: int  # absolute unix ms, -1 for no expiry
    # True when `type` >= 22 follows Valkey 9's numbering (VALKEY magic) rather than Redis 7.4's.
    valkey_types: bool = False


@dataclass(slots=True)
class RdbAux:
    key: bytes
    value: bytes


@dataclass(slots=True)
class RdbSelectDb:
    db: int


@dataclass(slots=True)
class RdbFunction:
    """A function library's source, for FUNCTION LOAD REPLACE."""

    code: bytes


@dataclass(slots=True)
class RdbModuleAux:
    """Module data outside the keyspace; payload is everything after the module id, EOF included."""

    module_id: int
    payload: bytes


@dataclass(slots=True)
class RdbEnd:
    checksum_ok: bool  # also True when the file carries no checksum (rdbchecksum no, or RDB < 5)


@dataclass(slots=True)
class RdbPacked:
    """Consecutive keys already turned into commands by the parser's `packer`, in order."""

    cmds: list[bytes]


RdbItem = RdbKey | RdbAux | RdbSelectDb | RdbFunction | RdbModuleAux | RdbEnd | RdbPacked

# RdbParser.packer: (key, type, buffer, start, end, expire_ms) -> the key as one packed command,
# from the value's bytes buffer[start:end]; or None to have it returned as an RdbKey instead.
Packer = Callable[[bytes, int, bytes, int, int, int], bytes | None]

# A continuation of a value skipper: called with (buffer, offset of the first unread element), it
# returns where the value ends (or raises _Short again).
_Resume = Callable[[Buf, int], int]
_Skipper = Callable[[Buf, int], int]


class _Short(IndexError):
    """Internal: the buffer ends inside the current item.

    `need` is the buffer length from which another attempt can succeed (absolute offset), `at` and
    `resume` say where and how to continue scanning the value when it is resumable. A bare
    IndexError (raised by indexing past the end) means the same with nothing known.
    """

    def __init__(self, need: int, at: int = -1, resume: _Resume | None = None) -> None:
        super().__init__()
        self.need = need
        self.at = at
        self.resume = resume


# ---------------------------------------------------------------------------------------------
# Primitive readers. They index the buffer directly; reading past its end raises IndexError, which
# the parser treats as "wait for more data". Functions that return an end offset may return one
# beyond the buffer: callers compare it with len(buf).


def read_length(buf: Buf, p: int) -> tuple[int, int]:
    """An RDB length at `p`: (value, offset after it)."""
    b = buf[p]
    if b < 0x40:
        return b, p + 1
    if b < 0x80:
        return ((b & 0x3F) << 8) | buf[p + 1], p + 2
    if b == 0x80 or b == 0x81:  # 32 or 64 bits, big endian
        q = p + (5 if b == 0x80 else 9)
        if q > len(buf):
            raise _Short(q)
        return int.from_bytes(buf[p + 1 : q], "big"), q
    raise RdbError(f"invalid length encoding 0x{b:02x}")


def string_end(buf: Buf, p: int) -> int:
    """Where the RDB string starting at `p` ends (raw, integer-encoded or LZF, not decoded)."""
    b = buf[p]
    if b < 0x40:
        return p + 1 + b
    if b < 0x80:
        return p + 2 + (((b & 0x3F) << 8) | buf[p + 1])
    if b >= 0xC0:
        if b == 0xC0:
            return p + 2
        if b == 0xC1:
            return p + 3
        if b == 0xC2:
            return p + 5
        if b == 0xC3:  # LZF: compressed length, original length, data
            clen = buf[p + 1]
            if clen < 0x40:
                q = p + 2
            else:
                clen, q = read_length(buf, p + 1)
            u = buf[q]
            return q + clen + (1 if u < 0x40 else 2 if u < 0x80 else read_length(buf, q)[1] - q)
        raise RdbError(f"invalid string encoding 0x{b:02x}")
    n, q = read_length(buf, p)
    return q + n


def read_string(buf: Buf, p: int) -> tuple[bytes, int]:
    """The RDB string at `p`, decoded (integers as decimal text, LZF decompressed)."""
    b = buf[p]
    if b < 0xC0:
        if b < 0x40:
            q = p + 1
            end = q + b
        else:
            n, q = read_length(buf, p)
            end = q + n
        if end > len(buf):
            raise _Short(end)
        return bytes(buf[q:end]), end
    if b == 0xC0:
        v = buf[p + 1]
        return str(v - 256 if v > 127 else v).encode(), p + 2
    if b == 0xC1 or b == 0xC2:
        end = p + (3 if b == 0xC1 else 5)
        if end > len(buf):
            raise _Short(end)
        return str(int.from_bytes(buf[p + 1 : end], "little", signed=True)).encode(), end
    if b == 0xC3:
        clen, q = read_length(buf, p + 1)
        ulen, q = read_length(buf, q)
        end = q + clen
        if end > len(buf):
            raise _Short(end)
        return lzf_decompress(bytes(buf[q:end]), ulen), end
    raise RdbError(f"invalid string encoding 0x{b:02x}")


def lzf_decompress(data: bytes, ulen: int) -> bytes:
    """Decompress an LZF blob that must expand to exactly `ulen` bytes."""
    if ulen == 0 or not data or ulen > len(data) * _LZF_MAX_RATIO:
        raise RdbError(f"invalid LZF string ({len(data)} bytes claiming {ulen})")
    out = lzf.decompress(data, ulen)
    if out is None or len(out) != ulen:
        raise RdbError("invalid LZF compressed string")
    return bytes(out)


# ---------------------------------------------------------------------------------------------
# Value skippers: (buf, offset of the value) -> offset after the value.


def _skip_units(buf: Buf, p: int, count: int, unit: _Skipper, after: _Skipper | None) -> int:
    """Skip `count` repetitions of `unit`, then what `after` reads; resumable between units."""
    n = len(buf)
    try:
        while count:
            q = unit(buf, p)
            if q > n:
                raise _Short(q)
            p = q
            count -= 1
    except IndexError as exc:
        need = exc.need if isinstance(exc, _Short) else n + 1
        resume = partial(_skip_units, count=count, unit=unit, after=after)
        raise _Short(need, p, resume) from None
    if after is None:
        return p
    try:
        return after(buf, p)
    except IndexError as exc:
        if isinstance(exc, _Short) and exc.resume is not None:
            raise
        need = exc.need if isinstance(exc, _Short) else n + 1
        raise _Short(need, p, after) from None


def _counted(unit: _Skipper, header: int = 0) -> _Skipper:
    """A value made of `header` fixed bytes, a length N, then N units."""

    def skip(buf: Buf, p: int) -> int:
        count, p = read_length(buf, p + header)
        return _skip_units(buf, p, count, unit, None)

    return skip


def _unit_pair(buf: Buf, p: int) -> int:
    return string_end(buf, string_end(buf, p))


def _unit_zset(buf: Buf, p: int) -> int:
    # Member, then the score as text with a one-byte length (253/254/255: nan/+inf/-inf).
    q = string_end(buf, p)
    b = buf[q]
    return q + 1 if b >= 253 else q + 1 + b


def _unit_zset2(buf: Buf, p: int) -> int:
    return string_end(buf, p) + 8


def _unit_quicklist2_node(buf: Buf, p: int) -> int:
    container, q = read_length(buf, p)
    if container != QUICKLIST_NODE_PACKED and container != QUICKLIST_NODE_PLAIN:
        raise RdbError(f"invalid quicklist node container {container}")
    return string_end(buf, q)


def _unit_hash_ttl_field(buf: Buf, p: int) -> int:
    # Redis 7.4: [ttl length][field][value].
    q = read_length(buf, p)[1]
    return string_end(buf, string_end(buf, q))


def _unit_valkey_hash2_field(buf: Buf, p: int) -> int:
    # Valkey 9: [field][value][8-byte expiry, -1 for none].
    return string_end(buf, string_end(buf, p)) + 8


def _unit_stream_node(buf: Buf, p: int) -> int:
    # Master ID (a 16-byte string) and the node's listpack.
    return string_end(buf, string_end(buf, p))


def _skip_hash_listpack_ex(buf: Buf, p: int) -> int:
    return string_end(buf, p + 8)


def _skip_lengths(buf: Buf, p: int, k: int) -> int:
    for _ in range(k):
        p = read_length(buf, p)[1]
    return p


def _stream_tail(buf: Buf, p: int, t: int) -> int:
    """Stream metadata after the listpacks: length, IDs, consumer groups with PELs and consumers."""
    p = _skip_lengths(buf, p, 3 if t == RDB_TYPE_STREAM_LISTPACKS else 8)
    groups, p = read_length(buf, p)
    for _ in range(groups):
        p = string_end(buf, p)
        p = _skip_lengths(buf, p, 2 if t == RDB_TYPE_STREAM_LISTPACKS else 3)
        pel, p = read_length(buf, p)
        for _ in range(pel):
            p = read_length(buf, p + 24)[1]  # 16-byte ID, 8-byte delivery time, delivery count
        consumers, p = read_length(buf, p)
        for _ in range(consumers):
            p = string_end(buf, p)
            p += 16 if t == RDB_TYPE_STREAM_LISTPACKS_3 else 8  # seen (and active) time
            cpel, p = read_length(buf, p)
            p += 16 * cpel
    return p


def _stream_skipper(t: int) -> _Skipper:
    tail = partial(_stream_tail, t=t)

    def skip(buf: Buf, p: int) -> int:
        count, p = read_length(buf, p)
        return _skip_units(buf, p, count, _unit_stream_node, tail)

    return skip


def module_ops_end(buf: Buf, p: int) -> int:
    """Skip module-serialized data (opcode, value)... up to and including its EOF opcode."""
    while True:
        op, p = read_length(buf, p)
        if op == RDB_MODULE_OPCODE_EOF:
            return p
        if op in (RDB_MODULE_OPCODE_SINT, RDB_MODULE_OPCODE_UINT):
            p = read_length(buf, p)[1]
        elif op == RDB_MODULE_OPCODE_FLOAT:
            p += 4
        elif op == RDB_MODULE_OPCODE_DOUBLE:
            p += 8
        elif op == RDB_MODULE_OPCODE_STRING:
            p = string_end(buf, p)
        else:
            raise RdbError(f"invalid module value opcode {op}")


def _skip_module2(buf: Buf, p: int) -> int:
    return module_ops_end(buf, read_length(buf, p)[1])


# Values that are one RDB string: a string, or a compact encoding's blob.
ONE_STRING_TYPES = (
    RDB_TYPE_STRING,
    RDB_TYPE_HASH_ZIPMAP,
    RDB_TYPE_LIST_ZIPLIST,
    RDB_TYPE_SET_INTSET,
    RDB_TYPE_ZSET_ZIPLIST,
    RDB_TYPE_HASH_ZIPLIST,
    RDB_TYPE_HASH_LISTPACK,
    RDB_TYPE_ZSET_LISTPACK,
    RDB_TYPE_SET_LISTPACK,
)


def _build_skippers(valkey: bool) -> list[_Skipper | None]:
    table: list[_Skipper | None] = [None] * 256
    for t in ONE_STRING_TYPES:
        table[t] = string_end
    table[RDB_TYPE_LIST] = table[RDB_TYPE_SET] = _counted(string_end)
    table[RDB_TYPE_LIST_QUICKLIST] = _counted(string_end)
    table[RDB_TYPE_ZSET] = _counted(_unit_zset)
    table[RDB_TYPE_HASH] = _counted(_unit_pair)
    table[RDB_TYPE_ZSET_2] = _counted(_unit_zset2)
    table[RDB_TYPE_MODULE_2] = _skip_module2
    table[RDB_TYPE_LIST_QUICKLIST_2] = _counted(_unit_quicklist2_node)
    for t in (RDB_TYPE_STREAM_LISTPACKS, RDB_TYPE_STREAM_LISTPACKS_2, RDB_TYPE_STREAM_LISTPACKS_3):
        table[t] = _stream_skipper(t)
    if valkey:
        table[RDB_TYPE_VALKEY_HASH_2] = _counted(_unit_valkey_hash2_field)
    else:
        table[RDB_TYPE_HASH_METADATA_PRE_GA] = _counted(_unit_hash_ttl_field)
        table[RDB_TYPE_HASH_LISTPACK_EX_PRE_GA] = string_end
        table[RDB_TYPE_HASH_METADATA] = _counted(_unit_hash_ttl_field, header=8)
        table[RDB_TYPE_HASH_LISTPACK_EX] = _skip_hash_listpack_ex
    return table


_REDIS_SKIPPERS = _build_skippers(valkey=False)
_VALKEY_SKIPPERS = _build_skippers(valkey=True)


def value_end(rdb_type: int, buf: Buf, p: int = 0, *, valkey_types: bool = False) -> int:
    """Where a value of `rdb_type` starting at `p` ends. Raises RdbError if it is cut short."""
    skip = (_VALKEY_SKIPPERS if valkey_types else _REDIS_SKIPPERS)[rdb_type]
    if skip is None:
        raise RdbError(f"unsupported value type {rdb_type}")
    try:
        end = skip(buf, p)
    except IndexError:
        raise RdbError(f"truncated value of type {rdb_type}") from None
    if end > len(buf):
        raise RdbError(f"truncated value of type {rdb_type}")
    return end


# ---------------------------------------------------------------------------------------------


class RdbParser:
    """Incremental RDB parser: feed() it the snapshot in chunks, it returns the completed items.

    It keeps only the incomplete item plus the last chunk in memory. After the end marker `done`
    is True and any further bytes (e.g. a diskless transfer's EOF mark) are kept in `tail`.

    `packer` (None by default): a key whose bytes are in one chunk is first offered to it, and
    what it returns, a packed command, takes the key's place among the items (no RdbKey, no
    copy of the payload but the one the packer makes), consecutive ones in one `RdbPacked`:
    the full sync's fast path (dump.py), with no Python work per key left to its caller.
    """

    def __init__(self) -> None:
        self.version = 0
        self.valkey_magic = False
        self.bytes_consumed = 0
        self.done = False
        self.keys = 0
        self.tail = b""
        self._db = 0
        self._expire = -1
        self._crc = 0
        self._skippers = _REDIS_SKIPPERS
        # The incomplete item (from its first byte) and when to look at it again.
        self._pending: bytearray | None = bytearray()
        self._need = 9  # the header
        self._resume: _Resume | None = None
        self._at = 0
        self._error: str | None = None
        self.packer: Packer | None = None

    def feed(self, data: bytes | bytearray | memoryview) -> list[RdbItem]:
        """Append bytes; return every item completed by them (may be empty). Raises RdbError.

        After an RdbError the parser is broken for good: every later call raises it again.
        """
        if self._error is not None:
            raise RdbError(self._error)
        try:
            return self._feed(data)
        except RdbError as exc:
            self._error = str(exc)
            raise

    def _feed(self, data: bytes | bytearray | memoryview) -> list[RdbItem]:
        items: list[RdbItem] = []
        if self.done:
            self.tail += bytes(data)
            return items
        pending = self._pending
        if pending is None:
            self._parse(data if type(data) is bytes else bytes(data), items)
            return items
        pending += data
        if len(pending) < self._need:
            return items
        self._pending = None
        resume = self._resume
        if resume is None:
            buf = bytes(pending)
            del pending  # one copy of a large item in memory, not two
            self._parse(buf, items)
            return items
        try:
            end = resume(pending, self._at)
            if end > len(pending):
                raise _Short(end)
        except IndexError as exc:
            self._pending = pending
            if isinstance(exc, _Short):
                self._need = max(exc.need, len(pending) + 1)
                if exc.resume is not None:
                    self._resume, self._at = exc.resume, exc.at
            else:
                self._need = len(pending) + 1
            return items
        self._resume = None
        with memoryview(pending) as view:
            self._complete_key(pending, end, items)
            rest = bytes(view[end:])
        self._parse(rest, items)
        return items

    def close(self) -> None:
        """Declare the input finished: raises RdbError if the end marker was not reached."""
        if self._error is not None:
            raise RdbError(self._error)
        if not self.done:
            raise RdbError(f"truncated RDB: input ended after {self.bytes_consumed} bytes")

    # -- internals ------------------------------------------------------------------------

    def _complete_key(self, buf: bytearray, end: int, items: list[RdbItem]) -> None:
        """A key item that arrived over several chunks is now whole in buf[:end]."""
        t = buf[0]
        key, p = read_string(buf, 1)
        with memoryview(buf) as view:
            payload = bytes(view[p:end])
            self._crc = crc64(view[:end], self._crc)
        valkey = self._skippers is _VALKEY_SKIPPERS
        items.append(RdbKey(self._db, key, t, payload, self._expire, valkey))
        self._expire = -1
        self.keys += 1
        self.bytes_consumed += end

    def _header(self, buf: bytes) -> int:
        magic = buf[:9]
        if magic[:5] == b"REDIS" and magic[5:].isdigit():
            version = int(magic[5:])
            ok = 1 <= version <= REDIS_MAX_RDB_VERSION
        elif magic[:6] == b"VALKEY" and magic[6:].isdigit():
            version = int(magic[6:])
            ok = VALKEY_MIN_RDB_VERSION <= version <= VALKEY_MAX_RDB_VERSION
            self.valkey_magic = True
            self._skippers = _VALKEY_SKIPPERS
        else:
            raise RdbError(f"not an RDB stream (starts with {bytes(magic)!r})")
        if not ok:
            raise RdbError(f"unsupported RDB version {version} ({magic.decode()})")
        self.version = version
        return 9

    def _parse(self, buf: bytes, items: list[RdbItem]) -> None:
        """Parse complete items from buf; keep the incomplete rest for the next feed()."""
        n = len(buf)
        pos = 0
        if not self.version:
            if n < 9:
                self._pending, self._need = bytearray(buf), 9
                return
            pos = self._header(buf)
        append = items.append
        skippers = self._skippers
        valkey = skippers is _VALKEY_SKIPPERS
        db = self._db
        expire = self._expire
        keys = self.keys
        packer = self.packer
        run: RdbPacked | None = None  # the packed keys the next one joins while it is the last item
        run_cmds: list[bytes] = []
        start = pos
        try:
            while True:
                start = pos
                t = buf[pos]
                if t < 0xF2:
                    skip = skippers[t]
                    if skip is None:
                        raise RdbError(f"unsupported value type {t} at offset {self._offset(pos)}")
                    p = pos + 1
                    b = buf[p]
                    if b < 0x40:
                        key = buf[p + 1 : p + 1 + b]
                        p += 1 + b
                    else:
                        key, p = read_string(buf, p)
                    if t == RDB_TYPE_STRING:  # most keys: skip string_end's call
                        b = buf[p]
                        if b < 0x40:
                            end = p + 1 + b
                        elif b < 0x80:
                            end = p + 2 + (((b & 0x3F) << 8) | buf[p + 1])
                        else:
                            end = string_end(buf, p)
                    else:
                        end = skip(buf, p)
                    if end > n:
                        raise _Short(end)
                    cmd = None if packer is None else packer(key, t, buf, p, end, expire)
                    if cmd is None:
                        append(RdbKey(db, key, t, buf[p:end], expire, valkey))
                    elif run is not None and items[-1] is run:
                        run_cmds.append(cmd)
                    else:
                        run_cmds = [cmd]
                        run = RdbPacked(run_cmds)
                        append(run)
                    expire = -1
                    keys += 1
                    pos = end
                elif t == RDB_OPCODE_EXPIRETIME_MS:
                    end = pos + 9
                    if end > n:
                        raise _Short(end)
                    expire = int.from_bytes(buf[pos + 1 : end], "little", signed=True)
                    pos = end
                elif t == RDB_OPCODE_SELECTDB:
                    db, pos = read_length(buf, pos + 1)
                    append(RdbSelectDb(db))
                elif t == RDB_OPCODE_AUX:
                    k, p = read_string(buf, pos + 1)
                    v, pos = read_string(buf, p)
                    append(RdbAux(k, v))
                elif t == RDB_OPCODE_RESIZEDB:
                    pos = _skip_lengths(buf, pos + 1, 2)
                elif t == RDB_OPCODE_EOF:
                    end = pos + 1 if self.version < 5 else pos + 9
                    if end > n:
                        raise _Short(end)
                    with memoryview(buf) as view:
                        self._crc = crc64(view[: pos + 1], self._crc)
                    expected = int.from_bytes(buf[pos + 1 : end], "little")
                    append(RdbEnd(self.version < 5 or expected in (0, self._crc)))
                    self.bytes_consumed += end
                    self.done = True
                    self.tail = buf[end:]
                    start = pos = end
                    break
                elif t == RDB_OPCODE_EXPIRETIME:
                    end = pos + 5
                    if end > n:
                        raise _Short(end)
                    expire = int.from_bytes(buf[pos + 1 : end], "little", signed=True) * 1000
                    pos = end
                elif t == RDB_OPCODE_IDLE:
                    pos = read_length(buf, pos + 1)[1]
                elif t == RDB_OPCODE_FREQ:
                    pos += 2
                    if pos > n:
                        raise _Short(pos)
                elif t == RDB_OPCODE_FUNCTION2:
                    code, pos = read_string(buf, pos + 1)
                    append(RdbFunction(code))
                elif t == RDB_OPCODE_MODULE_AUX:
                    module_id, p = read_length(buf, pos + 1)
                    when_op, q = read_length(buf, p)
                    if when_op != RDB_MODULE_OPCODE_UINT:
                        raise RdbError(
                            f"module aux data without 'when' at offset {self._offset(pos)}"
                        )
                    q = read_length(buf, q)[1]
                    end = module_ops_end(buf, q)
                    append(RdbModuleAux(module_id, buf[p:end]))
                    pos = end
                elif t == RDB_OPCODE_SLOT_INFO:
                    pos = _skip_lengths(buf, pos + 1, 3)
                elif t == RDB_OPCODE_SLOT_IMPORT and valkey:
                    p = string_end(buf, pos + 1)
                    ranges, p = read_length(buf, p)
                    pos = _skip_lengths(buf, p, 2 * ranges)
                elif t == RDB_OPCODE_FUNCTION_PRE_GA:
                    raise RdbError(
                        "functions in the pre-GA format of Redis 7.0 RC1/RC2 are not supported"
                    )
                else:
                    raise RdbError(f"unknown RDB opcode {t} at offset {self._offset(pos)}")
        except IndexError as exc:
            self._suspend(buf, start, exc)
        finally:
            self._db = db
            self._expire = expire
            self.keys = keys

    def _offset(self, pos: int) -> int:
        return self.bytes_consumed + pos

    def _suspend(self, buf: bytes, start: int, exc: IndexError) -> None:
        """Everything before `start` is complete: checksum it and keep the rest for later."""
        with memoryview(buf) as view:
            self._crc = crc64(view[:start], self._crc)
            self.bytes_consumed += start
            n = len(buf)
            if start == n:
                self._pending, self._resume = None, None
                return
            self._pending = bytearray(view[start:])
        if isinstance(exc, _Short):
            self._need = max(exc.need - start, n - start + 1)
            if exc.resume is not None:
                self._resume, self._at = exc.resume, exc.at - start
                return
        else:
            self._need = n - start + 1
        self._resume = None
