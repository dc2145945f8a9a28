"""Sharded destinations and sharded sources (Redis Cluster) against real clusters."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
import redis

from replication.syncer.cluster import KeySpecs, key_slot
from replication.syncer.engine import SourceConfig
from replication.syncer.errors import CrossSlotError
from tests.support.compare import assert_same_data
from tests.support.load import Load, populate
from tests.support.servers import RedisClusterServers, RedisServer
from tests.support.wait import wait_for

from .conftest import EngineThread, source_offset

pytestmark = pytest.mark.integration


@pytest.fixture
def cluster() -> Iterator[RedisClusterServers]:
    with RedisClusterServers(3) as c:
        yield c


def primaries(c: RedisClusterServers) -> list[redis.Redis]:
    return [n.client() for n in c.nodes]


def test_key_slot_matches_the_server(cluster: RedisClusterServers) -> None:
    client = cluster.nodes[0].client()
    for key in [b"", b"a", b"user:1000", b"{user}:1", b"x{}y", b"{}{a}", b"a{b}c{d}", b"\xff\x00"]:
        assert key_slot(key) == client.execute_command("CLUSTER", "KEYSLOT", key)


def test_keys_from_key_specs(cluster: RedisClusterServers) -> None:
    conn = cluster.nodes[0].client().connection_pool.get_connection()
    conn.send_command("COMMAND")
    specs = KeySpecs.from_command_reply(conn.read_response())  # raw reply, no redis-py parsing
    assert specs.keys([b"SET", b"k", b"v", b"PXAT", b"1"]) == [b"k"]
    assert specs.keys([b"MSET", b"a", b"1", b"b", b"2"]) == [b"a", b"b"]
    assert specs.keys([b"zunionstore", b"d", b"2", b"s1", b"s2", b"WEIGHTS", b"1", b"2"]) == [
        b"d",
        b"s1",
        b"s2",
    ]
    assert specs.keys([b"XREAD", b"COUNT", b"1", b"STREAMS", b"s1", b"s2", b"0", b"0"]) == [
        b"s1",
        b"s2",
    ]
    assert specs.keys([b"EVAL", b"return 1", b"2", b"k1", b"k2", b"arg"]) == [b"k1", b"k2"]
    assert specs.keys([b"OBJECT", b"ENCODING", b"k"]) == [b"k"]
    assert specs.keys([b"FLUSHALL"]) == []
    assert specs.keys([b"FUNCTION", b"LOAD", b"code"]) == []


def test_standalone_source_into_cluster_of_three(
    servers: Callable[..., RedisServer],
    engines: Callable[..., EngineThread],
    cluster: RedisClusterServers,
) -> None:
    src = servers()
    populate(src.client(), 3000)
    et = engines([src.url], cluster.url)
    et.wait_phase("in-sync")
    c = src.client()
    for i in range(300):
        c.incr(f"counter:{i % 7}")
        c.rpush("{tag}log", i)
        c.delete(f"k:{i}")
    c.mset({"{t}a": 1, "{t}b": 2})  # same slot: fine
    et.wait_offset(source_offset(src))
    assert assert_same_data([src.client()], primaries(cluster)) > 2700


def test_cross_slot_command_into_cluster_is_fatal(
    servers: Callable[..., RedisServer],
    engines: Callable[..., EngineThread],
    cluster: RedisClusterServers,
) -> None:
    src = servers()
    et = engines([src.url], cluster.url)
    et.wait_phase("in-sync")
    src.client().mset({"a": 1, "b": 2, "c": 3})
    err = et.wait_done()
    assert isinstance(err, CrossSlotError), err
    assert et.status().phase == "stopped" and "different slots" in (et.status().last_error or "")


def test_cross_slot_command_of_the_second_source_names_it(
    servers: Callable[..., RedisServer],
    engines: Callable[..., EngineThread],
    cluster: RedisClusterServers,
) -> None:
    a, b = servers(), servers()
    et = engines([SourceConfig(a.url, name="a"), SourceConfig(b.url, name="b")], cluster.url)
    et.wait_phase("in-sync", i=0)
    et.wait_phase("in-sync", i=1)
    a.client().mset({"{t}a": 1, "{t}b": 2})  # same slot: fine
    b.client().mset({"a": 1, "b": 2, "c": 3})
    err = et.wait_done()
    assert isinstance(err, CrossSlotError), err
    assert (err.kind, err.side, err.source) == ("cross_slot", "destination", 1)
    assert err.endpoint == f"127.0.0.1:{cluster.nodes[0].port}"
    assert et.status(1).as_dict()["last_error_kind"] == "cross_slot"


def test_sharded_source_of_three_into_standalone(
    servers: Callable[..., RedisServer],
    engines: Callable[..., EngineThread],
    cluster: RedisClusterServers,
) -> None:
    dst = servers()
    rc = cluster.client()
    for i in range(3000):
        rc.set(f"key:{i}", i)
    rc.close()
    et = engines([cluster.url], dst.url)
    et.wait_phase("in-sync")
    st = et.status()
    assert len(st.links) == 3  # one stream per primary, reported as one source
    rc = cluster.client()
    for i in range(300):
        rc.incr(f"counter:{i % 11}")
        rc.delete(f"key:{i}")
    rc.close()
    for node in cluster.nodes:
        off = source_offset(node)
        link = next(
            i for i, ln in enumerate(et.status().links) if ln.address.endswith(f":{node.port}")
        )
        wait_for(
            lambda off=off, link=link: et.status().links[link].offset >= off, what="shard caught up"
        )
    assert assert_same_data(primaries(cluster), [dst.client()]) == 2700 + 11


class _SlotLoad(Load):
    """INCR a counter, RPUSH its value to a log and SET a key, all in the slot of {mig}, in
    pipelines of 100 rounds."""

    def _run(self) -> None:
        n = 0
        while not self.stop.is_set():
            pipe = self.client.pipeline(transaction=False)
            for _ in range(100):  # many commands in flight to the primary that loses the slot
                n += 1
                pipe.incr("{mig}n")
                pipe.rpush("{mig}log", n)
                pipe.set(f"{{mig}}k:{n % 300}", n)
            pipe.execute()


def test_slot_migration_on_the_destination_while_streaming(
    servers: Callable[..., RedisServer],
    engines: Callable[..., EngineThread],
    cluster: RedisClusterServers,
) -> None:
    """The slot being written moves to another primary (MIGRATING/IMPORTING, MIGRATE, SETSLOT
    NODE) while the stream runs: ASK and then MOVED are followed, nothing is lost, duplicated
    or reordered."""
    src = servers()
    et = engines([src.url], cluster.url)
    et.wait_phase("in-sync")
    slot = key_slot(b"mig")
    owner = next(n for i, n in enumerate(cluster.nodes) if slot < 16384 * (i + 1) // 3)
    target = next(n for n in cluster.nodes if n is not owner)
    own, tgt = owner.client(), target.client()
    own_id, tgt_id = (c.execute_command("CLUSTER", "MYID").decode() for c in (own, tgt))
    with _SlotLoad(src.client()):
        wait_for(
            lambda: len(own.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 400)) >= 300,
            what="the slot filled",
        )
        tgt.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", own_id)
        own.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", tgt_id)
        while keys := own.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 5):
            own.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)
            time.sleep(0.02)  # the stream goes on meanwhile: some of its keys are gone (ASK)
        for node in [target, owner, *[n for n in cluster.nodes if n not in (owner, target)]]:
            node.client().execute_command("CLUSTER", "SETSLOT", slot, "NODE", tgt_id)
        before = int(src.client().get("{mig}n") or 0)
        wait_for(lambda: int(src.client().get("{mig}n") or 0) > before + 5000, what="more load")
    et.wait_offset(source_offset(src))
    s = src.client()
    n = int(s.get("{mig}n") or 0)
    assert int(tgt.get("{mig}n") or 0) == n
    assert [int(x) for x in tgt.lrange("{mig}log", 0, -1)] == list(range(1, n + 1))
    assert assert_same_data([s], primaries(cluster)) == 302
    assert int(tgt.info("commandstats")["cmdstat_asking"]["calls"]) > 0  # ASK was followed
    assert int(own.info("errorstats")["errorstat_MOVED"]["count"]) > 0  # and MOVED
    assert et.status().phase == "in-sync"
