"""CRC-64/Jones: the check value, chunked updates, and agreement with real DUMP payloads."""

from __future__ import annotations

import random

from replication.syncer.crc64 import Crc64, crc64
from tests.support.servers import RedisServer


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
