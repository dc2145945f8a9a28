"""The destination pipeline against a real server: every reply matched to its batch and checked,
whether hiredis parses it or it is read directly from the bytes (UNTIL_PONG)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest

from replication.syncer.errors import FatalSyncError, OutOfMemoryError
from replication.syncer.resp import RespConnection, pack
from replication.syncer.urls import parse_redis_url
from replication.syncer.writer import UNTIL_EXEC, UNTIL_PONG, Pipeline, StandaloneWriter
from tests.support.proxy import TcpProxy
from tests.support.servers import RedisServer

pytestmark = pytest.mark.integration

Servers = Callable[..., RedisServer]


async def _pipeline(port: int) -> Pipeline:
    return Pipeline(await RespConnection.open(parse_redis_url(f"redis://127.0.0.1:{port}")))


def test_every_kind_of_batch_in_order_with_replies_in_pieces(servers: Servers) -> None:
    """Blind batches (one-line replies up to +PONG), MULTI … EXEC batches, counted batches and
    calls, interleaved at random, with the replies trickling through a throttled proxy: every
    batch completes in order with the right count, and a value that contains "+PONG\\r\\n"
    (in a bulk reply, parsed by hiredis) does not end a blind batch early."""
    srv = servers()
    srv.client().set("tricky", b"x\r\n+PONG\r\n-ERR not an error\r\n")
    rnd = random.Random(3)
    incrs = [0]

    async def run(port: int) -> list[tuple[int, object]]:
        pipe = await _pipeline(port)
        done: list[tuple[int, object]] = []
        expected: list[tuple[int, object]] = []

        def counted(i: int) -> Callable[[int], None]:
            return lambda k: done.append((i, k))

        def finished(i: int) -> Callable[[], None]:
            return lambda: done.append((i, "two"))

        try:
            for i in range(300):
                kind = rnd.randrange(4)
                if kind == 0:
                    n = rnd.randrange(0, 50)
                    cmds = [
                        pack(b"SET", b"k%d" % rnd.randrange(20), b"%d" % i)
                        if rnd.random() < 0.7
                        else pack(b"DEL", b"k%d" % rnd.randrange(20), b"k%d" % rnd.randrange(20))
                        for _ in range(n)
                    ]
                    pipe.send_nowait(
                        [*cmds, pack(b"PING")],
                        UNTIL_PONG,
                        on_exec=counted(i),
                    )
                    expected.append((i, n))
                elif kind == 1:
                    n = rnd.randrange(1, 20)
                    data = [pack(b"MULTI"), *[pack(b"INCR", b"n")] * n, pack(b"EXEC")]
                    pipe.send_nowait(data, UNTIL_EXEC, on_exec=counted(i))
                    expected.append((i, n))
                    incrs[0] += n
                elif kind == 2:
                    pipe.send_nowait(
                        [pack(b"GET", b"tricky"), pack(b"SET", b"c", b"%d" % i)],
                        2,
                        on_done=finished(i),
                    )
                    expected.append((i, "two"))
                else:
                    assert await pipe.call(pack(b"GET", b"tricky")) == [
                        b"x\r\n+PONG\r\n-ERR not an error\r\n"
                    ]
                    done.append((i, "call"))
                    expected.append((i, "call"))
                if i % 50 == 49:
                    await pipe.wait_idle()
            await pipe.wait_idle()
            assert pipe.error is None
            assert done == expected
            return done
        finally:
            await pipe.aclose()

    with TcpProxy(srv.port) as proxy:
        proxy.throttle(20_000)  # replies arrive in pieces of 1000 bytes
        done = asyncio.run(run(proxy.port))
    assert len(done) == 300
    assert int(srv.client().get("n") or 0) == incrs[0]


def test_an_error_in_a_blind_batch_is_raised_classified(servers: Servers) -> None:
    srv = servers()
    srv.client().set("s", "not a number")

    async def run() -> FatalSyncError:
        pipe = await _pipeline(srv.port)
        try:
            pipe.send_nowait(
                [
                    pack(b"SET", b"a", b"1"),
                    pack(b"INCR", b"s"),
                    pack(b"SET", b"b", b"2"),
                    pack(b"PING"),
                ],
                UNTIL_PONG,
            )
            with pytest.raises(FatalSyncError) as info:
                await pipe.wait_idle()
            return info.value
        finally:
            await pipe.aclose()

    err = asyncio.run(run())
    assert "not an integer" in str(err)


def test_out_of_memory_in_a_blind_batch_is_fatal(servers: Servers) -> None:
    srv = servers(args=["--maxmemory", "2mb", "--maxmemory-policy", "noeviction"])

    async def run() -> BaseException:
        pipe = await _pipeline(srv.port)
        try:
            with pytest.raises(OutOfMemoryError) as info:
                for i in range(200):
                    cmds = [pack(b"SET", b"k:%d:%d" % (i, j), b"v" * 900) for j in range(100)]
                    await pipe.send([*cmds, pack(b"PING")], UNTIL_PONG)
                await pipe.wait_idle()
            return info.value
        finally:
            await pipe.aclose()

    err = asyncio.run(run())
    assert "maxmemory" in str(err)


def test_replies_cut_anywhere_still_count_right(servers: Servers) -> None:
    """Replies in pieces of 5 bytes: +PONG, +QUEUED and EXEC arrays cut at every place."""
    srv = servers()

    async def run(port: int) -> list[tuple[str, int]]:
        pipe = await _pipeline(port)
        done: list[tuple[str, int]] = []
        try:
            for n in range(7):
                sets = [pack(b"SET", b"k%d" % j, b"v") for j in range(n)]
                pipe.send_nowait(
                    [*sets, pack(b"DEL", b"gone"), pack(b"PING")],
                    UNTIL_PONG,
                    on_exec=lambda k: done.append(("blind", k)),
                )
                pipe.send_nowait(
                    [pack(b"MULTI"), *[pack(b"INCR", b"n")] * n, pack(b"EXEC")],
                    UNTIL_EXEC,
                    on_exec=lambda k: done.append(("multi", k)),
                )
            await pipe.wait_idle()
            return done
        finally:
            await pipe.aclose()

    with TcpProxy(srv.port) as proxy:
        proxy.throttle(100)  # 5 bytes every 50 ms
        done = asyncio.run(run(proxy.port))
    assert done == [x for n in range(7) for x in (("blind", n + 1), ("multi", n))]


def test_a_load_of_restores_reads_their_replies_in_the_bytes(servers: Servers) -> None:
    """`load(one_line=True)`: RESTOREs answered +OK, counted up to a PING; a refused payload
    (a bad checksum) stops the load with the destination's error."""
    src, dst = servers(), servers()
    c = src.client()
    for i in range(300):
        c.set(f"k{i}", "v" * 100)
    dumps = [(f"k{i}".encode(), c.dump(f"k{i}")) for i in range(300)]
    packed = [pack(b"RESTORE", k, b"0", d, b"REPLACE") for k, d in dumps if isinstance(d, bytes)]
    bad = bytearray(packed[7])
    bad[-20] ^= 0xFF  # inside the payload's value: its CRC no longer matches

    async def run() -> tuple[int, BaseException]:
        w = StandaloneWriter(parse_redis_url(dst.url))
        await w.open()
        done = []
        try:
            await w.load(list(packed), lambda: done.append(1), one_line=True)
            await w.wait_idle()
            await w.load([*packed[:5], bytes(bad)], lambda: done.append(2), one_line=True)
            with pytest.raises(FatalSyncError) as info:
                await w.wait_idle()
            return len(done), info.value
        finally:
            await w.aclose()

    n_done, err = asyncio.run(run())
    assert n_done == 1
    assert "checksum" in str(err) or "payload" in str(err)
    assert dst.client().dbsize() == 300
