"""RdbParser on hand-made and recorded RDB files: items, chunking, limits, errors, fuzzing."""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from replication.syncer.crc64 import crc64
from replication.syncer.rdb import (
    RDB_TYPE_HASH_LISTPACK_EX,
    RDB_TYPE_HASH_METADATA,
    RDB_TYPE_MODULE_2,
    RDB_TYPE_SET,
    RDB_TYPE_STRING,
    RDB_TYPE_VALKEY_HASH_2,
    RdbAux,
    RdbEnd,
    RdbError,
    RdbFunction,
    RdbItem,
    RdbKey,
    RdbModuleAux,
    RdbParser,
    RdbSelectDb,
    value_end,
)
from tests.replication.syncer.rdb_fixtures import (
    ASSET_ENCODINGS,
    ASSET_HASH_ZIPLIST,
    ASSET_HASH_ZIPMAP,
    ASSET_LIST_QUICKLIST,
    ASSET_ZSET_ZIPLIST,
    MODULE_ID,
    crafted_file,
    crafted_values,
    keys_of,
    listpack,
    module_ops,
    parse,
    rdb_file,
    rdb_int,
    rdb_key,
    rdb_len,
    rdb_str,
)

ASSETS = [
    ASSET_ENCODINGS,
    ASSET_HASH_ZIPMAP,
    ASSET_HASH_ZIPLIST,
    ASSET_LIST_QUICKLIST,
    ASSET_ZSET_ZIPLIST,
]


def test_crafted_file_yields_every_item_with_exact_value_bytes() -> None:
    data = crafted_file()
    parser = RdbParser()
    items = parser.feed(data)
    assert parser.done and parser.version == 9 and parser.bytes_consumed == len(data)
    assert items[:2] == [RdbAux(b"redis-ver", b"6.2.0"), RdbAux(b"redis-bits", b"64")]
    assert items[2] == RdbModuleAux(MODULE_ID, module_ops())
    assert items[3] == RdbSelectDb(0)
    expected = [
        RdbKey(0, key, t, value, 4102444800000 if i % 5 == 0 else -1)
        for i, (t, key, value) in enumerate(crafted_values())
    ]
    assert keys_of(items)[: len(expected)] == expected
    assert items[-3:] == [
        RdbSelectDb(3),
        RdbKey(3, b"42", RDB_TYPE_STRING, rdb_str(b"int-named key"), 2000000000 * 1000),
        RdbEnd(checksum_ok=True),
    ]
    assert parser.keys == len(expected) + 1


def test_functions_are_reported() -> None:
    code = b"#!lua name=lib\nredis.register_function('f', function() return 1 end)"
    data = rdb_file(b"\xf5" + rdb_str(code) + b"\xfe\x00" + rdb_key(0, b"k", rdb_str(b"v")), 10)
    assert parse(data)[0] == RdbFunction(code)


def test_old_files_without_checksum_and_recorded_assets() -> None:
    for data in ASSETS:
        items = parse(data)
        assert items[-1] == RdbEnd(checksum_ok=True)
        assert len(keys_of(items)) >= 1
    types = sorted({k.type for k in keys_of(parse(ASSET_ENCODINGS))})
    assert types == [0, 1, 2, 3, 4, 10, 11, 12, 13]
    assert [k.type for k in keys_of(parse(ASSET_HASH_ZIPMAP))] == [9]


@pytest.mark.parametrize("data", [crafted_file(), *ASSETS], ids=["crafted", *map(str, range(5))])
def test_any_chunking_gives_the_same_items(data: bytes) -> None:
    whole = parse(data)
    assert parse(data, chunk=1) == whole
    assert parse(data, chunk=13) == whole
    for seed in range(5):
        assert parse(data, rng=random.Random(seed)) == whole


def test_a_large_value_is_scanned_once_and_never_buffered_twice() -> None:
    members = [b"member-%06d" % i for i in range(100_000)]
    value = rdb_len(len(members)) + b"".join(rdb_str(m) for m in members)
    data = rdb_file(b"\xfe\x00" + rdb_key(RDB_TYPE_SET, b"big", value) + rdb_key(0, b"k", b"\x01v"))
    parser = RdbParser()
    items = []
    chunk = 4096
    peak = 0
    for i in range(0, len(data), chunk):
        items += parser.feed(data[i : i + chunk])
        pending = parser._pending
        peak = max(peak, len(pending) if pending is not None else 0)
    assert keys_of(items)[0].payload == value
    assert keys_of(items)[1].key == b"k"
    assert peak <= len(value) + 1 + len(rdb_str(b"big")) + chunk


def test_expiry_in_the_past_is_reported_not_dropped() -> None:
    data = rdb_file(b"\xfe\x00" + rdb_key(0, b"old", rdb_str(b"v"), expire_ms=1000))
    (key,) = keys_of(parse(data))
    assert key.expire_ms == 1000


def test_bytes_after_the_end_are_kept_as_tail() -> None:
    data = rdb_file(b"\xfe\x00" + rdb_key(0, b"k", rdb_str(b"v")))
    parser = RdbParser()
    items = parser.feed(data + b"EOFMARK")
    assert items[-1] == RdbEnd(True) and parser.tail == b"EOFMARK"
    parser.feed(b"more")
    assert parser.tail == b"EOFMARKmore"


def test_checksum() -> None:
    good = rdb_file(b"\xfe\x00" + rdb_key(0, b"k", rdb_str(b"value")))
    assert parse(good)[-1] == RdbEnd(True)
    damaged = good.replace(b"value", b"valuf")
    assert parse(damaged)[-1] == RdbEnd(False)
    disabled = rdb_file(b"\xfe\x00" + rdb_key(0, b"k", rdb_str(b"value")), checksum=False)
    assert disabled.endswith(b"\0" * 8)
    assert parse(disabled)[-1] == RdbEnd(True)


def test_redis_74_hashes_with_field_expiry() -> None:
    lp = listpack([b"f1", b"v1", 1900000000000, b"f2", b"v2", 0])
    ex = (1900000000000).to_bytes(8, "little") + rdb_str(lp)
    meta = (
        (1900000000000).to_bytes(8, "little")
        + rdb_len(2)
        + rdb_len(1)
        + rdb_str(b"f1")
        + rdb_str(b"v1")
        + rdb_len(0)
        + rdb_str(b"f2")
        + rdb_int(7)
    )
    body = b"\xfe\x00" + rdb_key(RDB_TYPE_HASH_LISTPACK_EX, b"a", ex)
    body += b"\xf4" + rdb_len(1000) + rdb_len(2) + rdb_len(0)  # SLOT_INFO (7.4, cluster mode)
    body += rdb_key(RDB_TYPE_HASH_METADATA, b"b", meta)
    keys = keys_of(parse(rdb_file(body, 12)))
    assert [(k.key, k.type, k.payload) for k in keys] == [
        (b"a", RDB_TYPE_HASH_LISTPACK_EX, ex),
        (b"b", RDB_TYPE_HASH_METADATA, meta),
    ]


def test_valkey_9_magic_hash2_and_slot_import() -> None:
    hash2 = rdb_len(2) + rdb_str(b"f1") + rdb_str(b"v1") + struct.pack("<q", -1)
    hash2 += rdb_str(b"f2") + rdb_str(b"v2") + struct.pack("<q", 1900000000000)
    body = b"\xfa" + rdb_str(b"valkey-ver") + rdb_str(b"9.0.0") + b"\xfe\x00"
    body += (
        b"\xf3"
        + rdb_str(b"j" * 40)
        + rdb_len(2)
        + rdb_len(0)
        + rdb_len(99)
        + rdb_len(200)
        + rdb_len(300)
    )
    body += rdb_key(RDB_TYPE_VALKEY_HASH_2, b"h", hash2)
    data = rdb_file(body, 80, valkey=True)
    assert data.startswith(b"VALKEY080")
    parser = RdbParser()
    items = parser.feed(data)
    assert parser.version == 80 and parser.valkey_magic
    (key,) = keys_of(items)
    assert (key.type, key.payload, key.valkey_types) == (RDB_TYPE_VALKEY_HASH_2, hash2, True)
    assert items[-1] == RdbEnd(True)
    # Slot import state exists only in VALKEY files.
    with pytest.raises(RdbError, match="opcode 243"):
        RdbParser().feed(rdb_file(body, 12))


def test_module_values_are_skipped_whole() -> None:
    value = rdb_len(MODULE_ID) + module_ops()
    data = rdb_file(
        b"\xfe\x00" + rdb_key(RDB_TYPE_MODULE_2, b"m", value) + rdb_key(0, b"k", b"\x01v")
    )
    keys = keys_of(parse(data, chunk=3))
    assert [(k.key, k.payload) for k in keys] == [(b"m", value), (b"k", b"\x01v")]
    assert value_end(RDB_TYPE_MODULE_2, value) == len(value)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"RIDES0009" + b"\xff" + b"\0" * 8, "not an RDB"),
        (b"REDIS0013\xff" + b"\0" * 8, "unsupported RDB version 13"),
        (b"VALKEY011\xff" + b"\0" * 8, "unsupported RDB version 11"),
        (rdb_file(b"\xfe\x00\x08\x01k\x01v"), "unsupported value type 8"),
        (rdb_file(b"\xfe\x00\x06\x01k\x01v"), "unsupported value type 6"),
        (rdb_file(b"\xf6\x01x"), "pre-GA"),
        (rdb_file(b"\xf2\x00"), "unknown RDB opcode 242"),
        (rdb_file(b"\xfe\x00\x00\x01k\xc4"), "invalid string encoding"),
        (rdb_file(b"\xfe\xc0"), "invalid length encoding"),
        (rdb_file(b"\xfe\x00\x00\xc3\x02\x7f\x00\x01\x01v"), "invalid LZF"),
        (rdb_file(b"\xfe\x00\x12\x01k\x01\x03\x01x"), "quicklist node container"),
    ],
)
def test_malformed_input_raises_a_clean_error(data: bytes, message: str) -> None:
    with pytest.raises(RdbError, match=message):
        parse(data)


def test_an_error_is_final() -> None:
    parser = RdbParser()
    with pytest.raises(RdbError, match="unsupported value type 8"):
        parser.feed(rdb_file(b"\xfe\x00\x08\x01k\x01v"))
    with pytest.raises(RdbError, match="unsupported value type 8"):
        parser.feed(b"\x00\x01k\x01v")
    with pytest.raises(RdbError, match="unsupported value type 8"):
        parser.close()


def test_truncated_input_is_reported_by_close() -> None:
    data = crafted_file()
    parser = RdbParser()
    parser.feed(data[:-20])
    assert not parser.done
    with pytest.raises(RdbError, match="truncated"):
        parser.close()


# ---------------------------------------------------------------------------------------------
# Fuzzing: damaged input raises RdbError or yields items; nothing else, and it always returns.

_FUZZ_BASES = [crafted_file(), crafted_file(11, module=False), *ASSETS]


def _feed_all(data: bytes, cuts: list[int]) -> list[RdbItem]:
    """Feed `data` cut at `cuts`: the items, or RdbError (also if it ends before the end)."""
    parser = RdbParser()
    items: list[RdbItem] = []
    pos = 0
    for cut in sorted(cuts):
        items += parser.feed(data[pos:cut])
        pos = max(pos, cut)
    items += parser.feed(data[pos:])
    parser.close()
    return items


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    base=st.sampled_from(range(len(_FUZZ_BASES))),
    flips=st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=6),
    truncate=st.one_of(st.none(), st.integers(0, 1 << 20)),
    insert=st.one_of(st.none(), st.tuples(st.integers(0, 1 << 20), st.binary(max_size=16))),
    cuts=st.lists(st.integers(0, 1 << 20), max_size=8),
)
def test_fuzz_damaged_rdb(
    base: int,
    flips: list[tuple[int, int]],
    truncate: int | None,
    insert: tuple[int, bytes] | None,
    cuts: list[int],
) -> None:
    data = bytearray(_FUZZ_BASES[base])
    for pos, byte in flips:
        data[pos % len(data)] = byte
    if insert is not None:
        at = insert[0] % len(data)
        data[at:at] = insert[1]
    if truncate is not None:
        del data[truncate % (len(data) + 1) :]
    damaged = bytes(data)
    try:
        items = _feed_all(damaged, [c % (len(damaged) + 1) for c in cuts])
    except RdbError as exc:
        event(f"RdbError: {str(exc).split(' ')[0]} {str(exc).split(' ')[1]}")
        return
    event("parsed")
    assert isinstance(items[-1], RdbEnd)
    assert all(isinstance(k.payload, bytes) and isinstance(k.key, bytes) for k in keys_of(items))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_fuzz_random_bytes_after_a_valid_header(junk: bytes) -> None:
    data = b"REDIS0011" + junk
    data += crc64(data).to_bytes(8, "little")
    try:
        items = _feed_all(data, [len(data) // 2])
    except RdbError:
        return
    assert isinstance(items[-1], RdbEnd)
