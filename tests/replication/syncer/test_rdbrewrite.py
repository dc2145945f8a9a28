"""The gateway's RDB rewrite (rdbrewrite.py) on real snapshots: every LZF string raw, a valid RDB
with its own checksum that a real server loads into the same dataset, in any chunking."""

from __future__ import annotations

import random
import zlib
from pathlib import Path

import pytest

from replication.syncer.crc64 import crc64
from replication.syncer.decode import value_commands
from replication.syncer.rdb import RdbEnd, RdbError, RdbItem, RdbKey
from replication.syncer.rdbrewrite import (
    BOUNDARY,
    RdbRewriter,
    StreamRewriter,
    inflate_lzf_strings,
    rdb_length,
)
from tests.replication.syncer.rdb_fixtures import (
    ASSET_ENCODINGS,
    ASSET_HASH_ZIPLIST,
    ASSET_HASH_ZIPMAP,
    ASSET_LIST_QUICKLIST,
    ASSET_ZSET_ZIPLIST,
    VALKEY_SERVER,
    assert_same_keyspace,
    crafted_file,
    digest,
    keys_of,
    keyspace,
    load_rdb_server,
    parse,
    populate,
    reset_servers,
    server_fixture,
    snapshot,
)
from tests.support.load import populate_documents
from tests.support.servers import RedisServer

redis_a = server_fixture()
valkey_a = server_fixture(VALKEY_SERVER)


@pytest.fixture(autouse=True)
def _empty() -> None:
    reset_servers()


def rewrite(data: bytes, rng: random.Random | None = None) -> tuple[bytes, RdbRewriter]:
    """`data` through a rewriter, whole or in random pieces (1 byte to 64 KiB)."""
    rw = RdbRewriter()
    out = bytearray()
    i = 0
    while i < len(data):
        step = len(data) if rng is None else rng.choice((1, 2, 3, 9, 100, 4096, 65536))
        out += rw.feed(data[i : i + step])
        i += step
    assert rw.done and rw.tail == b""
    return bytes(out), rw


def lzf_left(items: list[RdbItem]) -> int:
    """Keys whose value still holds an LZF string (inflate_lzf_strings would change it)."""
    return sum(
        inflate_lzf_strings(k.type, k.payload, valkey_types=k.valkey_types) is not k.payload
        for k in keys_of(items)
    )


def same_values(before: list[RdbItem], after: list[RdbItem]) -> None:
    """Key for key the same type, expiry and decoded value (decode.py inflates LZF itself)."""
    a, b = keys_of(before), keys_of(after)
    assert [(k.db, k.key, k.type, k.expire_ms) for k in a] == [
        (k.db, k.key, k.type, k.expire_ms) for k in b
    ]
    for x, y in zip(a, b, strict=True):
        assert list(value_commands(x.key, x)) == list(value_commands(y.key, y)), x.key


@pytest.mark.parametrize("source", ["redis_a", "valkey_a"])
def test_a_real_snapshot_rewritten_has_no_lzf_left_and_loads_into_the_same_dataset(
    source: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    server: RedisServer = request.getfixturevalue(source)
    assert server.client().config_get("rdbcompression")["rdbcompression"] == "yes"
    populate(server, valkey=source.startswith("valkey"))  # every type and encoding
    populate_documents(server.client(), 300)  # text: LZF in the top-level strings
    data = snapshot(server)
    original = parse(data)
    assert lzf_left(original) > 300  # the server did compress: the test looks at something

    out, rw = rewrite(data, random.Random(7))
    assert rewrite(data)[0] == out  # chunking changes nothing
    rewritten = parse(out, rng=random.Random(8))
    assert lzf_left(rewritten) == 0
    assert rw.strings_inflated == lzf_left(original)
    assert len(out) > len(data) + 300 * 300  # the documents raw: what zlib compresses well
    end = rewritten[-1]
    assert isinstance(end, RdbEnd) and end.checksum_ok
    assert out[-8:] == crc64(out[:-8]).to_bytes(8, "little") != bytes(8)  # its own checksum
    same_values(original, rewritten)

    binary = VALKEY_SERVER if source.startswith("valkey") else None
    loaded = load_rdb_server(tmp_path, out, binary)
    try:
        assert digest(loaded) == digest(server)
        assert_same_keyspace(keyspace(server), keyspace(loaded))
    finally:
        loaded.stop()


@pytest.mark.parametrize(
    "data",
    [
        crafted_file(),  # every type, also Redis 7.4 field-expiry hashes, modules, LZF strings
        crafted_file(11, module=False),
        ASSET_ENCODINGS,  # RDB 4 (no checksum), an LZF string
        ASSET_HASH_ZIPMAP,
        ASSET_HASH_ZIPLIST,
        ASSET_LIST_QUICKLIST,
        ASSET_ZSET_ZIPLIST,
    ],
    ids=["crafted", "crafted-11", "encodings", "zipmap", "ziplist", "quicklist", "zset-ziplist"],
)
def test_hand_made_and_recorded_files_keep_every_value(data: bytes) -> None:
    original = parse(data)
    out, _ = rewrite(data, random.Random(3))
    rewritten = parse(out)
    assert lzf_left(rewritten) == 0
    same_values(original, rewritten)
    end = rewritten[-1]
    assert isinstance(end, RdbEnd) and end.checksum_ok


def test_a_source_checksum_that_does_not_match_makes_the_rewritten_one_fail_too() -> None:
    data = bytearray(crafted_file())
    data[-1] ^= 0xFF
    out, _ = rewrite(bytes(data))
    end = parse(out)[-1]
    assert isinstance(end, RdbEnd) and not end.checksum_ok


def test_a_damaged_lzf_string_is_an_rdb_error() -> None:
    lzf_value = b"\xc3" + rdb_length(3) + rdb_length(40) + b"\x01ab"  # claims 40, holds 2
    data = b"REDIS0011" + b"\x00\x01k" + lzf_value + b"\xff" + bytes(8)
    with pytest.raises(RdbError):
        RdbRewriter().feed(data)


def replication_stream(rdb: bytes, *, eof_form: bool, after: bytes) -> bytes:
    """What a database sends a replica: handshake replies, keepalives, the RDB, the stream."""
    head = b"+OK\r\n*2\r\n$24\r\nrepl-ping-replica-period\r\n$2\r\n10\r\n+OK\r\n+OK\r\n"
    head += b"+FULLRESYNC " + b"a" * 40 + b" 1234\r\n\n\n"
    if eof_form:
        mark = bytes(random.Random(1).choices(b"0123456789abcdef", k=40))
        return head + b"$EOF:" + mark + b"\r\n" + rdb + mark + after
    return head + b"$%d\r\n" % len(rdb) + rdb + after


@pytest.mark.parametrize("eof_form", [False, True], ids=["length", "eof-mark"])
def test_the_stream_rewriter_sends_an_eof_marked_rdb_and_a_boundary_before_the_commands(
    eof_form: bool,
) -> None:
    rdb = crafted_file()
    after = b"*1\r\n$4\r\nPING\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"
    stream = replication_stream(rdb, eof_form=eof_form, after=after)
    rng = random.Random(5)
    sw = StreamRewriter()
    parts: list[bytes | None] = []
    i = 0
    while i < len(stream):
        step = rng.choice((1, 5, 40, 700, 5000))
        parts += sw.feed(stream[i : i + step])
        i += step
    assert sw.relaying and sw.full_syncs == 1
    assert parts.count(BOUNDARY) == 1
    cut = parts.index(BOUNDARY)
    before = b"".join(p for p in parts[:cut] if p is not None)
    rest = b"".join(p for p in parts[cut + 1 :] if p is not None)
    assert rest == after  # the command stream unchanged, all of it after the boundary
    head, _, body = before.partition(b"$EOF:")
    assert head == stream[: stream.index(b" 1234\r\n\n\n") + 9]  # handshake and keepalives
    mark, body = body[:40], body[42:]
    assert body.endswith(mark) and len(mark) == 40
    same_values(parse(rdb), parse(body[:-40]))


def test_a_partial_resync_passes_unchanged() -> None:
    sw = StreamRewriter()
    data = b"+OK\r\n+OK\r\n+CONTINUE " + b"b" * 40 + b"\r\n*1\r\n$4\r\nPING\r\n"
    assert b"".join(p for p in sw.feed(data) if p is not None) == data
    assert sw.relaying and sw.full_syncs == 0


def test_a_bulk_that_ends_before_the_rdb_does_is_an_error() -> None:
    rdb = crafted_file()
    stream = replication_stream(rdb, eof_form=False, after=b"")
    sw = StreamRewriter()
    broken = stream.replace(b"$%d\r\n" % len(rdb), b"$%d\r\n" % (len(rdb) - 5))
    with pytest.raises(RdbError):
        sw.feed(broken)


def test_the_rewritten_text_snapshot_deflates_more_than_three_times(
    redis_a: RedisServer,
) -> None:
    """Why the rewrite: zlib 6 on the snapshot as the source wrote it (LZF inside) and raw."""
    populate_documents(redis_a.client(), 3000)
    data = snapshot(redis_a)
    out, _ = rewrite(data)
    as_is = len(zlib.compress(data, 6))
    raw = len(zlib.compress(out, 6))
    print(
        f"\n3,000 documents: RDB {len(data)} B, zlib {as_is} B; rewritten {len(out)} B, zlib {raw}"
    )
    assert raw * 3 < len(data)  # a third of what the database would send uncompressed
    assert raw < as_is


def test_a_value_without_lzf_is_not_copied() -> None:
    item = RdbKey(0, b"k", 0, b"\x05hello", -1)
    assert inflate_lzf_strings(item.type, item.payload) is item.payload
    hash_ht = b"\x01\x01f\x01v"  # one field, both raw
    assert inflate_lzf_strings(4, hash_ht) is hash_ht
