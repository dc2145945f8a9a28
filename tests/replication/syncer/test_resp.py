"""The replication stream framer (pure units, plus a fuzz of the framer), and the errors that
connections raise, with their kinds, against real servers."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from typing import Any

import hiredis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from replication.syncer import resp
from replication.syncer.errors import (
    AuthError,
    ErrorKind,
    FatalSyncError,
    Origin,
    ProtocolError,
    RetryableError,
    Side,
)
from replication.syncer.resp import (
    CLIENT_CERT_REFUSED,
    CommandStreamParser,
    RespConnection,
    connection_error,
    pack,
)
from replication.syncer.urls import parse_redis_url
from tests.support.servers import RedisServer, free_port, silent_port

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


def test_framing_errors_carry_the_stream_origin() -> None:
    at = Origin(Side.SOURCE, "127.0.0.1:1", 4)
    for method in ("feed", "frame"):
        p = CommandStreamParser(frozenset({b"PING"}), origin=at)
        with pytest.raises(ProtocolError) as info:
            getattr(p, method)(b"+OK\r\n")
        err = info.value
        assert (err.kind, err.side, err.source, err.endpoint) == (
            "protocol",
            "source",
            4,
            at.endpoint,
        )


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


# -- the fast framer (frame) -------------------------------------------------------------------

STOP = frozenset({b"PING", b"REPLCONF", b"SELECT", b"MULTI", b"EXEC"})


def _slow(args: list[bytes]) -> bool:
    """What frame() hands back: stop names, too many arguments, an argument too long."""
    return args[0].upper() in STOP or len(args) > 9 or max(map(len, args)) > 999


def _framed(chunks: list[bytes]) -> tuple[bytes, list[list[bytes]]]:
    p = CommandStreamParser(STOP)
    raw = b""
    others: list[list[bytes]] = []
    for chunk in chunks:
        r, o = p.frame(chunk)
        for start, end, args in o:
            assert r[start:end] == pack(*args)
        raw += r
        others += [args for _, _, args in o]
    assert p.buffered == 0
    return raw, others


def test_frame_returns_only_commands_it_does_not_take() -> None:
    stream = (
        STREAM
        + pack(b"multi")
        + pack(b"HSET", b"h", *[b"f%d" % i for i in range(20)])
        + pack(b"SET", b"k", b"x" * 999)
        + pack(b"SET", b"k", b"x" * 1000)
        + pack(b"exec")
        + pack(b"SELECTX", b"1")
    )
    raw, others = _framed([stream])
    assert raw == stream
    assert others == [c for c in CommandStreamParser().feed(stream)[1] if _slow(c)]
    assert [c[0] for c in others] == [
        *(b"SELECT", b"PING", b"REPLCONF", b"multi", b"HSET", b"SET", b"exec")
    ]


def test_frame_any_split_and_big_commands_across_chunks() -> None:
    stream = STREAM + pack(b"SET", b"big", b"v" * 300_000) + pack(b"DEL", b"big") + STREAM
    expected = [c for c in CommandStreamParser().feed(stream)[1] if _slow(c)]
    for cut in [*range(0, len(STREAM) + 1), 5000, 100_000, len(stream) - 3]:
        assert _framed([stream[:cut], stream[cut:]]) == (stream, expected)
    chunks = [stream[i : i + 65536] for i in range(0, len(stream), 65536)]
    assert _framed(chunks) == (stream, expected)


def test_huge_arguments_are_framed_in_place_and_checked() -> None:
    """An argument over 1 MiB is checked header by header (not packed again): the same raw bytes
    and commands from any split, and a wrong header or CRLF is still a framing error."""
    big = pack(b"SET", b"huge", b"x" * (3 << 20))
    stream = STREAM + big + pack(b"DEL", b"huge")
    expected = [c for c in CommandStreamParser().feed(stream)[1] if _slow(c)]
    assert [b"SET", b"huge", b"x" * (3 << 20)] in expected
    for size in (65536, 1 << 20, len(stream)):
        assert _framed([stream[i : i + size] for i in range(0, len(stream), size)]) == (
            stream,
            expected,
        )
    for bad in (big[:-2] + b"\n\n", big.replace(b"$3145728\r\n", b"$3145728\n\n", 1)):
        with pytest.raises(ProtocolError):
            _framed([STREAM + bad + pack(b"DEL", b"huge")])


def test_a_tls_alert_refusing_our_certificate_is_fatal_not_a_lost_connection() -> None:
    """With TLS 1.3 a server that refuses our client certificate says so after the handshake, on
    the first read: that is configuration (fatal, kind tls), any other broken connection is lost."""
    origin = Origin(Side.SOURCE, "127.0.0.1:1", 0)
    alert = ssl.SSLError(1, "[SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca")
    alert.reason = "TLSV1_ALERT_UNKNOWN_CA"
    err = connection_error(alert, "127.0.0.1:1", origin)
    assert isinstance(err, FatalSyncError) and err.kind == "tls_client" and err.source == 0
    assert "127.0.0.1:1 refused this cluster's syncer certificate" in str(err)
    reset = connection_error(ConnectionResetError(104, "reset"), "127.0.0.1:1", origin)
    assert isinstance(reset, RetryableError) and reset.kind == "lost"
    assert all(r.isupper() for r in CLIENT_CERT_REFUSED)


def test_frame_and_feed_can_alternate() -> None:
    stream = STREAM * 3
    p = CommandStreamParser(STOP)
    raw = b""
    for i in range(0, len(stream), 7):
        chunk = stream[i : i + 7]
        raw += p.frame(chunk)[0] if i % 2 else p.feed(chunk)[0]
    assert raw == stream and p.buffered == 0


@pytest.mark.parametrize("bad", [b"+OK\r\n", b"*0\r\n", b"*-1\r\n", b"$3\r\nabc\r\n", b"!x\r\n"])
def test_frame_non_commands_are_protocol_errors(bad: bytes) -> None:
    p = CommandStreamParser(STOP)
    with pytest.raises(ProtocolError):
        p.frame(STREAM + bad)
    with pytest.raises(ProtocolError):
        p.frame(STREAM)


def _command_lists(words: list[bytes], max_arg: int, max_args: int, max_commands: int) -> Any:
    """Lists of commands: arguments among `words` or any bytes up to `max_arg` long."""
    argument = st.one_of(st.sampled_from(words), st.binary(max_size=max_arg))
    command = st.lists(argument, min_size=1, max_size=max_args)
    return st.lists(command, min_size=1, max_size=max_commands)


@settings(max_examples=300, deadline=None)
@given(
    commands=_command_lists([b"PING", b"select", b"SET", b"x" * 1000, b""], 1100, 12, 15),
    chunk=st.integers(1, 3000),
)
def test_fuzz_frame_agrees_with_feed(commands: list[list[bytes]], chunk: int) -> None:
    stream = b"".join(pack(*c) for c in commands)
    chunks = [stream[i : i + chunk] for i in range(0, len(stream), chunk)]
    assert _framed(chunks) == (stream, [c for c in commands if _slow(c)])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    mutations=st.lists(st.tuples(st.integers(0, len(STREAM) - 1), st.integers(0, 255)), max_size=6),
    chunk=st.integers(1, 64),
)
def test_fuzz_frame_mutated_streams_end_cleanly(
    mutations: list[tuple[int, int]], chunk: int
) -> None:
    """A mutated stream frames into commands whose encodings fill `raw` exactly, or fails."""
    stream = bytearray(STREAM)
    for pos, value in mutations:
        stream[pos] = value
    p = CommandStreamParser(STOP)
    consumed = b""
    try:
        for i in range(0, len(stream), chunk):
            consumed += p.frame(bytes(stream[i : i + chunk]))[0]
    except ProtocolError:
        return
    assert len(consumed) + p.buffered == len(stream)
    raw, cmds = CommandStreamParser().feed(consumed)
    assert raw == consumed and b"".join(pack(*c) for c in cmds) == consumed


def _from_text(text: bytes) -> re.Pattern[bytes]:
    return re.compile(text.replace(resp._BULK, resp._bulk_pattern(resp._FAST_LEN)), re.DOTALL)


@settings(max_examples=300, deadline=None)
@given(
    commands=_command_lists(
        [b"PING", b"select", b"SET", b"DEL", b"PXAT", b"x" * 999, b""], 1001, 10, 12
    ),
    cut=st.integers(0, 50),
    flip=st.tuples(st.integers(0, 20_000), st.integers(0, 255)),
)
def test_spliced_patterns_match_like_the_whole_text_compiled(
    commands: list[list[bytes]], cut: int, flip: tuple[int, int]
) -> None:
    """The framer's patterns are compiled from a parse with the bulk trie spliced in
    (`_compile_with_bulks`): they must match exactly what compiling the whole text matches."""
    stream = bytearray(b"".join(pack(*c) for c in commands))
    if flip[0] < len(stream):
        stream[flip[0]] = flip[1]  # a mutated stream too
    data = bytes(stream[: max(0, len(stream) - cut)])
    pairs = [
        (resp._plain_run(STOP), _from_text(resp._plain_run_text(STOP))),
        (resp._blind_run(), _from_text(resp._blind_run_text())),
    ]
    for spliced, whole in pairs:
        for pos in {0, len(data) // 3, len(data) // 2}:
            a, b = spliced.match(data, pos), whole.match(data, pos)
            assert a is not None and b is not None and a.end() == b.end()


# -- blind writes (batches that may skip MULTI, checkpoint.py) ----------------------------------


def _is_blind(args: list[bytes]) -> bool:
    """The reference rule: SET k v, SET k v PXAT t, DEL/UNLINK of 1..4 keys (names in any case,
    every argument at most 999 bytes)."""
    name = args[0].upper()
    if max(map(len, args)) > 999:
        return False
    if name == b"SET":
        return len(args) == 3 or (len(args) == 5 and args[3].upper() == b"PXAT")
    return name in (b"DEL", b"UNLINK") and 2 <= len(args) <= 5


BLIND = [
    [b"SET", b"k", b"v"],
    [b"set", b"k", b""],
    [b"SET", b"k", b"v" * 999],
    [b"SET", b"k", b"v", b"PXAT", b"1795329457881"],
    [b"Set", b"k", b"v", b"pxat", b"1"],
    [b"DEL", b"a"],
    [b"del", b"a", b"b", b"c", b"d"],
    [b"UNLINK", b"a", b"b"],
]
NOT_BLIND = [
    [b"SET", b"k", b"v", b"NX"],
    [b"set", b"k", b"v", b"keepttl"],
    [b"SET", b"k", b"v", b"EX", b"10"],
    [b"SET", b"k", b"v", b"PX", b"10"],
    [b"SET", b"k", b"v", b"GET"],
    [b"SET", b"k", b"v", b"PXAT", b"1", b"GET"],
    [b"SET", b"k", b"v" * 1000],
    [b"SETX", b"k", b"v"],
    [b"DEL", b"a", b"b", b"c", b"d", b"e"],
    [b"PEXPIREAT", b"k", b"1795329457881"],
    [b"INCR", b"k"],
    [b"HSET", b"h", b"f", b"v"],
    [b"SELECT", b"0"],
    [b"PING"],
]


def test_blind_writes_are_recognised() -> None:
    for cmd in BLIND:
        assert _is_blind(cmd)
        p = CommandStreamParser(STOP)
        raw, _ = p.frame(pack(*cmd) * 3)
        assert raw == pack(*cmd) * 3 and p.blind, cmd
    for cmd in NOT_BLIND:
        assert not _is_blind(cmd)
        for stream in (pack(*cmd), pack(*BLIND[0]) + pack(*cmd), pack(*cmd) + pack(*BLIND[0])):
            p = CommandStreamParser(STOP)
            raw, _ = p.frame(stream)
            assert raw == stream and not p.blind, (cmd, stream)


def test_blind_is_about_the_complete_commands_returned() -> None:
    stream = pack(b"SET", b"a", b"1") + pack(b"DEL", b"a")
    p = CommandStreamParser(STOP)
    raw, _ = p.frame(stream + pack(b"INCR", b"n")[:5])  # a partial INCR stays buffered
    assert (raw, p.blind) == (stream, True)
    raw, _ = p.frame(pack(b"INCR", b"n")[5:])
    assert (raw, p.blind) == (pack(b"INCR", b"n"), False)
    p.frame(stream)
    raw, _ = p.frame(b"")
    assert (raw, p.blind) == (b"", False)  # nothing returned is nothing to apply
    p.frame(stream)
    p.feed(stream)
    assert p.blind is False  # feed() says nothing about it


@settings(max_examples=300, deadline=None)
@given(
    commands=st.lists(
        st.one_of(
            st.sampled_from(BLIND + NOT_BLIND),
            st.lists(
                st.one_of(
                    st.sampled_from([b"SET", b"del", b"UNLINK", b"PXAT", b"NX", b"x" * 1000]),
                    st.binary(max_size=20),
                ),
                min_size=1,
                max_size=6,
            ),
        ),
        min_size=1,
        max_size=12,
    ),
    chunk=st.integers(1, 400),
)
def test_fuzz_blind_means_every_returned_command_is_blind(
    commands: list[list[bytes]], chunk: int
) -> None:
    stream = b"".join(pack(*c) for c in commands)
    p = CommandStreamParser(STOP)
    for i in range(0, len(stream), chunk):
        raw, _ = p.frame(stream[i : i + chunk])
        if not raw:
            continue
        got = CommandStreamParser().feed(raw)[1]
        assert p.blind == all(map(_is_blind, got)), got


# -- connections: what each failure is, and where ------------------------------------------------


def _open_error(url: str, **kwargs: object) -> BaseException:
    async def run() -> BaseException:
        try:
            conn = await RespConnection.open(parse_redis_url(url), **kwargs)  # type: ignore[arg-type]
        except BaseException as exc:
            return exc
        await conn.aclose()
        raise AssertionError(f"{url} opened")

    return asyncio.run(run())


def test_nobody_listening_is_refused_with_its_origin() -> None:
    port = free_port()
    err = _open_error(f"redis://127.0.0.1:{port}", side=Side.DESTINATION, source=2)
    assert isinstance(err, RetryableError) and "cannot connect" in str(err), err
    assert (err.kind, err.side, err.source) == (ErrorKind.REFUSED, "destination", 2)
    assert err.endpoint == f"127.0.0.1:{port}"


def test_a_server_that_never_answers_the_tls_handshake_times_out() -> None:
    with silent_port() as port:
        err = _open_error(f"rediss://127.0.0.1:{port}?connect_timeout=0.3", side=Side.SOURCE)
    assert isinstance(err, RetryableError), err
    assert (err.kind, err.side, err.source) == ("timeout", "source", None)


@contextlib.contextmanager
def _plain_talker() -> Iterator[int]:
    """A port whose server speaks first and not TLS (as a banner or an error line would)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(4)

        def serve() -> None:
            with contextlib.suppress(OSError):
                conn, _ = srv.accept()
                with conn:
                    conn.sendall(b"-ERR this is not TLS\r\n" * 8)
                    conn.recv(1)

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        yield int(srv.getsockname()[1])


def test_a_failed_tls_handshake_is_a_tls_error() -> None:
    with _plain_talker() as port:
        err = _open_error(f"rediss://127.0.0.1:{port}", side=Side.SOURCE, source=0)
    assert isinstance(err, RetryableError) and "TLS handshake failed" in str(err), err
    assert (err.kind, err.side, err.source) == ("tls", "source", 0)


@pytest.mark.integration
def test_wrong_password_is_auth_and_hides_it(servers: Callable[..., RedisServer]) -> None:
    srv = servers(password="right")
    err = _open_error(f"redis://:not-it@127.0.0.1:{srv.port}", side=Side.SOURCE, source=1)
    assert isinstance(err, AuthError) and isinstance(err, FatalSyncError), err
    assert (err.kind, err.side, err.source) == ("auth", "source", 1)
    assert "not-it" not in str(err)


@pytest.mark.integration
def test_a_connection_the_server_closes_is_closed(servers: Callable[..., RedisServer]) -> None:
    srv = servers()

    async def run() -> RetryableError:
        url = parse_redis_url(f"redis://127.0.0.1:{srv.port}")
        conn = await RespConnection.open(url, side=Side.DESTINATION)
        try:
            srv.client().client_kill_filter(_id=await conn.call(b"CLIENT", b"ID"))
            with pytest.raises(RetryableError) as info:
                await conn.call(b"PING")
            return info.value
        finally:
            await conn.aclose()

    err = asyncio.run(run())
    assert (err.kind, err.side) == ("closed", "destination")
    assert "closed by peer" in str(err)


@pytest.mark.integration
def test_an_error_reply_to_call_is_classified_with_the_origin(
    servers: Callable[..., RedisServer],
) -> None:
    srv = servers()
    srv.client().set("s", "x")

    async def run() -> FatalSyncError:
        url = parse_redis_url(f"redis://127.0.0.1:{srv.port}")
        conn = await RespConnection.open(url, side=Side.DESTINATION, source=3)
        try:
            with pytest.raises(FatalSyncError) as info:
                await conn.call(b"INCR", b"s")
            return info.value
        finally:
            await conn.aclose()

    err = asyncio.run(run())
    assert (err.kind, err.side, err.source) == ("command", "destination", 3)
    assert "(command INCR)" in str(err) and "not an integer" in str(err)
