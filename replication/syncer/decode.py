"""Fallback of a full sync: a value from the RDB turned into plain Redis commands.

Used when the destination refuses the source's RDB version in RESTORE (e.g. a Valkey 8 / Redis 7.2
source, RDB 11, into Redis 7.0, RDB 10). Every encoding any RDB version may carry is decoded here:
ziplist, listpack, intset, zipmap, quicklists (LZF-compressed nodes included), Redis 7.4 and
Valkey 9 hashes with field expiry, streams with consumer groups and pending entries. Module values
can only be RESTOREd and raise DecodeError.

Correctness before speed: this path runs only when RESTORE cannot.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator

from replication.syncer.rdb import (
    QUICKLIST_NODE_PACKED,
    QUICKLIST_NODE_PLAIN,
    RDB_TYPE_HASH,
    RDB_TYPE_HASH_LISTPACK,
    RDB_TYPE_HASH_LISTPACK_EX,
    RDB_TYPE_HASH_LISTPACK_EX_PRE_GA,
    RDB_TYPE_HASH_METADATA,
    RDB_TYPE_HASH_METADATA_PRE_GA,
    RDB_TYPE_HASH_ZIPLIST,
    RDB_TYPE_HASH_ZIPMAP,
    RDB_TYPE_LIST,
    RDB_TYPE_LIST_QUICKLIST,
    RDB_TYPE_LIST_QUICKLIST_2,
    RDB_TYPE_LIST_ZIPLIST,
    RDB_TYPE_MODULE_2,
    RDB_TYPE_MODULE_PRE_GA,
    RDB_TYPE_SET,
    RDB_TYPE_SET_INTSET,
    RDB_TYPE_SET_LISTPACK,
    RDB_TYPE_STREAM_LISTPACKS,
    RDB_TYPE_STREAM_LISTPACKS_2,
    RDB_TYPE_STREAM_LISTPACKS_3,
    RDB_TYPE_STRING,
    RDB_TYPE_VALKEY_HASH_2,
    RDB_TYPE_ZSET,
    RDB_TYPE_ZSET_2,
    RDB_TYPE_ZSET_LISTPACK,
    RDB_TYPE_ZSET_ZIPLIST,
    RdbError,
    RdbKey,
    read_length,
    read_string,
)

Element = bytes | int

_STREAM_ITEM_FLAG_DELETED = 1
_STREAM_ITEM_FLAG_SAMEFIELDS = 2
_U64_MAX = (1 << 64) - 1


class DecodeError(RdbError):
    """The value cannot be turned into commands (a module value) or its encoding is corrupt."""


def value_commands(
    key: bytes, item: RdbKey, *, batch: int = 512, legacy_streams: bool = False
) -> Iterator[list[bytes]]:
    """Plain commands that recreate the value of `item` under `key`.

    The first command replaces whatever the destination holds under `key` (SET, or DEL before the
    writes); no command carries more than `batch` arguments after the key, except a single stream
    entry (XADD) which cannot be split. Hash fields with expiry get HPEXPIREAT (Redis 7.4+ and
    Valkey 9+ destinations), the key's expiry is PEXPIREAT at the end.

    Streams are restored with their Redis 7.0 metadata (XSETID ENTRIESADDED/MAXDELETEDID, XGROUP
    CREATE ENTRIESREAD); `legacy_streams=True` leaves it out for destinations older than 7.0.
    """
    if batch < 2:
        raise ValueError("batch must be at least 2")
    try:
        yield from _value_commands(key, item, batch, legacy_streams)
    except DecodeError:
        raise
    except (RdbError, IndexError, ValueError, struct.error) as exc:
        raise DecodeError(f"corrupt value of type {item.type} for key {key!r}: {exc}") from None
    if item.expire_ms != -1:
        yield [b"PEXPIREAT", key, str(max(item.expire_ms, 1)).encode()]


def _value_commands(
    key: bytes, item: RdbKey, batch: int, legacy_streams: bool
) -> Iterator[list[bytes]]:
    t = item.type
    payload = item.payload
    if t == RDB_TYPE_STRING:
        yield [b"SET", key, read_string(payload, 0)[0]]
        return
    if t in (RDB_TYPE_MODULE_2, RDB_TYPE_MODULE_PRE_GA):
        raise DecodeError(f"key {key!r} holds a module value: it can only be RESTOREd")
    valkey_hash = item.valkey_types and t == RDB_TYPE_VALKEY_HASH_2
    if (item.valkey_types and t > RDB_TYPE_VALKEY_HASH_2) or t not in _DECODABLE:
        raise DecodeError(f"unsupported value type {t} for key {key!r}")
    yield [b"DEL", key]
    if t in _LIST_TYPES:
        yield from _batched(b"RPUSH", key, map(_text, list_elements(t, payload)), batch)
    elif t in _SET_TYPES:
        yield from _batched(b"SADD", key, map(_text, set_members(t, payload)), batch)
    elif t in _ZSET_TYPES:
        yield from _batched(b"ZADD", key, _flat(zset_pairs(t, payload), swap=True), batch & ~1)
    elif valkey_hash:  # Valkey 9 numbering: 22 is its hash with field expiry
        yield from _hash_commands(key, valkey_hash2_fields(payload), batch)
    elif t in _HASH_TYPES:
        yield from _hash_commands(key, hash_fields(t, payload), batch)
    else:
        yield from _stream_commands(key, decode_stream(t, payload), batch, legacy_streams)


_LIST_TYPES = (
    RDB_TYPE_LIST,
    RDB_TYPE_LIST_ZIPLIST,
    RDB_TYPE_LIST_QUICKLIST,
    RDB_TYPE_LIST_QUICKLIST_2,
)
_SET_TYPES = (RDB_TYPE_SET, RDB_TYPE_SET_INTSET, RDB_TYPE_SET_LISTPACK)
_ZSET_TYPES = (RDB_TYPE_ZSET, RDB_TYPE_ZSET_2, RDB_TYPE_ZSET_ZIPLIST, RDB_TYPE_ZSET_LISTPACK)
_HASH_TYPES = (
    RDB_TYPE_HASH,
    RDB_TYPE_HASH_ZIPMAP,
    RDB_TYPE_HASH_ZIPLIST,
    RDB_TYPE_HASH_LISTPACK,
    RDB_TYPE_HASH_METADATA_PRE_GA,
    RDB_TYPE_HASH_LISTPACK_EX_PRE_GA,
    RDB_TYPE_HASH_METADATA,
    RDB_TYPE_HASH_LISTPACK_EX,
)
_STREAM_TYPES = (
    RDB_TYPE_STREAM_LISTPACKS,
    RDB_TYPE_STREAM_LISTPACKS_2,
    RDB_TYPE_STREAM_LISTPACKS_3,
)
_DECODABLE = frozenset(_LIST_TYPES + _SET_TYPES + _ZSET_TYPES + _HASH_TYPES + _STREAM_TYPES)


def _text(e: Element) -> bytes:
    return str(e).encode() if isinstance(e, int) else e


def _flat(pairs: Iterable[tuple[bytes, bytes]], *, swap: bool = False) -> Iterator[bytes]:
    for a, b in pairs:
        if swap:
            yield b
            yield a
        else:
            yield a
            yield b


def _batched(command: bytes, key: bytes, args: Iterable[bytes], size: int) -> Iterator[list[bytes]]:
    cmd = [command, key]
    for a in args:
        cmd.append(a)
        if len(cmd) - 2 >= size:
            yield cmd
            cmd = [command, key]
    if len(cmd) > 2:
        yield cmd


# ---------------------------------------------------------------------------------------------
# Compact encodings.


def _backlen_size(n: int) -> int:
    if n <= 127:
        return 1
    if n < 16383:
        return 2
    if n < 2097151:
        return 3
    if n < 268435455:
        return 4
    return 5


def listpack_entries(lp: bytes) -> list[Element]:
    """The entries of a listpack (Redis src/listpack.c): bytes for strings, int for integers."""
    if len(lp) < 7 or int.from_bytes(lp[:4], "little") != len(lp) or lp[-1] != 0xFF:
        raise DecodeError("corrupt listpack header")
    out: list[Element] = []
    p = 6
    end = len(lp) - 1
    while p < end:
        b = lp[p]
        if b < 0x80:
            out.append(b)
            size = 1
        elif b < 0xC0:
            n = b & 0x3F
            out.append(lp[p + 1 : p + 1 + n])
            size = 1 + n
        elif b < 0xE0:
            v = ((b & 0x1F) << 8) | lp[p + 1]
            out.append(v - 8192 if v >= 4096 else v)
            size = 2
        elif b < 0xF0:
            n = ((b & 0x0F) << 8) | lp[p + 1]
            out.append(lp[p + 2 : p + 2 + n])
            size = 2 + n
        elif b == 0xF0:
            n = int.from_bytes(lp[p + 1 : p + 5], "little")
            out.append(lp[p + 5 : p + 5 + n])
            size = 5 + n
        elif 0xF1 <= b <= 0xF4:
            width = (2, 3, 4, 8)[b - 0xF1]
            out.append(int.from_bytes(lp[p + 1 : p + 1 + width], "little", signed=True))
            size = 1 + width
        else:
            raise DecodeError(f"invalid listpack entry encoding 0x{b:02x}")
        p += size + _backlen_size(size)
    if p != end:
        raise DecodeError("listpack entries overrun its length")
    return out


def ziplist_entries(zl: bytes) -> list[Element]:
    """The entries of a ziplist (Redis src/ziplist.c, RDB < 10): bytes or int."""
    if len(zl) < 11 or int.from_bytes(zl[:4], "little") != len(zl) or zl[-1] != 0xFF:
        raise DecodeError("corrupt ziplist header")
    out: list[Element] = []
    p = 10
    end = len(zl) - 1
    while p < end:
        p += 1 if zl[p] < 254 else 5  # length of the previous entry
        b = zl[p]
        kind = b >> 6
        if kind == 0:
            n, p = b & 0x3F, p + 1
        elif kind == 1:
            n, p = ((b & 0x3F) << 8) | zl[p + 1], p + 2
        elif kind == 2:
            n, p = int.from_bytes(zl[p + 1 : p + 5], "big"), p + 5
        else:
            if b == 0xFE:
                width = 1
            elif b == 0xC0:
                width = 2
            elif b == 0xF0:
                width = 3
            elif b == 0xD0:
                width = 4
            elif b == 0xE0:
                width = 8
            elif 0xF1 <= b <= 0xFD:
                out.append((b & 0x0F) - 1)
                p += 1
                continue
            else:
                raise DecodeError(f"invalid ziplist entry encoding 0x{b:02x}")
            out.append(int.from_bytes(zl[p + 1 : p + 1 + width], "little", signed=True))
            p += 1 + width
            continue
        out.append(zl[p : p + n])
        p += n
    if p != end:
        raise DecodeError("ziplist entries overrun its length")
    return out


def intset_members(data: bytes) -> list[int]:
    """The members of an intset (Redis src/intset.c)."""
    width = int.from_bytes(data[:4], "little")
    count = int.from_bytes(data[4:8], "little")
    if width not in (2, 4, 8) or len(data) != 8 + width * count:
        raise DecodeError("corrupt intset")
    fmt = {2: "h", 4: "i", 8: "q"}[width]
    return list(struct.unpack_from(f"<{count}{fmt}", data, 8))


def zipmap_pairs(zm: bytes) -> list[tuple[bytes, bytes]]:
    """The field/value pairs of a zipmap (Redis 2.4 hashes, src/zipmap.c)."""

    def length(p: int) -> tuple[int, int]:
        b = zm[p]
        if b < 254:
            return b, p + 1
        if b == 254:
            return int.from_bytes(zm[p + 1 : p + 5], "little"), p + 5
        raise DecodeError("corrupt zipmap length")

    out: list[tuple[bytes, bytes]] = []
    p = 1
    while zm[p] != 0xFF:
        n, p = length(p)
        field = zm[p : p + n]
        p += n
        n, p = length(p)
        free = zm[p]
        value = zm[p + 1 : p + 1 + n]
        p += 1 + n + free
        if p >= len(zm):
            raise DecodeError("zipmap entries overrun its length")
        out.append((field, value))
    return out


def _pairs(entries: list[Element]) -> list[tuple[bytes, bytes]]:
    if len(entries) % 2:
        raise DecodeError("odd number of entries in a field/value encoding")
    it = iter(entries)
    return [(_text(a), _text(b)) for a, b in zip(it, it, strict=True)]


# ---------------------------------------------------------------------------------------------
# Values by type.


def _strings(payload: bytes, p: int, count: int) -> tuple[list[bytes], int]:
    out = []
    for _ in range(count):
        s, p = read_string(payload, p)
        out.append(s)
    return out, p


def list_elements(t: int, payload: bytes) -> Iterator[Element]:
    """The elements of a list value, head to tail."""
    if t == RDB_TYPE_LIST_ZIPLIST:
        yield from ziplist_entries(read_string(payload, 0)[0])
        return
    count, p = read_length(payload, 0)
    for _ in range(count):
        container = QUICKLIST_NODE_PACKED
        if t == RDB_TYPE_LIST_QUICKLIST_2:
            container, p = read_length(payload, p)
        node, p = read_string(payload, p)
        if t == RDB_TYPE_LIST:
            yield node
        elif t == RDB_TYPE_LIST_QUICKLIST:
            yield from ziplist_entries(node)
        elif container == QUICKLIST_NODE_PLAIN:
            yield node
        elif container == QUICKLIST_NODE_PACKED:
            yield from listpack_entries(node)
        else:
            raise DecodeError(f"invalid quicklist container {container}")


def set_members(t: int, payload: bytes) -> Iterator[Element]:
    if t == RDB_TYPE_SET_INTSET:
        yield from intset_members(read_string(payload, 0)[0])
    elif t == RDB_TYPE_SET_LISTPACK:
        yield from listpack_entries(read_string(payload, 0)[0])
    else:
        count, p = read_length(payload, 0)
        for _ in range(count):
            member, p = read_string(payload, p)
            yield member


def _score_text(score: float) -> bytes:
    if score != score:
        raise DecodeError("NaN score in a sorted set")
    return repr(score).encode()


def zset_pairs(t: int, payload: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(member, score as text) of a sorted set; scores keep their exact double value."""
    if t in (RDB_TYPE_ZSET_ZIPLIST, RDB_TYPE_ZSET_LISTPACK):
        blob = read_string(payload, 0)[0]
        entries = ziplist_entries(blob) if t == RDB_TYPE_ZSET_ZIPLIST else listpack_entries(blob)
        for member, score in _pairs(entries):
            yield member, score
        return
    count, p = read_length(payload, 0)
    for _ in range(count):
        member, p = read_string(payload, p)
        if t == RDB_TYPE_ZSET_2:
            (score,) = struct.unpack_from("<d", payload, p)
            yield member, _score_text(score)
            p += 8
        else:
            n = payload[p]
            if n == 253:
                raise DecodeError("NaN score in a sorted set")
            if n >= 254:
                text = b"inf" if n == 254 else b"-inf"
                p += 1
            else:
                text = payload[p + 1 : p + 1 + n]
                p += 1 + n
            yield member, text


def hash_fields(t: int, payload: bytes) -> Iterator[tuple[bytes, bytes, int]]:
    """(field, value, absolute expiry ms or 0 for none) of a Redis hash of any encoding."""
    if t == RDB_TYPE_HASH_ZIPMAP:
        for f, v in zipmap_pairs(read_string(payload, 0)[0]):
            yield f, v, 0
        return
    if t in (RDB_TYPE_HASH_ZIPLIST, RDB_TYPE_HASH_LISTPACK):
        blob = read_string(payload, 0)[0]
        entries = ziplist_entries(blob) if t == RDB_TYPE_HASH_ZIPLIST else listpack_entries(blob)
        for f, v in _pairs(entries):
            yield f, v, 0
        return
    if t in (RDB_TYPE_HASH_LISTPACK_EX, RDB_TYPE_HASH_LISTPACK_EX_PRE_GA):
        # [min expiry, 8 bytes (GA only)] then a listpack of field, value, expiry (0: none).
        entries = listpack_entries(
            read_string(payload, 8 if t == RDB_TYPE_HASH_LISTPACK_EX else 0)[0]
        )
        if len(entries) % 3:
            raise DecodeError("hash listpack with field expiry is not made of triples")
        for i in range(0, len(entries), 3):
            ttl = entries[i + 2]
            if not isinstance(ttl, int):
                raise DecodeError("hash field expiry is not an integer")
            yield _text(entries[i]), _text(entries[i + 1]), ttl
        return
    p = 0
    min_expire = 0
    if t == RDB_TYPE_HASH_METADATA:
        min_expire = int.from_bytes(payload[:8], "little")
        p = 8
    count, p = read_length(payload, p)
    for _ in range(count):
        ttl = 0
        if t in (RDB_TYPE_HASH_METADATA, RDB_TYPE_HASH_METADATA_PRE_GA):
            ttl, p = read_length(payload, p)
            if ttl and t == RDB_TYPE_HASH_METADATA:
                ttl += min_expire - 1  # stored relative to the hash's minimum, plus one
        field, p = read_string(payload, p)
        value, p = read_string(payload, p)
        yield field, value, ttl


def valkey_hash2_fields(payload: bytes) -> Iterator[tuple[bytes, bytes, int]]:
    """(field, value, expiry ms or 0) of Valkey 9's RDB_TYPE_HASH_2 (expiry -1 means none)."""
    count, p = read_length(payload, 0)
    for _ in range(count):
        field, p = read_string(payload, p)
        value, p = read_string(payload, p)
        expiry = int.from_bytes(payload[p : p + 8], "little", signed=True)
        p += 8
        yield field, value, (0 if expiry == -1 else max(expiry, 1))


def _hash_commands(
    key: bytes, fields: Iterable[tuple[bytes, bytes, int]], batch: int
) -> Iterator[list[bytes]]:
    expiring: dict[int, list[bytes]] = {}

    def pairs() -> Iterator[bytes]:
        for field, value, ttl in fields:
            if ttl:
                expiring.setdefault(ttl, []).append(field)
            yield field
            yield value

    yield from _batched(b"HSET", key, pairs(), batch & ~1)
    for ttl, names in expiring.items():
        for i in range(0, len(names), batch):
            part = names[i : i + batch]
            yield [b"HPEXPIREAT", key, str(ttl).encode(), b"FIELDS", str(len(part)).encode(), *part]


# ---------------------------------------------------------------------------------------------
# Streams.


class StreamValue:
    """A decoded stream: entries, IDs and consumer groups."""

    __slots__ = ("entries", "entries_added", "groups", "last_id", "length", "max_deleted_id")

    def __init__(self) -> None:
        self.entries: list[tuple[tuple[int, int], list[bytes]]] = []  # ((ms, seq), [f, v, ...])
        self.length = 0
        self.last_id = (0, 0)
        self.max_deleted_id = (0, 0)
        self.entries_added: int | None = None  # None: not recorded (RDB_TYPE_STREAM_LISTPACKS)
        self.groups: list[StreamGroup] = []


class StreamGroup:
    __slots__ = ("consumers", "entries_read", "last_id", "name", "pel")

    def __init__(self, name: bytes, last_id: tuple[int, int], entries_read: int | None) -> None:
        self.name = name
        self.last_id = last_id
        self.entries_read = entries_read  # None: not recorded; -1: unknown
        self.pel: dict[bytes, tuple[int, int]] = {}  # raw 16-byte ID -> (delivery ms, count)
        self.consumers: list[tuple[bytes, list[bytes]]] = []  # (name, raw IDs it owns)


def _stream_id(raw: bytes) -> tuple[int, int]:
    return int.from_bytes(raw[:8], "big"), int.from_bytes(raw[8:16], "big")


def _id_text(sid: tuple[int, int]) -> bytes:
    return f"{sid[0]}-{sid[1]}".encode()


def _int(e: Element) -> int:
    if isinstance(e, int):
        return e
    return int(e)


def _listpack_stream_entries(
    master: tuple[int, int], lp: list[Element], out: list[tuple[tuple[int, int], list[bytes]]]
) -> None:
    """Entries of one stream node (Redis src/t_stream.c, streamAppendItem)."""
    num_master = _int(lp[2])
    master_fields = [_text(f) for f in lp[3 : 3 + num_master]]
    i = 3 + num_master + 1  # skip the master entry's zero terminator
    while i < len(lp):
        flags = _int(lp[i])
        sid = (master[0] + _int(lp[i + 1]), master[1] + _int(lp[i + 2]))
        i += 3
        if flags & _STREAM_ITEM_FLAG_SAMEFIELDS:
            values = [_text(v) for v in lp[i : i + num_master]]
            i += num_master
            fv = [x for pair in zip(master_fields, values, strict=True) for x in pair]
        else:
            nf = _int(lp[i])
            fv = [_text(x) for x in lp[i + 1 : i + 1 + 2 * nf]]
            i += 1 + 2 * nf
        i += 1  # lp-count
        if not flags & _STREAM_ITEM_FLAG_DELETED:
            out.append((sid, fv))


def decode_stream(t: int, payload: bytes) -> StreamValue:
    s = StreamValue()
    nodes, p = read_length(payload, 0)
    for _ in range(nodes):
        node_key, p = read_string(payload, p)
        if len(node_key) != 16:
            raise DecodeError("stream node key is not a stream ID")
        lp, p = read_string(payload, p)
        _listpack_stream_entries(_stream_id(node_key), listpack_entries(lp), s.entries)

    def length() -> int:
        nonlocal p
        v, p = read_length(payload, p)
        return v

    s.length = length()
    s.last_id = (length(), length())
    if t >= RDB_TYPE_STREAM_LISTPACKS_2:
        length(), length()  # first ID: implied by the entries
        s.max_deleted_id = (length(), length())
        s.entries_added = length()
    for _ in range(length()):
        name, p = read_string(payload, p)
        last = (length(), length())
        entries_read: int | None = None
        if t >= RDB_TYPE_STREAM_LISTPACKS_2:
            entries_read = length()
            if entries_read == _U64_MAX:
                entries_read = -1
        group = StreamGroup(name, last, entries_read)
        for _ in range(length()):
            raw = payload[p : p + 16]
            delivery = int.from_bytes(payload[p + 16 : p + 24], "little", signed=True)
            p += 24
            group.pel[raw] = (delivery, length())
        for _ in range(length()):
            cname, p = read_string(payload, p)
            p += 16 if t == RDB_TYPE_STREAM_LISTPACKS_3 else 8
            owned = []
            for _ in range(length()):
                owned.append(payload[p : p + 16])
                p += 16
            group.consumers.append((cname, owned))
        s.groups.append(group)
    if p != len(payload):
        raise DecodeError("stream value has trailing bytes")
    return s


def _estimate_entries_read(s: StreamValue, gid: tuple[int, int]) -> int:
    """A group's read counter when the RDB has none (streams saved by Redis < 7.0).

    Mirrors what Redis does when it loads such a stream (streamEstimateDistanceFromFirstEverEntry)
    so that the destination ends up like a server that loaded the same file; -1 is "unknown".
    """
    added = s.length if s.entries_added is None else s.entries_added
    if not added:
        return 0
    if not s.length and gid <= s.last_id:
        return added
    if gid != (0, 0) and gid < s.max_deleted_id:
        return -1
    if gid == s.last_id:
        return added
    if gid > s.last_id:
        return -1
    first = s.entries[0][0] if s.entries else (0, 0)
    if s.max_deleted_id == (0, 0) or s.max_deleted_id < first:
        if gid < first:
            return added - s.length
        if gid == first:
            return added - s.length + 1
    return -1


def _stream_commands(key: bytes, s: StreamValue, batch: int, legacy: bool) -> Iterator[list[bytes]]:
    """The stream as commands, its consumer groups' pending entries included.

    A pending entry may outlive its message (XDEL after delivery): XCLAIM cannot make a PEL
    entry for an ID the stream does not hold. So such IDs are first added as placeholder
    messages in their place in the ID order, claimed like the others, then deleted again; the
    stream's own counters (last ID, entries added, max deleted ID) are set last, as the source
    had them."""
    existing = {sid for sid, _ in s.entries}
    # Pending entries whose message is gone.
    orphans = sorted({_stream_id(raw) for g in s.groups for raw in g.pel} - existing)
    entries = sorted([*s.entries, *((sid, [b"__replicaof", b"deleted"]) for sid in orphans)])
    for sid, fv in entries:
        yield [b"XADD", key, _id_text(sid), *fv]
    if not entries:
        # An empty stream exists only with metadata; MKSTREAM creates it.
        yield [b"XGROUP", b"CREATE", key, b"replicaof-tmp", b"0", b"MKSTREAM"]
        yield [b"XGROUP", b"DESTROY", key, b"replicaof-tmp"]
    held = existing | set(orphans)
    for g in s.groups:
        create = [b"XGROUP", b"CREATE", key, g.name, _id_text(g.last_id)]
        if not legacy:
            entries_read = g.entries_read
            if entries_read is None:
                entries_read = _estimate_entries_read(s, g.last_id)
            create += [b"ENTRIESREAD", str(entries_read).encode()]
        yield create
        for cname, owned in g.consumers:
            yield [b"XGROUP", b"CREATECONSUMER", key, g.name, cname]
            # XCLAIM sets delivery time and count per command: group IDs that share both.
            by_meta: dict[tuple[int, int], list[bytes]] = {}
            for raw in owned:
                sid = _stream_id(raw)
                if sid in held and raw in g.pel:
                    by_meta.setdefault(g.pel[raw], []).append(_id_text(sid))
            for (delivery, count), ids in by_meta.items():
                for i in range(0, len(ids), batch):
                    yield [
                        b"XCLAIM",
                        key,
                        g.name,
                        cname,
                        b"0",
                        *ids[i : i + batch],
                        b"TIME",
                        str(delivery).encode(),
                        b"RETRYCOUNT",
                        str(count).encode(),
                        b"FORCE",
                        b"JUSTID",
                    ]
    for i in range(0, len(orphans), batch):
        yield [b"XDEL", key, *(_id_text(sid) for sid in orphans[i : i + batch])]
    setid = [b"XSETID", key, _id_text(s.last_id)]
    if not legacy:
        added = s.length if s.entries_added is None else s.entries_added
        setid += [b"ENTRIESADDED", str(added).encode(), b"MAXDELETEDID", _id_text(s.max_deleted_id)]
    yield setid
