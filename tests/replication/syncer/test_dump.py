"""The RESTORE fast path: payloads byte-equal to DUMP, accepted where the version allows."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from replication.syncer.checkpoint import BOOKKEEPING_PREFIX
from replication.syncer.dump import dump_payload, restore_command, restore_packed, restore_packer
from replication.syncer.rdb import RdbKey, RdbPacked, RdbParser, RdbSelectDb
from replication.syncer.resp import pack
from tests.replication.syncer.rdb_fixtures import (
    VALKEY_SERVER,
    assert_applies_like_a_server_load,
    assert_same_keyspace,
    digest,
    fill_big_values,
    functions,
    keys_of,
    keyspace,
    old_files,
    parse,
    populate,
    rdb_version,
    reset_servers,
    restore_all,
    server_fixture,
    snapshot,
)
from tests.support.servers import RedisServer

redis_a = server_fixture()
redis_b = server_fixture()
valkey_a = server_fixture(VALKEY_SERVER)
valkey_b = server_fixture(VALKEY_SERVER)


@pytest.fixture(autouse=True)
def _empty() -> None:
    reset_servers()


def test_dump_payload_format() -> None:
    payload = dump_payload(0, b"\x01v", 10)
    assert payload[:3] == b"\x00\x01v" and payload[3:5] == b"\x0a\x00" and len(payload) == 13
    with pytest.raises(ValueError):
        dump_payload(0, b"\x01v", 0)


def test_restore_command_ttl() -> None:
    item = RdbKey(0, b"k", 0, b"\x01v", -1)
    cmd = restore_command(b"renamed", item, 10)
    assert cmd[:3] == [b"RESTORE", b"renamed", b"0"] and cmd[4:] == [b"REPLACE", b"ABSTTL"]
    assert cmd[3] == dump_payload(0, b"\x01v", 10)
    assert (
        restore_command(b"k", RdbKey(0, b"k", 0, b"\x01v", 1700000000123), 10)[2]
        == b"1700000000123"
    )
    # 0 would mean "no expiry" to RESTORE: an expiry at the epoch must stay an expiry.
    assert restore_command(b"k", RdbKey(0, b"k", 0, b"\x01v", 0), 10)[2] == b"1"


@pytest.mark.parametrize("source", ["redis_a", "valkey_a"])
def test_payloads_equal_dump_for_every_encoding(
    source: str, request: pytest.FixtureRequest
) -> None:
    server: RedisServer = request.getfixturevalue(source)
    populate(server, valkey=source.startswith("valkey"))
    data = snapshot(server)
    items = parse(data, rng=random.Random(1))
    assert parse(data, chunk=1) == items == parse(data)
    keys = keys_of(items)
    assert len(keys) > 30
    for item in keys:
        c = server.client(db=item.db)
        assert c.dump(item.key) == dump_payload(item.type, item.payload, rdb_version(data)), (
            item.key
        )


@pytest.mark.parametrize(
    ("source", "destination"), [("redis_a", "redis_b"), ("valkey_a", "valkey_b")]
)
def test_restore_round_trip(source: str, destination: str, request: pytest.FixtureRequest) -> None:
    src: RedisServer = request.getfixturevalue(source)
    dst: RedisServer = request.getfixturevalue(destination)
    populate(src, valkey=source.startswith("valkey"))
    data = snapshot(src)
    restore_all(dst.client(), parse(data, chunk=4096), rdb_version(data))
    assert digest(dst) == digest(src)
    assert_same_keyspace(keyspace(src), keyspace(dst))
    assert functions(dst) == functions(src)


def test_redis_70_payloads_restore_into_valkey_81(
    redis_a: RedisServer, valkey_b: RedisServer
) -> None:
    populate(redis_a)
    data = snapshot(redis_a)
    restore_all(valkey_b.client(), parse(data), rdb_version(data))
    assert_same_keyspace(keyspace(redis_a), keyspace(valkey_b))


def test_valkey_81_payloads_are_refused_by_redis_70(
    valkey_a: RedisServer, redis_b: RedisServer
) -> None:
    populate(valkey_a, valkey=True)
    data = snapshot(valkey_a)
    assert data.startswith(b"REDIS0011")
    c = redis_b.client()
    for item in keys_of(parse(data)):
        with pytest.raises(redis.ResponseError, match="DUMP payload version or checksum are wrong"):
            c.execute_command(*restore_command(item.key, item, rdb_version(data)))
    assert c.dbsize() == 0


@old_files()
def test_old_encodings_restore_like_the_server_loads_them(
    data: bytes, redis_b: RedisServer, tmp_path: Path
) -> None:
    assert_applies_like_a_server_load(data, redis_b, tmp_path, fallback=False)


@pytest.mark.slow
def test_million_element_list_and_50mb_string(redis_a: RedisServer, redis_b: RedisServer) -> None:
    c = redis_a.client()
    fill_big_values(c, seed=5)
    c.set("after", "x")
    data = snapshot(redis_a)
    keys = keys_of(parse(data, chunk=65536))
    assert [k.key for k in keys if k.key != b"after"] != []
    restore_all(redis_b.client(), keys, rdb_version(data))
    assert redis_b.client().llen("biglist") == 1_000_000
    assert redis_b.client().strlen("bigstring") == 50 * 1024 * 1024
    assert digest(redis_b) == digest(redis_a)


@settings(max_examples=200, deadline=None)
@given(
    key=st.binary(max_size=300), expire=st.integers(-1, 1 << 50), payload=st.binary(max_size=2000)
)
def test_packed_restore_is_the_packed_command(key: bytes, expire: int, payload: bytes) -> None:
    item = RdbKey(db=0, key=key, type=0, payload=payload, expire_ms=expire)
    assert restore_packed(key, item, 10) == pack(*restore_command(key, item, 10))


def _packed_load(data: bytes, floor: int, chunk: int) -> list[object]:
    """What the full sync's fast path gets from the parser: packed RESTOREs where the packer
    took the key, RdbKey where it declined or the key spanned chunks, in order."""
    parser = RdbParser()
    items: list[object] = list(parser.feed(data[:9]))  # the header: the version is known
    parser.packer = restore_packer(parser.version, BOOKKEEPING_PREFIX, [floor])
    for i in range(9, len(data), chunk):
        for item in parser.feed(data[i : i + chunk]):
            assert type(item) is not RdbPacked or item.cmds
            items += item.cmds if type(item) is RdbPacked else [item]
    parser.close()
    return items


@pytest.mark.parametrize("source", ["redis_a", "valkey_a"])
@pytest.mark.parametrize("chunk", [1 << 20, 4096, 7])
def test_packer_gives_restore_packed_byte_for_byte(
    request: pytest.FixtureRequest, source: str, chunk: int
) -> None:
    server: RedisServer = request.getfixturevalue(source)
    populate(server, valkey=source.startswith("valkey"))
    c = server.client()
    c.set(BOOKKEEPING_PREFIX + b"}:own", b"x")  # declined: the full sync skips it
    c.set("soon", b"v", pxat=4_000_000_000_000)  # expires before the floor: declined
    c.set("later", b"v", pxat=4_000_000_000_001)  # after: packed with its expiry
    data = snapshot(server)
    version = rdb_version(data)
    plain = parse(data)
    expected = [
        restore_packed(i.key, i, version)
        for i in keys_of(plain)
        if not i.key.startswith(BOOKKEEPING_PREFIX) and not 0 <= i.expire_ms <= 4_000_000_000_000
    ]
    items = _packed_load(data, 4_000_000_000_000, chunk)
    packed = [i for i in items if type(i) is bytes]
    declined = [i for i in items if type(i) is RdbKey]
    # Keys that spanned two chunks come as RdbKey too (the parser offers only whole ones).
    assert len(packed) + len(declined) == len(keys_of(plain))
    got = packed + [
        restore_packed(i.key, i, version)
        for i in declined
        if not i.key.startswith(BOOKKEEPING_PREFIX) and not 0 <= i.expire_ms <= 4_000_000_000_000
    ]
    assert sorted(got) == sorted(expected)
    assert {i.key for i in declined} >= {BOOKKEEPING_PREFIX + b"}:own", b"soon"}
    assert any(b"\r\nlater\r\n$13\r\n4000000000001\r\n" in i for i in packed)
    if chunk == 1 << 20:  # every key whole in the chunk: only those the packer declines
        assert all(
            i.key.startswith(BOOKKEEPING_PREFIX) or 0 <= i.expire_ms <= 4_000_000_000_000
            for i in declined
        )
    # Database changes stay in place among the packed keys.
    assert [i.db for i in items if type(i) is RdbSelectDb] == [
        i.db for i in plain if type(i) is RdbSelectDb
    ]


def test_packed_restores_load_like_the_server(redis_a: RedisServer, redis_b: RedisServer) -> None:
    populate(redis_a)
    data = snapshot(redis_a)
    conn = redis_b.client().connection_pool.get_connection()
    try:
        for item in _packed_load(data, 0, 65536):
            if type(item) is RdbSelectDb:
                conn.send_packed_command([pack(b"SELECT", item.db)])
            elif type(item) is RdbKey:
                conn.send_packed_command(
                    [pack(*restore_command(item.key, item, rdb_version(data)))]
                )
            elif type(item) is bytes:
                conn.send_packed_command([item])
            else:
                continue
            assert conn.read_response() == b"OK"
    finally:
        conn.disconnect()
    assert_same_keyspace(keyspace(redis_a), keyspace(redis_b))
