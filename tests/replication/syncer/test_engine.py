"""The syncer against real servers: full sync, streaming, faults, resumption, fatal errors."""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable

import pytest
import redis

from replication.syncer.checkpoint import CHECKPOINT_KEY, Checkpoint
from replication.syncer.engine import SourceConfig
from replication.syncer.errors import (
    AuthError,
    FullSyncRequired,
    OutOfMemoryError,
    OutputBufferLimitError,
)
from tests.support.compare import assert_same_data
from tests.support.proxy import TcpProxy
from tests.support.servers import RedisServer
from tests.support.wait import wait_for

from .conftest import VALKEY_SERVER, EngineThread, source_offset

pytestmark = pytest.mark.integration

Servers = Callable[..., RedisServer]
Engines = Callable[..., EngineThread]


def populate(
    client: redis.Redis, n: int, *, prefix: str = "k", ttl_every: int = 10, seed: int = 1
) -> None:
    """A mix of types; every `ttl_every`-th key has a TTL (far enough not to expire in a test)."""
    rnd = random.Random(seed)
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        key = f"{prefix}:{i}"
        kind = i % 20
        if kind < 14:
            pipe.set(key, rnd.randbytes(100))
        elif kind < 16:
            pipe.hset(key, mapping={f"f{j}": rnd.randbytes(10) for j in range(10)})
        elif kind < 18:
            pipe.rpush(key, *[rnd.randbytes(10) for _ in range(10)])
        elif kind < 19:
            pipe.sadd(key, *[rnd.randbytes(10) for _ in range(10)])
        else:
            pipe.zadd(key, {rnd.randbytes(10): rnd.random() for _ in range(10)})
        if i % ttl_every == 0:
            pipe.expire(key, 3600 + i % 100)
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()


def in_sync_and_caught_up(et: EngineThread, source: RedisServer, i: int = 0) -> None:
    et.wait_phase("in-sync", i=i)
    et.wait_offset(source_offset(source), i=i)


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


def test_cut_mid_stream_resumes_with_partial_sync(servers: Servers, engines: Engines) -> None:
    src, dst = servers(), servers()
    populate(src.client(), 2000)
    with TcpProxy(src.port) as proxy:
        et = engines([f"redis://127.0.0.1:{proxy.port}"], dst.url)
        in_sync_and_caught_up(et, src)
        c = src.client()
        for round_ in range(3):
            for i in range(300):
                c.incr("counter")
                c.rpush("seq", f"{round_}:{i}")
            assert proxy.cut() >= 1
            for _ in range(300):
                c.incr("counter")
            wait_for(
                lambda r=round_: et.status().as_dict()["partial_syncs"] >= r + 1, what="+CONTINUE"
            )
        in_sync_and_caught_up(et, src)
    st = et.status().as_dict()
    assert st["partial_syncs"] == 3 and st["full_syncs"] == 1  # every reconnect was +CONTINUE
    assert src.client().get("counter") == dst.client().get("counter") == b"1800"
    assert_same_data([src.client()], [dst.client()])


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


@pytest.mark.parametrize("automatic", [True, False])
def test_cut_mid_snapshot(servers: Servers, engines: Engines, automatic: bool) -> None:
    """A snapshot cannot be resumed: automatic mode flushes and reloads, else the caller is told."""
    src, dst = servers(), servers()
    populate(src.client(), 20000)
    with TcpProxy(src.port) as proxy:
        proxy.throttle(500_000)
        et = engines([f"redis://127.0.0.1:{proxy.port}"], dst.url, auto_full_sync=automatic)
        wait_for(
            lambda: et.status().as_dict()["keys_loaded"] > 1000, what="part of the snapshot loaded"
        )
        proxy.cut()
        if not automatic:
            assert isinstance(et.wait_done(), FullSyncRequired)
            return
        # keys deleted now were loaded already: they must not survive as orphans
        src.client().delete(*[f"k:{i}" for i in range(0, 20000, 7)])
        proxy.throttle(None)
        in_sync_and_caught_up(et, src)
    assert et.engine.full_sync_rounds == 2
    assert_same_data([src.client()], [dst.client()])


def test_backlog_too_small_tells_the_caller(servers: Servers, engines: Engines) -> None:
    src = servers(args=["--repl-backlog-size", "16kb"])
    dst = servers()
    populate(src.client(), 100)
    with TcpProxy(src.port) as proxy:
        et = engines([f"redis://127.0.0.1:{proxy.port}"], dst.url, auto_full_sync=False)
        in_sync_and_caught_up(et, src)
        proxy.refuse(True)
        proxy.cut()
        populate(src.client(), 2000, prefix="during-outage")  # ~300 kB, far over the backlog
        proxy.refuse(False)
        err = et.wait_done()
    assert isinstance(err, FullSyncRequired), err
    assert "backlog" in str(err)


def test_source_shutdown_save_restart_continues_with_new_replid(
    servers: Servers, engines: Engines
) -> None:
    src, dst = servers(), servers()
    populate(src.client(), 1000)
    with TcpProxy(src.port) as proxy:
        et = engines([f"redis://127.0.0.1:{proxy.port}"], dst.url, auto_full_sync=False)
        in_sync_and_caught_up(et, src)
        src.client().incr("before")
        in_sync_and_caught_up(et, src)
        old = et.status().links[0].replid
        attempts = proxy.accepted_total
        with contextlib.suppress(redis.ConnectionError):
            src.client().shutdown(save=True)
        assert src.proc is not None
        src.proc.wait(30)
        # Stay down through several reconnects: closes before the source answers PSYNC are
        # plain connection errors, never the output-buffer-limit heuristic's drops.
        wait_for(lambda: proxy.accepted_total >= attempts + 3, what="3 reconnect attempts")
        src.start()
        src.client().incr("after")
        wait_for(
            lambda: et.status().as_dict()["partial_syncs"] >= 1, what="partial resync after restart"
        )
        in_sync_and_caught_up(et, src)
    st = et.status()
    assert st.links[0].replid != old and st.as_dict()["full_syncs"] == 1
    assert_same_data([src.client()], [dst.client()])


@pytest.mark.parametrize("how", ["change-repl-id", "crash"])
def test_new_history_on_the_source_is_reported(
    servers: Servers, engines: Engines, how: str
) -> None:
    src, dst = servers(), servers()
    populate(src.client(), 100)
    with TcpProxy(src.port) as proxy:
        et = engines([f"redis://127.0.0.1:{proxy.port}"], dst.url, auto_full_sync=False)
        in_sync_and_caught_up(et, src)
        if how == "crash":
            src.kill()
            src.start()
        else:
            src.client().execute_command("DEBUG", "CHANGE-REPL-ID")
            proxy.cut()
        err = et.wait_done()
    assert isinstance(err, FullSyncRequired), err


def test_new_history_restarts_everything_when_automatic(servers: Servers, engines: Engines) -> None:
    src, dst = servers(), servers()
    populate(src.client(), 300)
    with TcpProxy(src.port) as proxy:
        et = engines([f"redis://127.0.0.1:{proxy.port}"], dst.url)
        in_sync_and_caught_up(et, src)
        dst.client().set("orphan", "x")  # flushed by the automatic restart
        src.client().execute_command("DEBUG", "CHANGE-REPL-ID")
        proxy.cut()
        wait_for(lambda: et.engine.full_sync_rounds == 2, what="second full sync")
        in_sync_and_caught_up(et, src)
    assert_same_data([src.client()], [dst.client()])


def test_wrong_password_is_fatal_without_retry(servers: Servers, engines: Engines) -> None:
    src, dst = servers(password="right-password"), servers()
    with TcpProxy(src.port) as proxy:
        et = engines([f"redis://:wrong@127.0.0.1:{proxy.port}"], dst.url)
        err = et.wait_done()
        assert isinstance(err, AuthError), err
        assert proxy.connections_total == 1
    st = et.status()
    assert st.phase == "stopped" and "authentication failed" in (st.last_error or "")


def test_destination_out_of_memory_is_fatal(servers: Servers, engines: Engines) -> None:
    src = servers()
    dst = servers(args=["--maxmemory", "3mb", "--maxmemory-policy", "noeviction"])
    populate(src.client(), 30000)
    et = engines([src.url], dst.url)
    err = et.wait_done()
    assert isinstance(err, OutOfMemoryError), err
    assert "maxmemory" in str(err)
    assert et.status().phase == "stopped"


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


def test_several_sources_into_one_destination(servers: Servers, engines: Engines) -> None:
    a, b, dst = servers(), servers(), servers()
    populate(a.client(), 1000, prefix="a")
    populate(b.client(), 1000, prefix="b")
    et = engines([SourceConfig(a.url, name="a"), SourceConfig(b.url, name="b")], dst.url)
    for i, s in enumerate((a, b)):
        in_sync_and_caught_up(et, s, i)
    a.client().incr("ca")
    b.client().incr("cb")
    for i, s in enumerate((a, b)):
        in_sync_and_caught_up(et, s, i)
    assert_same_data([a.client(), b.client()], [dst.client()])


def test_pause_keeps_position_and_resume_continues(servers: Servers, engines: Engines) -> None:
    src, dst = servers(), servers()
    populate(src.client(), 500)
    et = engines([src.url], dst.url)
    in_sync_and_caught_up(et, src)
    et.engine.pause()
    et.wait_phase("stopped")
    src.client().incr("while-paused")
    time.sleep(0.3)
    assert dst.client().get("while-paused") is None
    et.engine.resume()
    in_sync_and_caught_up(et, src)
    assert et.status().as_dict()["partial_syncs"] == 1
    assert_same_data([src.client()], [dst.client()])


def test_source_dropping_us_for_output_buffer_limit_is_fatal_and_named(
    servers: Servers, engines: Engines
) -> None:
    src = servers(args=["--client-output-buffer-limit", "replica 256kb 128kb 1"])
    dst = servers()
    populate(src.client(), 20000)
    stop = threading.Event()

    def load() -> None:
        c = src.client()
        blob = b"x" * 1000
        while not stop.is_set():
            c.set("churn", blob)

    t = threading.Thread(target=load)
    t.start()
    try:
        with TcpProxy(src.port) as proxy:
            proxy.throttle(300_000)  # slow snapshot: the writes buffered for us exceed the limit
            et = engines([f"redis://127.0.0.1:{proxy.port}"], dst.url)
            err = et.wait_done(timeout=180)
    finally:
        stop.set()
        t.join()
    assert isinstance(err, OutputBufferLimitError), err
    assert "client-output-buffer-limit" in str(err)


def test_job_tag_flushes_for_a_new_job_and_resumes_the_same_job(
    servers: Servers, engines: Engines
) -> None:
    src, dst = servers(), servers()
    populate(src.client(), 300)
    dst.client().set("stray", "written before Replica Of")
    et = engines([SourceConfig(src.url, name="source-1")], dst.url, job_tag="7:1")
    in_sync_and_caught_up(et, src)
    assert dst.client().get("stray") is None  # the first job of a tag starts clean
    et.stop()

    # Same tag again (a re-queued job): partial sync, nothing flushed.
    src.client().incr("between-jobs")
    et = engines([SourceConfig(src.url, name="source-1")], dst.url, job_tag="7:1")
    in_sync_and_caught_up(et, src)
    assert et.status().as_dict()["partial_syncs"] == 1
    assert et.status().as_dict()["full_syncs"] == 0
    assert_same_data([src.client()], [dst.client()])
    et.stop()

    # A new tag (a new generation): flushed and loaded again even though it could resume.
    dst.client().set("stray", "written by admin")
    et = engines([SourceConfig(src.url, name="source-1")], dst.url, job_tag="7:2")
    in_sync_and_caught_up(et, src)
    assert et.status().as_dict()["full_syncs"] == 1
    assert dst.client().get("stray") is None
    assert_same_data([src.client()], [dst.client()])


def test_destination_restarted_empty_is_loaded_again(servers: Servers, engines: Engines) -> None:
    """A destination without persistence that is killed and restarts empty has lost every key
    and the checkpoint: the syncer must not resume by PSYNC into it, but load everything again."""
    src, dst = servers(), servers()
    populate(src.client(), 2000)
    et = engines([src.url], dst.url)
    in_sync_and_caught_up(et, src)
    c = src.client()
    for i in range(300):
        c.incr("counter")
        c.rpush("seq", i)
    in_sync_and_caught_up(et, src)
    dst.kill()
    dst.start()
    for i in range(300, 600):
        c.incr("counter")
        c.rpush("seq", i)
    wait_for(lambda: et.engine.full_sync_rounds == 2, what="a second full sync")
    in_sync_and_caught_up(et, src)
    assert dst.client().get("counter") == b"600"
    assert dst.client().lrange("seq", 0, -1) == [b"%d" % i for i in range(600)]
    assert_same_data([src.client()], [dst.client()])
