"""The sync gateway's framing, without servers: the hello, and the deflated stream that is
flushed per batch (every batch decodable as soon as it arrived) and inflated in bounded steps."""

from __future__ import annotations

import asyncio
import random
import zlib

import hiredis
import pytest

from replication.syncer.errors import ProtocolError
from replication.syncer.gateway import (
    Deflater,
    Hello,
    Inflater,
    InflatingReader,
    deflate_chunk,
    parse_hello,
)
from replication.syncer.rdbrewrite import BOUNDARY


def args_of(packed: bytes) -> list[bytes]:
    reader = hiredis.Reader()
    reader.feed(packed)
    args = reader.gets()
    assert isinstance(args, list)
    return args


def test_a_hello_survives_the_wire_and_hides_its_password() -> None:
    hello = Hello(12003, 6, "admin", "s3cr:et @x")
    assert parse_hello(args_of(hello.pack())) == hello
    assert "s3cr" not in repr(hello)
    assert parse_hello(args_of(Hello(12003, 1, "", "pw").pack())).user == ""
    assert parse_hello(args_of(Hello(12003, 6, "", "pw", version=1).pack())).version == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([b"PING"], "not a sync gateway hello"),
        ([b"SYNCGATEWAY", b"1", b"12000", b"6", b"admin"], "6 arguments"),
        ([b"SYNCGATEWAY", b"3", b"12000", b"6", b"admin", b"pw"], "version"),
        ([b"SYNCGATEWAY", b"1", b"0", b"6", b"admin", b"pw"], "port"),
        ([b"SYNCGATEWAY", b"1", b"x", b"6", b"admin", b"pw"], "port"),
        ([b"SYNCGATEWAY", b"1", b"12000", b"0", b"admin", b"pw"], "level"),
        ([b"SYNCGATEWAY", b"1", b"12000", b"10", b"admin", b"pw"], "level"),
        ([b"SYNCGATEWAY", b"1", b"12000", b"6", b"admin", b"\xff"], "UTF-8"),
    ],
)
def test_a_bad_hello_says_what_is_wrong_and_never_the_password(
    args: list[bytes], message: str
) -> None:
    with pytest.raises(ValueError, match=message) as info:
        parse_hello(args)
    assert "pw" not in str(info.value)


def test_every_flushed_batch_inflates_completely_on_its_own_arrival() -> None:
    """Z_SYNC_FLUSH per batch: the receiver never waits for the next batch to decode this one
    (the streaming lag does not depend on the write rate)."""
    rnd = random.Random(3)
    comp = zlib.compressobj(6)
    inflater = Inflater()
    for size in (1, 17, 300, 5000, 70000, 3):
        batch = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$%d\r\n" % size + rnd.randbytes(size // 2) * 2
        out = inflater.feed(deflate_chunk(comp, batch))
        assert out == batch


def test_the_stream_inflates_the_same_however_the_network_cuts_it() -> None:
    rnd = random.Random(4)
    comp = zlib.compressobj(6)
    batches = [b"hello " * rnd.randrange(1, 500) + rnd.randbytes(50) for _ in range(50)]
    wire = b"".join(deflate_chunk(comp, b) for b in batches)
    inflater = Inflater()
    out = bytearray()
    at = 0
    while at < len(wire):
        step = rnd.randrange(1, 200)
        out += inflater.feed(wire[at : at + step])
        at += step
    assert bytes(out) == b"".join(batches)
    assert len(wire) * 3 < len(out)  # text compresses


def test_inflating_is_bounded_per_step() -> None:
    """A small deflated input that inflates to a lot comes out in steps, not at once."""
    big = b"\0" * (40 << 20)
    comp = zlib.compressobj(6)
    wire = deflate_chunk(comp, big)
    assert len(wire) < 100_000
    inflater = Inflater()
    first = inflater.feed(wire)
    more = inflater.pending
    assert 0 < len(first) <= 8 << 20 and more
    rest = bytearray(first)
    while more:
        rest += inflater.feed(b"")
        more = inflater.pending
    assert len(rest) == len(big)


def test_a_corrupt_stream_is_refused_and_an_ended_one_is_followed_by_the_next() -> None:
    with pytest.raises(ValueError, match="corrupt"):
        Inflater().feed(b"not zlib at all")
    inflater = Inflater()
    wire = zlib.compress(b"a whole stream, finished") + zlib.compress(b"and the next")
    assert inflater.feed(wire) == b"a whole stream, finished" and inflater.ended
    assert inflater.feed(b"") == b"and the next" and inflater.ended
    with pytest.raises(ValueError, match="corrupt"):
        inflater.feed(b"garbage after the streams")


def test_a_read_never_spans_the_end_of_a_zlib_stream() -> None:
    """Version 2: the gateway ends a stream right after the RDB's EOF mark, and the command
    stream follows at once; source.py must see the mark as the last bytes of a read."""

    async def scenario() -> None:
        raw = asyncio.StreamReader()
        deflater = Deflater(6)
        mark = b"m" * 40
        wire = deflater.deflate([b"$EOF:" + mark + b"\r\nRDB BYTES" + mark, BOUNDARY, b"*1\r\n"])
        wire += deflater.deflate([b"$4\r\nPING\r\n"])
        raw.feed_data(wire)  # all of it at once: one raw read holds both streams
        reader = InflatingReader(raw)
        assert await reader.readuntil(b"\n") == b"$EOF:" + mark + b"\r\n"
        assert await reader.read(1 << 20) == b"RDB BYTES" + mark
        assert await reader.read(1 << 20) == b"*1\r\n$4\r\nPING\r\n"
        assert reader.wire_bytes == len(wire)

    asyncio.run(scenario())


def test_the_inflating_reader_reads_lines_and_bytes_like_a_socket_and_counts_the_wire() -> None:
    async def scenario() -> None:
        raw = asyncio.StreamReader()
        comp = zlib.compressobj(6)
        payload = b"+FULLRESYNC " + b"a" * 40 + b" 0\r\n$11\r\nhello world"
        wire = deflate_chunk(comp, payload)
        raw.feed_data(wire[:5])
        raw.feed_data(wire[5:])
        reader = InflatingReader(raw)
        assert await reader.readuntil(b"\n") == b"+FULLRESYNC " + b"a" * 40 + b" 0\r\n"
        assert await reader.readuntil(b"\n") == b"$11\r\n"
        assert await reader.read(5) == b"hello"
        assert await reader.read(100) == b" world"
        assert reader.wire_bytes == len(wire)
        tail = deflate_chunk(comp, b"partial line")
        raw.feed_data(tail)
        raw.feed_eof()
        with pytest.raises(asyncio.IncompleteReadError) as info:
            await reader.readuntil(b"\n")
        assert info.value.partial == b"partial line"
        assert await reader.read(10) == b""
        assert reader.wire_bytes == len(wire) + len(tail)

    asyncio.run(scenario())


def test_the_inflating_reader_turns_garbage_into_a_protocol_error() -> None:
    async def scenario() -> None:
        raw = asyncio.StreamReader()
        raw.feed_data(b"+OK this is not deflated\r\n")
        with pytest.raises(ProtocolError, match="sync gateway"):
            await InflatingReader(raw).read(10)

    asyncio.run(scenario())


def test_the_inflating_reader_refuses_an_endless_line() -> None:
    async def scenario() -> None:
        raw = asyncio.StreamReader()
        raw.feed_data(deflate_chunk(zlib.compressobj(6), b"x" * 5000))
        with pytest.raises(asyncio.LimitOverrunError):
            await InflatingReader(raw, limit=1000).readuntil(b"\n")

    asyncio.run(scenario())
