"""The identity of the copy (epoch markers, checkpoint.py): a destination that loses its data
behind the syncer's back is flushed and loaded again, and says so — never left incomplete."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from replication.syncer.checkpoint import CHECKPOINT_KEY, EPOCH_KEY
from replication.syncer.events import EventKind
from tests.support.compare import assert_same_data
from tests.support.load import populate
from tests.support.servers import RedisClusterServers, RedisServer
from tests.support.wait import wait_for

from .conftest import EngineThread, in_sync_and_caught_up

pytestmark = pytest.mark.integration

Servers = Callable[..., RedisServer]
Engines = Callable[..., EngineThread]


def _kinds(et: EngineThread) -> list[str]:
    return [str(e.kind) for e in et.engine.events()]


def test_a_load_marks_the_destination(servers: Servers, engines: Engines) -> None:
    src, dst = servers(), servers()
    populate(src.client(), 200)
    et = engines([src.url], dst.url)
    in_sync_and_caught_up(et, src)
    token = dst.client().get(EPOCH_KEY)
    assert token and len(token) == 32
    kinds = _kinds(et)
    assert kinds[:2] == ["full_sync_started", "full_sync_done"], kinds


def test_a_flush_behind_the_syncers_back_is_loaded_again(
    servers: Servers, engines: Engines
) -> None:
    """FLUSHALL on the destination while streaming, no reconnect at all: the next batches would
    write a fresh checkpoint into an empty copy. The watch sees the marker gone."""
    src, dst = servers(), servers()
    populate(src.client(), 1000)
    et = engines([src.url], dst.url)
    in_sync_and_caught_up(et, src)
    c = src.client()
    for i in range(100):
        c.rpush("log", i)
    in_sync_and_caught_up(et, src)
    dst.client().flushall()
    for i in range(100, 200):
        c.rpush("log", i)
    wait_for(lambda: et.engine.full_sync_rounds == 2, what="the copy loaded again")
    in_sync_and_caught_up(et, src)
    assert dst.client().lrange("log", 0, -1) == [b"%d" % i for i in range(200)]
    assert_same_data([src.client()], [dst.client()])
    events = et.engine.events()
    restart = next(e for e in events if e.kind is EventKind.ROUND_RESTART)
    assert "epoch markers are gone" in restart.message
    assert any(e.kind is EventKind.FLUSH for e in events)


@pytest.mark.parametrize("flush", [("flushall",), ("FlushAll", "ASYNC"), ("flushdb",)])
def test_a_flush_in_the_sources_stream_is_followed_by_the_markers(
    servers: Servers, engines: Engines, flush: tuple[str, ...]
) -> None:
    """A flush of the source (in any case, amid plain writes framed by the fast framer) takes
    the epoch markers with it on the destination: they are written again in the same batch, so
    the copy is never seen without them (no reload)."""
    src, dst = servers(), servers()
    populate(src.client(), 500)
    et = engines([src.url], dst.url)
    in_sync_and_caught_up(et, src)
    token = dst.client().get(EPOCH_KEY)
    c = src.client()
    pipe = c.pipeline(transaction=False)
    for i in range(300):
        pipe.set(f"before:{i}", "v" * 100)
    pipe.execute_command(*flush)
    for i in range(300):
        pipe.set(f"after:{i}", "v" * 100)
    pipe.execute()
    in_sync_and_caught_up(et, src)
    assert dst.client().get(EPOCH_KEY) == token
    assert_same_data([src.client()], [dst.client()])
    assert et.engine.full_sync_rounds == 1
    assert any(
        e.kind is EventKind.FLUSH and "the source flushed" in e.message for e in et.engine.events()
    )


def test_a_restarted_syncer_finds_a_flushed_destination_incomplete(
    servers: Servers, engines: Engines
) -> None:
    """The syncer is down while someone deletes the checkpoint but not the data (or the other
    way round): the next run must not resume into it, nor load without flushing."""
    src, dst = servers(), servers()
    populate(src.client(), 300)
    et = engines([src.url], dst.url)
    in_sync_and_caught_up(et, src)
    et.stop()
    dst.client().delete(CHECKPOINT_KEY)
    dst.client().set("left-over", "x")  # not on the source: must not survive
    et = engines([src.url], dst.url)
    in_sync_and_caught_up(et, src)
    assert dst.client().get("left-over") is None
    assert_same_data([src.client()], [dst.client()])
    assert "flush" in _kinds(et)


def test_a_shard_of_a_cluster_destination_restarted_empty(
    engines: Engines, servers: Servers
) -> None:
    """One shard without persistence dies and comes back empty, its slots still its own: the
    other shards' data and the checkpoint are intact, yet the copy is incomplete."""
    src = servers()
    populate(src.client(), 3000)
    with RedisClusterServers(3) as cluster:
        et = engines([src.url], cluster.url)
        in_sync_and_caught_up(et, src)
        marks = [n.client().keys("__replicaof:{syncer*:epoch") for n in cluster.nodes]
        assert all(len(m) == 1 for m in marks), marks  # one marker on every shard
        # The shard that does not hold the checkpoint: only its own marker can tell.
        victim = next(n for n in cluster.nodes if CHECKPOINT_KEY not in n.client().keys("*"))
        victim.kill()
        victim.start()  # nodes.conf kept: same slots, no data
        wait_for(lambda: et.engine.full_sync_rounds == 2, what="the copy loaded again")
        in_sync_and_caught_up(et, src)
        src.client().incr("after")
        in_sync_and_caught_up(et, src)
        assert cluster.client().get("after") == b"1"
        assert_same_data([src.client()], [n.client() for n in cluster.nodes])
