"""The engine's rounds against real servers: which links start from where (checkpoints, job
tags, flush), what a round that cannot be resumed does, pause/resume, several sources, and what
the errors that stop a run say about where they happened."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable

import pytest
import redis

from replication.syncer.engine import SourceConfig
from replication.syncer.errors import AuthError, FullSyncRequired, OutOfMemoryError
from tests.support.compare import assert_same_data
from tests.support.load import populate
from tests.support.proxy import TcpProxy
from tests.support.servers import RedisServer
from tests.support.wait import wait_for

from .conftest import EngineThread, in_sync_and_caught_up

pytestmark = pytest.mark.integration

Servers = Callable[..., RedisServer]
Engines = Callable[..., EngineThread]


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


@pytest.mark.parametrize("url_tail", ["", "?cluster=no"])
def test_wrong_password_of_the_second_source_names_it(
    servers: Servers, engines: Engines, url_tail: str
) -> None:
    """Found while resolving the source (its cluster check) or by the link itself (cluster=no):
    either way the error says which source, which side and what, without its password."""
    a, b, dst = servers(), servers(password="right-password"), servers()
    populate(a.client(), 100)
    et = engines([a.url, f"redis://:wrong-password@127.0.0.1:{b.port}{url_tail}"], dst.url)
    err = et.wait_done()
    assert isinstance(err, AuthError), err
    assert (err.kind, err.side, err.source) == ("auth", "source", 1)
    assert err.endpoint == f"127.0.0.1:{b.port}"
    assert "wrong-password" not in str(err)
    st = et.status(1)
    assert st.phase == "stopped" and st.last_error_kind == "auth"
    assert st.as_dict()["last_error_kind"] == "auth"


def test_destination_out_of_memory_names_the_destination_and_the_source(
    servers: Servers, engines: Engines
) -> None:
    """Source 0 is tiny and loaded at once; source 1 fills the destination's memory."""
    a, b = servers(), servers()
    dst = servers(args=["--maxmemory", "3mb", "--maxmemory-policy", "noeviction"])
    populate(a.client(), 10, prefix="a")
    populate(b.client(), 30000, prefix="b")
    et = engines([SourceConfig(a.url, name="a"), SourceConfig(b.url, name="b")], dst.url)
    err = et.wait_done()
    assert isinstance(err, OutOfMemoryError), err
    assert (err.kind, err.side, err.source) == ("oom", "destination", 1)
    assert err.endpoint == f"127.0.0.1:{dst.port}"
    assert et.status(1).as_dict()["last_error_kind"] == "oom"


def _counter_load(server: RedisServer, stop: threading.Event, prefix: str) -> threading.Thread:
    """INCR a counter and RPUSH its value, one at a time, until `stop` (the log is 1..n)."""

    def run() -> None:
        c = server.client()
        while not stop.is_set():
            try:
                n = c.incr(f"{prefix}:counter")
                c.rpush(f"{prefix}:log", n)
            except redis.ConnectionError:
                time.sleep(0.05)  # the source is being restarted

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_a_source_back_from_an_older_snapshot_while_another_streams(
    servers: Servers, engines: Engines
) -> None:
    """Issue 18's stall: source 2 restarts from an RDB older than what was applied while source 1
    keeps streaming. The round restarts every link (a full sync of both, the snapshot source 2
    offered used as it is) and must end, however the cancellations fall; then both sources
    are exact on the destination, and stop() ends the engine."""
    one = servers()
    two = servers(args=["--save", "", "--appendonly", "no"])
    dst = servers()
    stop = threading.Event()
    loads = [_counter_load(one, stop, "one"), _counter_load(two, stop, "two")]
    et = engines([one.url, two.url], dst.url)
    try:
        for round_ in range(3):
            in_sync_and_caught_up(et, one, 0)
            in_sync_and_caught_up(et, two, 1)
            two.client().save()  # the snapshot it will come back from
            time.sleep(0.3)  # more writes applied, beyond that snapshot
            two.kill()
            two.start()
            wait_for(
                lambda r=round_: et.engine.full_sync_rounds >= r + 2,
                what="every source loaded again after source 2 came back older",
            )
    finally:
        stop.set()
        for t in loads:
            t.join(10)
    in_sync_and_caught_up(et, one, 0)
    in_sync_and_caught_up(et, two, 1)
    d = dst.client()
    for server, prefix in ((one, "one"), (two, "two")):
        n = int(server.client().get(f"{prefix}:counter") or 0)
        assert int(d.get(f"{prefix}:counter") or 0) == n > 0
        assert d.lrange(f"{prefix}:log", 0, -1) == server.client().lrange(f"{prefix}:log", 0, -1)
    assert_same_data([one.client(), two.client()], [d])
    et.stop()


def test_the_watchdog_restarts_a_link_stuck_on_a_silent_destination(
    servers: Servers, engines: Engines
) -> None:
    """The destination stops answering while the source takes writes (SIGSTOP): the link is
    found stuck, said so, the round restarted; once the destination answers again, exact."""
    src, dst = servers(), servers()
    populate(src.client(), 300)
    et = engines([src.url], dst.url, stuck_after=3.0)
    in_sync_and_caught_up(et, src)
    os.kill(dst.pid, signal.SIGSTOP)
    try:
        c = src.client()
        for i in range(200):
            c.rpush("log", i)
        wait_for(
            lambda: any(e.kind == "watchdog" for e in et.engine.events()),
            what="the watchdog to find the link stuck",
        )
    finally:
        os.kill(dst.pid, signal.SIGCONT)
    in_sync_and_caught_up(et, src)
    stuck = next(e for e in et.engine.events() if e.kind == "watchdog")
    assert "applied nothing" in stuck.message and "bytes ahead" in stuck.message
    assert dst.client().lrange("log", 0, -1) == [b"%d" % i for i in range(200)]
    assert_same_data([src.client()], [dst.client()])
