"""CRC-64/Jones: the check value, chunked updates, and agreement with real DUMP payloads."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from replication.syncer.crc64 import IMPLEMENTATION, Crc64, anycrc_crc64, crc64, crcmod_crc64
from tests.support.servers import RedisServer


def test_the_fast_implementation_is_the_one_in_use() -> None:
    assert IMPLEMENTATION == "anycrc"  # requirements.txt installs it


@pytest.mark.parametrize("make", [anycrc_crc64, crcmod_crc64], ids=["anycrc", "crcmod"])
def test_both_implementations_agree(make: Callable[[], Callable[..., int]]) -> None:
    fn = make()
    rng = random.Random(3)
    assert fn(b"123456789", 0) == 0xE9C6D914C4B8D9CA
    assert fn(b"", 0) == 0
    assert fn(b"", 12345) == 12345
    for size in (1, 7, 8, 9, 63, 64, 65, 1000, 100_003):
        data = rng.randbytes(size)
        assert fn(data, 0) == crcmod_crc64()(data, 0)
        cut = size // 3
        assert fn(memoryview(data)[cut:], fn(bytearray(data[:cut]), 0)) == fn(data, 0)


def test_check_value() -> None:
    assert crc64(b"123456789") == 0xE9C6D914C4B8D9CA
    assert crc64(b"") == 0


def test_incremental_equals_whole() -> None:
    rng = random.Random(7)
    data = rng.randbytes(200_000)
    whole = crc64(data)
    running = Crc64()
    i = 0
    while i < len(data):
        step = rng.choice((1, 3, 100, 4096, 65536))
        running.update(memoryview(data)[i : i + step])
        i += step
    assert running.value == whole
    assert crc64(data[1000:], crc64(bytearray(data[:1000]))) == whole


def test_matches_the_checksum_of_a_real_dump_payload() -> None:
    with RedisServer() as server:
        c = server.client()
        c.set("k", "v" * 1000)
        payload = c.dump("k")
    assert isinstance(payload, bytes)
    assert crc64(payload[:-8]).to_bytes(8, "little") == payload[-8:]
