"""The fallback path: RDB values decoded into plain commands, checked against real servers."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from replication.syncer.decode import (
    DecodeError,
    intset_members,
    listpack_entries,
    value_commands,
    ziplist_entries,
    zipmap_pairs,
)
from replication.syncer.dump import restore_command
from replication.syncer.rdb import (
    RDB_TYPE_HASH_LISTPACK_EX,
    RDB_TYPE_HASH_METADATA,
    RDB_TYPE_HASH_METADATA_PRE_GA,
    RDB_TYPE_LIST_QUICKLIST_2,
    RDB_TYPE_MODULE_2,
    RDB_TYPE_SET,
    RDB_TYPE_STRING,
    RDB_TYPE_VALKEY_HASH_2,
    RdbKey,
)
from tests.replication.syncer.rdb_fixtures import (
    MODULE_ID,
    VALKEY_SERVER,
    assert_applies_like_a_server_load,
    assert_same_keyspace,
    crafted_file,
    decode_all,
    digest,
    fill_big_values,
    functions,
    intset,
    keys_of,
    keyspace,
    listpack,
    module_ops,
    old_files,
    parse,
    populate,
    rdb_int,
    rdb_len,
    rdb_lzf,
    rdb_str,
    rdb_version,
    reset_servers,
    server_fixture,
    snapshot,
    ziplist,
    zipmap,
)
from tests.support.servers import RedisServer

redis_a = server_fixture()
redis_b = server_fixture()
valkey_a = server_fixture(VALKEY_SERVER)


@pytest.fixture(autouse=True)
def _empty() -> None:
    reset_servers()


# ---------------------------------------------------------------------------------------------
# Compact encodings.

_ENTRIES: list[bytes | int] = [
    b"",
    b"a",
    0,
    1,
    12,
    13,
    127,
    128,
    -1,
    -4096,
    4095,
    300,
    -300,
    70000,
    -70000,
]
_ENTRIES += [
    1 << 23,
    -(1 << 31),
    1 << 40,
    -(1 << 63),
    b"x" * 63,
    b"y" * 64,
    b"z" * 5000,
    b"w" * 17000,
]


def test_listpack_entries() -> None:
    assert listpack_entries(listpack(_ENTRIES)) == _ENTRIES
    assert listpack_entries(listpack([])) == []
    with pytest.raises(DecodeError):
        listpack_entries(listpack([b"abc"])[:-1] + b"\x00")


def test_ziplist_entries() -> None:
    assert ziplist_entries(ziplist(_ENTRIES)) == _ENTRIES
    with pytest.raises(DecodeError):
        ziplist_entries(b"\x0b\x00\x00\x00\x0a\x00\x00\x00\x01\x00\xff"[:-1] + b"\x00")


def test_intset_and_zipmap() -> None:
    for values in ([1, -5, 3], [70000, -2], [1 << 40, 5]):
        assert intset_members(intset(values)) == sorted(values)
    pairs = [(b"f", b"v"), (b"long", b"x" * 300)]
    assert zipmap_pairs(zipmap(pairs, free=3)) == pairs


def test_builders_match_what_redis_writes(redis_a: RedisServer) -> None:
    # The hand-made listpacks must be byte-equal to real ones for the crafted tests to mean much.
    rng = random.Random(4)
    noise1, noise2 = rng.randbytes(100), rng.randbytes(70)  # incompressible: no LZF in DUMP
    c = redis_a.client()
    c.rpush("l", b"a", noise1, b"-12", b"5000", b"1099511627776", b"-70000", noise2)
    dumped = c.dump("l")
    assert isinstance(dumped, bytes)
    lp = listpack([b"a", noise1, -12, 5000, 1099511627776, -70000, noise2])
    assert dumped[:-10] == bytes((RDB_TYPE_LIST_QUICKLIST_2,)) + rdb_len(1) + rdb_len(2) + rdb_str(
        lp
    )


# ---------------------------------------------------------------------------------------------
# Command shapes.


def _cmds(item: RdbKey, batch: int = 512) -> list[list[bytes]]:
    return list(value_commands(item.key, item, batch=batch))


def test_string_and_expiry() -> None:
    assert _cmds(RdbKey(0, b"k", RDB_TYPE_STRING, rdb_int(-5), 1700000000000)) == [
        [b"SET", b"k", b"-5"],
        [b"PEXPIREAT", b"k", b"1700000000000"],
    ]


def test_batches_respect_the_limit() -> None:
    members = [b"m%d" % i for i in range(1000)]
    item = RdbKey(0, b"s", RDB_TYPE_SET, rdb_len(1000) + b"".join(rdb_str(m) for m in members), -1)
    cmds = _cmds(item, batch=300)
    assert cmds[0] == [b"DEL", b"s"]
    assert [len(c) - 2 for c in cmds[1:]] == [300, 300, 300, 100]
    assert [m for c in cmds[1:] for m in c[2:]] == members


def test_module_values_raise() -> None:
    item = RdbKey(0, b"m", RDB_TYPE_MODULE_2, rdb_len(MODULE_ID) + module_ops(), -1)
    with pytest.raises(DecodeError, match="module"):
        _cmds(item)


def test_redis_74_hash_field_expiry() -> None:
    t1, t2 = 1900000000000, 1900000005000
    ex = t1.to_bytes(8, "little") + rdb_str(
        listpack([b"f1", b"v1", t1, b"f2", b"v2", 0, b"f3", 9, t2])
    )
    assert _cmds(RdbKey(0, b"h", RDB_TYPE_HASH_LISTPACK_EX, ex, -1)) == [
        [b"DEL", b"h"],
        [b"HSET", b"h", b"f1", b"v1", b"f2", b"v2", b"f3", b"9"],
        [b"HPEXPIREAT", b"h", b"1900000000000", b"FIELDS", b"1", b"f1"],
        [b"HPEXPIREAT", b"h", b"1900000005000", b"FIELDS", b"1", b"f3"],
    ]
    # Hash table layout: TTLs relative to the minimum, plus one; 0 means none.
    meta = t1.to_bytes(8, "little") + rdb_len(3)
    meta += rdb_len(1) + rdb_str(b"f1") + rdb_str(b"v1")
    meta += rdb_len(0) + rdb_str(b"f2") + rdb_str(b"v2")
    meta += rdb_len(t2 - t1 + 1) + rdb_str(b"f3") + rdb_str(b"v3")
    cmds = _cmds(RdbKey(0, b"h", RDB_TYPE_HASH_METADATA, meta, -1))
    assert cmds[1] == [b"HSET", b"h", b"f1", b"v1", b"f2", b"v2", b"f3", b"v3"]
    assert cmds[2:] == [
        [b"HPEXPIREAT", b"h", b"1900000000000", b"FIELDS", b"1", b"f1"],
        [b"HPEXPIREAT", b"h", b"1900000005000", b"FIELDS", b"1", b"f3"],
    ]
    pre_ga = rdb_len(1) + rdb_len(t2) + rdb_str(b"f") + rdb_str(b"v")
    assert _cmds(RdbKey(0, b"h", RDB_TYPE_HASH_METADATA_PRE_GA, pre_ga, -1))[2] == [
        b"HPEXPIREAT",
        b"h",
        b"1900000005000",
        b"FIELDS",
        b"1",
        b"f",
    ]


def test_valkey_9_hash_with_field_expiry() -> None:
    payload = rdb_len(2) + rdb_str(b"f1") + rdb_str(b"v1") + struct.pack("<q", -1)
    payload += rdb_str(b"f2") + rdb_str(b"v2") + struct.pack("<q", 1900000000000)
    assert _cmds(RdbKey(0, b"h", RDB_TYPE_VALKEY_HASH_2, payload, -1, valkey_types=True)) == [
        [b"DEL", b"h"],
        [b"HSET", b"h", b"f1", b"v1", b"f2", b"v2"],
        [b"HPEXPIREAT", b"h", b"1900000000000", b"FIELDS", b"1", b"f2"],
    ]


def test_quicklist_with_plain_and_compressed_nodes() -> None:
    payload = (
        rdb_len(2)
        + rdb_len(1)
        + rdb_str(b"p" * 10)
        + rdb_len(2)
        + rdb_lzf(listpack([b"ab" * 40, 7]))
    )
    cmds = _cmds(RdbKey(0, b"l", RDB_TYPE_LIST_QUICKLIST_2, payload, -1))
    assert cmds == [[b"DEL", b"l"], [b"RPUSH", b"l", b"p" * 10, b"ab" * 40, b"7"]]


# ---------------------------------------------------------------------------------------------
# Against real servers.


@pytest.mark.parametrize("batch", [512, 2])
def test_redis_70_source_decoded_into_redis_70(
    batch: int, redis_a: RedisServer, redis_b: RedisServer
) -> None:
    populate(redis_a)
    data = snapshot(redis_a)
    decode_all(redis_b.client(), parse(data, chunk=1000), batch=batch)
    assert digest(redis_b) == digest(redis_a)
    assert_same_keyspace(keyspace(redis_a), keyspace(redis_b))
    assert functions(redis_b) == functions(redis_a)


def test_valkey_81_source_into_redis_70(valkey_a: RedisServer, redis_b: RedisServer) -> None:
    populate(valkey_a, valkey=True)
    data = snapshot(valkey_a)
    items = parse(data, rng=random.Random(2))
    keys = keys_of(items)
    assert {20, 21} <= {k.type for k in keys}  # set listpack and stream v3 exist only in RDB 11
    c = redis_b.client()
    with pytest.raises(redis.ResponseError, match="DUMP payload version or checksum are wrong"):
        c.execute_command(*restore_command(keys[0].key, keys[0], rdb_version(data)))
    decode_all(c, items)
    assert_same_keyspace(keyspace(valkey_a), keyspace(redis_b))


@old_files()
def test_old_encodings_decode_like_the_server_loads_them(
    data: bytes, redis_b: RedisServer, tmp_path: Path
) -> None:
    assert_applies_like_a_server_load(data, redis_b, tmp_path, fallback=True)


@pytest.mark.slow
def test_million_element_list_and_50mb_string(redis_a: RedisServer, redis_b: RedisServer) -> None:
    c = redis_a.client()
    fill_big_values(c, seed=6)
    data = snapshot(redis_a)
    decode_all(redis_b.client(), parse(data, chunk=65536))
    assert redis_b.client().llen("biglist") == 1_000_000
    assert digest(redis_b) == digest(redis_a)


# ---------------------------------------------------------------------------------------------
# Damaged values raise DecodeError, nothing else.

_VALUES = [k for k in keys_of(parse(crafted_file())) if k.type != RDB_TYPE_MODULE_2]


@settings(max_examples=300, deadline=None)
@given(
    index=st.integers(0, len(_VALUES) - 1),
    flips=st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), min_size=1, max_size=4),
    truncate=st.one_of(st.none(), st.integers(0, 1 << 16)),
)
def test_fuzz_damaged_values(
    index: int, flips: list[tuple[int, int]], truncate: int | None
) -> None:
    item = _VALUES[index]
    payload = bytearray(item.payload)
    for pos, byte in flips:
        payload[pos % len(payload)] = byte
    if truncate is not None:
        del payload[truncate % len(payload) :]
    damaged = RdbKey(item.db, item.key, item.type, bytes(payload), item.expire_ms)
    try:
        cmds = _cmds(damaged)
    except DecodeError:
        return
    assert all(isinstance(arg, bytes) for cmd in cmds for arg in cmd)
