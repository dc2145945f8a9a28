"""The replication stream framer and the lag meter (pure units, plus a fuzz of the framer)."""

from __future__ import annotations

import hiredis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from replication.syncer.errors import ProtocolError
from replication.syncer.resp import CommandStreamParser, pack
from replication.syncer.status import LagMeter

STREAM = (
    pack(b"SELECT", b"0")
    + pack(b"SET", b"k", b"v" * 300)
    + pack(b"PING")
    + pack(b"REPLCONF", b"GETACK", b"*")
    + pack(b"RPUSH", b"l", b"a", b"b", b"")
)


def test_commands_and_exact_lengths() -> None:
    raw, cmds = CommandStreamParser().feed(STREAM)
    assert raw == STREAM
    assert [c[0] for c in cmds] == [b"SELECT", b"SET", b"PING", b"REPLCONF", b"RPUSH"]
    ends = CommandStreamParser.ends(cmds)
    assert ends[-1] == len(STREAM)
    starts = [0, *ends[:-1]]
    for args, end, start in zip(cmds, ends, starts, strict=True):
        assert raw[start:end] == pack(*args)


def test_large_arguments_take_the_exact_path() -> None:
    big = pack(b"SET", b"k", b"v" * 70000) + pack(b"DEL", b"k")
    raw, cmds = CommandStreamParser().feed(big)
    assert raw == big and len(cmds) == 2


def test_any_split_gives_the_same_commands_and_offsets() -> None:
    for cut in range(len(STREAM) + 1):
        p = CommandStreamParser()
        raw1, c1 = p.feed(STREAM[:cut])
        raw2, c2 = p.feed(STREAM[cut:])
        assert raw1 + raw2 == STREAM
        assert c1 + c2 == CommandStreamParser().feed(STREAM)[1]
        assert p.buffered == 0


@pytest.mark.parametrize(
    "bad",
    [
        b"+OK\r\n",
        b":1\r\n",
        b"*1\r\n*1\r\n$1\r\na\r\n",
        b"*-1\r\n",
        b"*0\r\n",
        b"$3\r\nabc\r\n",
        b"!x\r\n",
    ],
)
def test_non_commands_are_protocol_errors(bad: bytes) -> None:
    p = CommandStreamParser()
    with pytest.raises(ProtocolError):
        p.feed(bad)
    with pytest.raises(ProtocolError):
        p.feed(STREAM)  # a broken parser stays broken instead of guessing


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.binary(max_size=200),
    mutations=st.lists(st.tuples(st.integers(0, len(STREAM) - 1), st.integers(0, 255)), max_size=6),
    chunk=st.integers(1, 64),
)
def test_fuzz_mutated_streams_end_cleanly(
    data: bytes, mutations: list[tuple[int, int]], chunk: int
) -> None:
    """Random and mutated input: either commands whose lengths add up, or ProtocolError; no hang."""
    stream = bytearray(STREAM)
    for pos, value in mutations:
        stream[pos] = value
    stream += data
    p = CommandStreamParser()
    consumed = 0
    try:
        for i in range(0, len(stream), chunk):
            raw, cmds = p.feed(bytes(stream[i : i + chunk]))
            consumed += len(raw)
            for args in cmds:
                assert isinstance(args[0], bytes)
            if cmds:
                assert CommandStreamParser.ends(cmds)[-1] == len(raw)
    except ProtocolError:
        return
    assert consumed + p.buffered == len(stream)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.binary(max_size=40), min_size=1, max_size=5), min_size=1, max_size=20))
def test_fuzz_valid_commands_round_trip(commands: list[list[bytes]]) -> None:
    stream = b"".join(pack(*c) for c in commands)
    raw, cmds = CommandStreamParser().feed(stream)
    assert raw == stream
    assert cmds == commands


def test_pack_is_length_prefixed_multibulk() -> None:
    assert pack(b"SET", "k", 5) == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n5\r\n"
    r = hiredis.Reader()
    r.feed(pack(b"a\r\nb", bytearray(b"\x00")))
    assert r.gets() == [b"a\r\nb", b"\x00"]


def test_lag_meter() -> None:
    m = LagMeter()
    assert m.lag_ms(0, now=10.0) == 0.0
    m.sample(100, now=10.0)
    m.sample(100, now=10.5)  # unchanged offset keeps the first time it was reached
    m.sample(200, now=11.0)
    assert m.lag_ms(50, now=11.2) == pytest.approx(1200)
    assert m.lag_ms(100, now=11.2) == pytest.approx(200)
    assert m.lag_ms(200, now=11.2) == 0.0
    assert m.latest == 200
