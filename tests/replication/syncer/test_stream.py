"""The command stream against real servers: batches in flight with their checkpoints, counting
what was applied, and which batches may skip MULTI."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from replication.syncer.checkpoint import CHECKPOINT_KEY, EPOCH_KEY, Checkpoint
from replication.syncer.engine import SourceConfig
from tests.support.compare import assert_same_data
from tests.support.load import populate
from tests.support.proxy import TcpProxy
from tests.support.servers import RedisServer
from tests.support.wait import wait_for

from .conftest import EngineThread, in_sync_and_caught_up

pytestmark = pytest.mark.integration

Servers = Callable[..., RedisServer]
Engines = Callable[..., EngineThread]


def test_cut_destination_with_batches_in_flight_applies_each_command_once(
    servers: Servers, engines: Engines
) -> None:
    """Batches are sent without waiting for the previous EXEC. With the destination's replies
    held back, several are applied there but not yet acknowledged to us when the link is cut:
    the checkpoint decides where the stream resumes, so nothing is applied twice or lost."""
    src, dst = servers(), servers()
    link_id = f"127.0.0.1:{src.port}"

    def checkpoint_offset() -> int:
        raw = dst.client().hget(CHECKPOINT_KEY, link_id)
        ckpt = Checkpoint.decode(raw) if isinstance(raw, bytes) else None
        return ckpt.offset if ckpt is not None else -1

    with TcpProxy(dst.port) as proxy:
        et = engines([src.url], f"redis://127.0.0.1:{proxy.port}")
        in_sync_and_caught_up(et, src)
        c = src.client()
        for round_ in range(3):
            proxy.throttle(20_000)  # replies trickle back; batches keep going out meanwhile
            for i in range(30):
                pipe = c.pipeline(transaction=False)
                for j in range(100):
                    pipe.incr("counter")
                    pipe.rpush("seq", f"{round_}:{i}:{j}")
                pipe.execute()
                tx = c.pipeline(transaction=True)
                tx.incr("tx")
                tx.rpush("seq", "tx")
                tx.incr("tx")
                tx.execute()
            wait_for(
                lambda: checkpoint_offset() > et.status().links[0].offset,
                what="batches applied on the destination whose EXEC replies we have not read",
            )
            assert proxy.cut() >= 1
            proxy.throttle(None)
            wait_for(
                lambda r=round_: et.status().as_dict()["partial_syncs"] >= r + 1,
                what="resumed after the cut",
            )
        in_sync_and_caught_up(et, src)
    assert dst.client().get("counter") == b"9000"
    assert dst.client().get("tx") == b"180"
    assert dst.client().lrange("seq", 0, -1) == src.client().lrange("seq", 0, -1)
    assert et.status().as_dict()["full_syncs"] == 1
    assert_same_data([src.client()], [dst.client()])


def test_commands_applied_counts_every_forwarded_command(
    servers: Servers, engines: Engines
) -> None:
    src, dst = servers(), servers()
    et = engines([src.url], dst.url)
    in_sync_and_caught_up(et, src)
    c = src.client()
    c.set("first", "1")  # the stream starts with a SELECT, which counts as a command too
    in_sync_and_caught_up(et, src)
    before = et.status().as_dict()["commands_applied"]
    pipe = c.pipeline(transaction=False)
    for i in range(5000):
        pipe.set(f"k:{i}", "v" * (i % 2000))  # the fast framer and, past 999 bytes, hiredis
    pipe.execute()
    tx = c.pipeline(transaction=True)  # its MULTI and EXEC are not forwarded, nor counted
    tx.incr("a")
    tx.incr("b")
    tx.execute()
    in_sync_and_caught_up(et, src)
    assert et.status().as_dict()["commands_applied"] - before == 5002
    assert_same_data([src.client()], [dst.client()])


@pytest.mark.parametrize("sources", [1, 2])
def test_blind_batches_skip_multi_only_when_one_link_writes(
    servers: Servers, engines: Engines, sources: int
) -> None:
    """With one link, batches of blind writes are pipelined and closed by a PING; with two, a
    replayed cut batch could undo the other source's writes, so every batch stays in MULTI."""
    srcs = [servers() for _ in range(sources)]
    dst = servers()
    et = engines([SourceConfig(s.url, name=f"s{i}") for i, s in enumerate(srcs)], dst.url)
    for i, s in enumerate(srcs):
        s.client().set(f"first:{i}", "1")  # the stream's first SELECT goes through MULTI
        in_sync_and_caught_up(et, s, i)
    multi, ping = dst.command_calls("multi"), dst.command_calls("ping")
    c = srcs[0].client()
    # One batch (or a few) per round. The first ones after the load may still be catching up
    # (expiry gap, fullsync.py), which always goes through MULTI.
    for i in range(20):
        pipe = c.pipeline(transaction=False)
        for j in range(100):
            pipe.set(f"b:{j}", f"{i}:{j}")
        pipe.execute()
        in_sync_and_caught_up(et, srcs[0])
    assert dst.client().get("b:99") == b"19:99"
    if sources == 1:
        assert dst.command_calls("ping") - ping >= 10
    else:
        assert dst.command_calls("ping") == ping
        assert dst.command_calls("multi") - multi >= 20
    assert_same_data([s.client() for s in srcs], [dst.client()])


def test_a_chain_never_copies_the_syncers_bookkeeping_downstream(
    servers: Callable[..., RedisServer], engines: Callable[..., EngineThread]
) -> None:
    """A → B → C: B holds its own syncer's checkpoint and epoch marker, and they reach C in B's
    snapshot and stream. C must apply neither; a flush in B's stream (B loading A again) is
    applied to C without C losing its own markers (no needless full sync of C)."""
    a, b, c = servers(), servers(), servers()
    populate(a.client(), 500)
    ab = engines([a.url], b.url)
    in_sync_and_caught_up(ab, a)
    bc = engines([b.url], c.url)
    in_sync_and_caught_up(bc, b)
    for i in range(200):
        a.client().rpush("log", i)
    in_sync_and_caught_up(ab, a)
    in_sync_and_caught_up(bc, b)
    own = {f"127.0.0.1:{b.port}".encode()}
    assert set(c.client().hgetall(CHECKPOINT_KEY)) == own
    assert c.client().get(EPOCH_KEY) != b.client().get(EPOCH_KEY)

    ab.stop()  # B loads A again from scratch: FLUSHALL, then A's data, in B's stream
    ab = engines([a.url], b.url, flush=True)
    in_sync_and_caught_up(ab, a)
    a.client().rpush("log", "after")
    in_sync_and_caught_up(ab, a)
    in_sync_and_caught_up(bc, b)
    assert bc.engine.full_sync_rounds == 1
    assert set(c.client().hgetall(CHECKPOINT_KEY)) == own
    assert any(e.kind == "flush" and "in its stream" in e.message for e in bc.engine.events())
    assert c.client().lrange("log", -1, -1) == [b"after"]
    assert_same_data([a.client()], [c.client()])
