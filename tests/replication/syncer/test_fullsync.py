"""Full sync against real servers (snapshot loads, writes during the load, the decode fallback,
out of memory), and the expiry gap: end to end, and `ExpiryGap` as a unit."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from replication.syncer.errors import OutOfMemoryError
from replication.syncer.fullsync import ExpiryGap
from tests.support.compare import assert_same_data
from tests.support.load import populate
from tests.support.proxy import TcpProxy
from tests.support.servers import RedisServer

from .conftest import EngineThread, in_sync_and_caught_up, source_offset
from .rdb_fixtures import VALKEY_SERVER

Servers = Callable[..., RedisServer]
Engines = Callable[..., EngineThread]


@pytest.mark.integration
def test_full_sync_then_stream_equal_across_dbs(servers: Servers, engines: Engines) -> None:
    src, dst = servers(), servers()
    populate(src.client(), 3000)
    populate(src.client(db=3), 500, prefix="db3")
    src.client().xadd("stream", {"a": "1"})
    et = engines([src.url], dst.url)
    in_sync_and_caught_up(et, src)
    st = et.status()
    assert st.links[0].restore_mode == "restore"
    assert st.as_dict()["keys_loaded"] == 3000 + 500 + 1
    c, c5 = src.client(), src.client(db=5)
    for i in range(200):
        c.incr("counter")
        c5.rpush("log", i)
        c.delete(f"k:{i}")
    in_sync_and_caught_up(et, src)
    assert assert_same_data([src.client()], [dst.client()], dbs=(0, 3, 5)) > 3000
    assert et.status().as_dict()["commands_applied"] >= 600


@pytest.mark.integration
def test_writes_during_full_sync_all_arrive(servers: Servers, engines: Engines) -> None:
    src, dst = servers(), servers()
    populate(src.client(), 20000)
    stop = threading.Event()

    def load() -> None:
        c = src.client()
        i = 0
        while not stop.is_set():
            c.incr("counter")
            c.rpush("seq", i)
            c.set(f"new:{i}", i)
            c.delete(f"k:{i}")
            i += 1

    with TcpProxy(src.port) as proxy:
        proxy.throttle(1_000_000)  # ~3 s of transfer for the snapshot
        writer = threading.Thread(target=load)
        writer.start()
        try:
            et = engines([f"redis://127.0.0.1:{proxy.port}"], dst.url)
            et.wait_phase("syncing")
            et.wait_phase("in-sync")
            time.sleep(0.5)
        finally:
            stop.set()
            writer.join()
        proxy.throttle(None)
        et.wait_offset(source_offset(src))
    d = dst.client()
    assert int(d.get("counter") or 0) == int(src.client().get("counter") or 0) > 0
    assert d.lrange("seq", 0, -1) == src.client().lrange("seq", 0, -1)
    assert_same_data([src.client()], [d])


@pytest.mark.integration
def test_destination_out_of_memory_is_fatal(servers: Servers, engines: Engines) -> None:
    src = servers()
    dst = servers(args=["--maxmemory", "3mb", "--maxmemory-policy", "noeviction"])
    populate(src.client(), 30000)
    et = engines([src.url], dst.url)
    err = et.wait_done()
    assert isinstance(err, OutOfMemoryError), err
    assert "maxmemory" in str(err)
    assert et.status().phase == "stopped"


@pytest.mark.integration
def test_expiry_gap_key_renewed_during_slow_full_sync(servers: Servers, engines: Engines) -> None:
    src, dst = servers(), servers()
    populate(src.client(), 12000)
    c = src.client()
    renewed = [f"renewed:{i}" for i in range(20)]
    for k in renewed:
        c.set(k, "v", ex=5)
    stop = threading.Event()

    def renew() -> None:
        cc = src.client()
        while not stop.wait(3):
            for k in renewed:
                cc.expire(k, 5)

    t = threading.Thread(target=renew)
    t.start()
    try:
        with TcpProxy(src.port) as proxy:
            proxy.throttle(150_000)  # the snapshot takes ~12 s: longer than the keys' TTL
            et = engines([f"redis://127.0.0.1:{proxy.port}"], dst.url)
            et.wait_phase("syncing")
            et.wait_phase("in-sync", timeout=180)
            proxy.throttle(None)
            in_sync_and_caught_up(et, src)
            time.sleep(6)  # longer than a TTL: the destination must keep following renewals
            in_sync_and_caught_up(et, src)
            d = dst.client()
            missing = [k for k in renewed if not d.exists(k)]
            assert not missing, f"lost on the destination: {missing}"
            assert all(0 < d.pttl(k) <= 5000 for k in renewed)  # real TTLs, not the grace one
    finally:
        stop.set()
        t.join()
    assert_same_data([src.client()], [dst.client()], ttl_tolerance_ms=3500)


@pytest.mark.integration
def test_valkey8_source_into_redis70_uses_the_decode_fallback(
    servers: Servers, engines: Engines
) -> None:
    src, dst = servers(binary=VALKEY_SERVER), servers()
    populate(src.client(), 2000)
    c = src.client()
    c.xadd("stream", {"a": "1"})
    c.xgroup_create("stream", "g", id="0")
    et = engines([src.url], dst.url)
    in_sync_and_caught_up(et, src)
    c.incr("counter")
    in_sync_and_caught_up(et, src)
    assert et.status().links[0].restore_mode == "decode"
    assert_same_data([src.client()], [dst.client()])


def test_decoded_stream_keeps_pending_entries_of_deleted_messages(
    servers: Servers, engines: Engines
) -> None:
    """Valkey 8 → Redis 7.0 (values decoded into commands): a consumer group's pending entry
    whose message was XDELed survives, and the stream's counters are the source's."""
    src, dst = servers(binary=VALKEY_SERVER), servers()
    c = src.client()
    ids = [c.xadd("orders", {"n": str(i)}) for i in range(20)]
    c.xgroup_create("orders", "billing", id="0")
    c.xgroup_create("orders", "audit", id="0")
    c.xreadgroup("billing", "alice", {"orders": ">"}, count=8)
    c.xreadgroup("billing", "bob", {"orders": ">"}, count=5)
    c.xreadgroup("audit", "carol", {"orders": ">"}, count=3)
    c.xdel("orders", ids[2], ids[9], ids[15])  # two of them pending in billing, one in audit
    only = c.xadd("gone", {"x": "1"})
    c.xgroup_create("gone", "g", id="0")
    c.xreadgroup("g", "dan", {"gone": ">"})
    c.xdel("gone", only)  # an empty stream whose only message is pending
    et = engines([src.url], dst.url)
    in_sync_and_caught_up(et, src)
    assert et.status().links[0].restore_mode == "decode"
    d = dst.client()
    for key, group in [("orders", "billing"), ("orders", "audit"), ("gone", "g")]:
        want = c.xpending_range(key, group, "-", "+", 100)
        got = d.xpending_range(key, group, "-", "+", 100)
        assert [(p["message_id"], p["consumer"], p["times_delivered"]) for p in got] == [
            (p["message_id"], p["consumer"], p["times_delivered"]) for p in want
        ], (key, group)
    for key in ("orders", "gone"):
        s_info, d_info = c.xinfo_stream(key), d.xinfo_stream(key)
        for field in ("length", "last-generated-id", "max-deleted-entry-id", "entries-added"):
            assert d_info[field] == s_info[field], (key, field)
        assert d.xrange(key) == c.xrange(key)
    assert_same_data([src.client()], [dst.client()])


def test_expiry_gap_graces_only_early_absolute_expiries() -> None:
    gap = ExpiryGap(grace_ms=9_000)
    gap.grace_below = 5_000
    assert gap.graced([b"PEXPIREAT", b"k", b"4999"], b"PEXPIREAT", 2) == [
        b"PEXPIREAT",
        b"k",
        b"9000",
    ]
    assert gap.graced([b"PEXPIREAT", b"late", b"5000"], b"PEXPIREAT", 0) is None
    assert gap.graced([b"set", b"s", b"v", b"nx", b"pxat", b"10"], b"SET", 0) == [
        *(b"set", b"s", b"v", b"nx", b"pxat", b"9000")
    ]
    assert gap.graced([b"SET", b"plain", b"v"], b"SET", 0) is None
    assert gap.graced([b"SET", b"px", b"v", b"PX", b"10"], b"SET", 0) is None
    assert gap.graced([b"PEXPIREAT", b"bad", b"soon"], b"PEXPIREAT", 0) is None
    assert gap.graced([b"SET", b"short", b"v", b"PXAT"], b"SET", 0) is None
    assert gap.pending == {(2, b"k"): 4999, (0, b"s"): 10}
    # The latest expiry of a key wins.
    gap.graced([b"PEXPIREAT", b"k", b"4000"], b"PEXPIREAT", 2)
    assert gap.pending[2, b"k"] == 4000


def test_expiry_gap_fixup_visits_each_database_and_comes_back() -> None:
    gap = ExpiryGap(grace_ms=9_000)
    gap.pending = {(3, b"c"): 30, (0, b"a"): 10, (3, b"b"): 20}
    cmds = gap.fixup(1, now_ms=1_000)
    scripts = [c for c in cmds if c[0] == b"EVAL"]
    assert [c[0] for c in cmds] == [b"SELECT", b"EVAL", b"SELECT", b"EVAL", b"EVAL", b"SELECT"]
    assert [c[1] for c in cmds if c[0] == b"SELECT"] == [b"0", b"3", b"1"]
    # key, grace expiry (the script acts only if the key still has it), real expiry, floor
    assert [c[3:] for c in scripts] == [
        [b"a", b"9000", b"10", b"11000"],
        [b"b", b"9000", b"20", b"11000"],
        [b"c", b"9000", b"30", b"11000"],
    ]
    assert gap.pending == {}
    assert gap.fixup(0, now_ms=0) == []


@pytest.mark.integration
def test_expiry_gap_fixup_script_keeps_what_the_stream_changed(servers: Servers) -> None:
    """The fix-up's script sets the real expiry only on keys that still have the grace one."""
    srv = servers()
    c = srv.client()
    now = int(time.time() * 1000)
    grace = now + 24 * 3600 * 1000
    c.set("graced", "v", pxat=grace)
    c.set("persisted", "v")  # the stream made it persistent meanwhile
    c.set("renewed", "v", pxat=now + 3_600_000)  # the stream renewed it meanwhile
    gap = ExpiryGap(grace_ms=grace)
    gap.pending = {(0, b"graced"): now + 600_000, (0, b"persisted"): now, (0, b"renewed"): now}
    for cmd in gap.fixup(0, now_ms=now):
        c.execute_command(*cmd)
    assert c.pexpiretime("graced") == now + 600_000
    assert c.pttl("persisted") == -1
    assert c.pexpiretime("renewed") == now + 3_600_000
