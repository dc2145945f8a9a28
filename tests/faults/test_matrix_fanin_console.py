"""Issue 11's fault matrix, rows 20-24: many sources, destinations that lose their data, and the
console's own services (control Redis, SQL database) failing under a running sync job.

Rows 20-22 drive a `SyncEngine` in a thread; rows 23-24 a real sync job in the real Celery sync
worker (tests/conftest.py `live_worker`), through the REST API, as an operator runs it. Each row
asserts the oracle (tests/support/oracle.py): the destination exactly the sources, every load's
counter equal and log exactly 1..n, the recovery path from the sources' `INFO stats`, and that the
status and events said what happened. Each prints `FAULT ROW <n>: ... | recovery: ... | <s> s`.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

import pytest
import redis

from replication.syncer.checkpoint import CHECKPOINT_KEY
from replication.syncer.events import EventKind
from tests.replication.syncer.conftest import EngineThread
from tests.support.fault_rows import (  # noqa: F401 - the *_fixture: fixtures
    Stopwatch,
    caught_up_with,
    engines_fixture,
    kinds,
    messages,
    own_servers_fixture,
)
from tests.support.load import BatchLoad, caught_up, populate
from tests.support.oracle import Recovery, assert_exact, sync_stats
from tests.support.servers import RedisClusterServers, RedisServer
from tests.support.wait import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MB = 1024 * 1024
Engines = Callable[..., EngineThread]


def test_row_20_eight_sources_one_comes_back_from_an_older_snapshot(
    own_servers: Callable[..., RedisServer], engines: Engines
) -> None:
    """Row 20: 8 sources into one destination, under load on two of them; source 8 crashes and
    restarts from an RDB older than what was applied. Expected: its PSYNC is refused (a history
    the destination is ahead of), the round restarts every source — flush + one full sync each,
    the restarted source's offered snapshot used as it is — and the destination is exactly the
    8 sources as they are now (the older snapshot's keys, not the lost writes)."""
    sources = [own_servers() for _ in range(8)]
    dst = own_servers()
    clients = [s.client() for s in sources]
    for i, c in enumerate(clients):
        populate(c, 300, prefix=f"s{i}", seed=i)
    victim = sources[7]
    et = engines([s.url for s in sources], dst.url)
    with ExitStack() as stack:
        loads = [stack.enter_context(BatchLoad(clients[i], prefix=f"s{i}:")) for i in (0, 1)]
        for i, s in enumerate(sources):
            caught_up_with(et, s, i)
        clients[7].save()  # the snapshot it will come back from
        populate(clients[7], 200, prefix="lost-in-the-crash")
        clients[7].delete("s7:0", "s7:1")
        caught_up_with(et, victim, 7)
        assert dst.client().exists("lost-in-the-crash:0") == 1
        before = [Recovery(c) for c in clients[:7]]
        with Stopwatch(20, "8 sources, one back from an older RDB") as sw:
            victim.kill()
            victim.start()
            wait_for(lambda: et.engine.full_sync_rounds == 2, what="every source loaded again")
            for i, s in enumerate(sources):
                caught_up_with(et, s, i)
            recovered_s = time.monotonic() - sw.started
        for load in loads:
            load.__exit__()
        for i, c in enumerate(clients):
            caught_up(c, dst.client(), tag=f"s{i}")
    d = dst.client()
    assert d.exists("lost-in-the-crash:0") == 0 and d.exists("s7:0") == 1
    assert (
        assert_exact(
            [s.client() for s in sources],
            [d],
            loads=[(clients[0], "s0:"), (clients[1], "s1:")],
        )
        >= 8 * 300
    )
    for r in before:
        r.done()
    assert [(r.full, r.partial) for r in before] == [(1, 0)] * 7
    assert sync_stats(victim.client()).full == 1  # its counters restarted with it
    events = et.engine.events()
    restart = messages(events, EventKind.ROUND_RESTART)
    assert len(restart) == 1 and f"127.0.0.1:{victim.port}" in restart[0], restart
    assert kinds(events).count("full_sync_started") == 16 and "flush" in kinds(events)
    sw.done(f"flush + 1 full sync of each of the 8 sources, caught up in {recovered_s:.1f} s")


def test_row_21_destination_restarted_without_persistence_is_loaded_again(
    own_servers: Callable[..., RedisServer], engines: Engines
) -> None:
    """Row 21: the destination has no persistence and is killed (-9) and restarted while
    streaming under load: it comes back empty. Expected: never a PSYNC into the empty copy —
    the loss is noticed (epoch marker / checkpoint gone), said in the events, and the destination
    is flushed and loaded again by one full sync; exact, the load's log 1..n."""
    src, dst = own_servers(), own_servers()
    s = src.client()
    populate(s, 3000)
    et = engines([src.url], dst.url)
    with BatchLoad(s) as load:
        caught_up_with(et, src)
        wait_for(lambda: load.n > 2000, what="the load")
        full = Recovery(s)
        with Stopwatch(21, "destination restarted empty (no persistence)") as sw:
            dst.kill()
            dst.start()
            wait_for(lambda: et.engine.full_sync_rounds == 2, what="the copy loaded again")
            caught_up_with(et, src)
            recovered_s = time.monotonic() - sw.started
    caught_up(s, dst.client())
    full.done()
    assert assert_exact([s], [dst.client()], loads=[(s, "")]) >= 3000
    assert (full.full, full.partial) == (1, 0)
    events = et.engine.events()
    why = messages(events, EventKind.ROUND_RESTART) + messages(events, EventKind.FLUSH)
    assert any("lost" in m or "gone" in m for m in why), why
    sw.done(f"loss noticed, flush + 1 full sync, caught up in {recovered_s:.1f} s")


def test_row_22_one_shard_of_a_sharded_destination_restarts_empty(
    own_servers: Callable[..., RedisServer], engines: Engines
) -> None:
    """Row 22: a destination of 3 shards; one shard without persistence (not the one holding the
    checkpoint) restarts empty, its slots still its own, while the source takes writes. Expected:
    its missing epoch marker says the copy is incomplete, everything is flushed and loaded again
    (one full sync), and the destination is exact."""
    src = own_servers()
    s = src.client()
    populate(s, 3000)
    with RedisClusterServers(3) as cluster:
        nodes = [n.client() for n in cluster.nodes]
        dc = cluster.client()
        et = engines([src.url], cluster.url)
        with BatchLoad(s) as load:
            caught_up_with(et, src)
            wait_for(lambda: load.n > 2000, what="the load")
            victim = next(  # a shard whose own epoch marker is all that can tell
                n for n in cluster.nodes if CHECKPOINT_KEY not in n.client().keys("__replicaof:*")
            )
            full = Recovery(s)
            with Stopwatch(22, "one shard of the destination restarted empty") as sw:
                victim.kill()
                victim.start()  # nodes.conf kept: the same slots, no data
                wait_for(lambda: et.engine.full_sync_rounds == 2, what="the copy loaded again")
                caught_up_with(et, src)
                recovered_s = time.monotonic() - sw.started
        caught_up(s, dc)
        full.done()
        assert assert_exact([s], nodes, loads=[(s, "")], dest_client=dc) >= 3000
    # Before the watch sees the missing marker the link may resume (the shard holding the
    # checkpoint is intact) and, while the restarted shard still answers CLUSTERDOWN, a load may
    # have to ask the source for its snapshot again: counted, never silent.
    assert full.full >= 1, (full.full, full.partial)
    restart = messages(et.engine.events(), EventKind.ROUND_RESTART)
    assert any("epoch markers are gone" in m for m in restart), restart
    sw.done(
        f"missing marker noticed, flush + full sync ({full.full} snapshot(s), {full.partial} "
        f"partial resync(s) before the watch noticed), caught up in {recovered_s:.1f} s"
    )


# -- the console -----------------------------------------------------------------------------


class ReplicaWatch:
    """Samples the source's `connected_slaves` every 20 ms: two sync jobs running for one
    destination at once would show as two replicas."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.most = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.most = max(self.most, int(self.client.info("replication")["connected_slaves"]))
            self.samples += 1

    def __enter__(self) -> ReplicaWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def _console_pair(admin_api: Any) -> tuple[Any, Any, redis.Redis, redis.Redis]:
    from tests.replication.test_sync_jobs import admin
    from tests.support.databases import create_active

    a = create_active(admin_api, name="a", memory_size=256 * MB)
    b = create_active(admin_api, name="b", memory_size=256 * MB)
    return a, b, admin(a), admin(b)


def _job_events(b: Any, kind: str) -> int:
    from replication.models import ReplicaEvent

    return ReplicaEvent.objects.filter(destination=b, kind=kind).count()


def test_row_23_control_redis_restarted_under_a_running_sync_job(
    admin_api: Any, live_worker: Any
) -> None:
    """Row 23: the control Redis (broker, job lock, wanted state) restarts empty while a sync job
    streams under load. Expected: the console recovers by itself — the job that lost its lock
    ends, reconcile starts exactly one new job of the same generation, which resumes by partial
    sync — with never two jobs on the destination at once (the source never sees two replicas),
    and the destination exact."""
    from replication import control
    from tests.plugin import control_redis
    from tests.replication.test_sync_jobs import make_replica, wait_status

    a, b, src, dst = _console_pair(admin_api)
    populate(src, 3000)
    make_replica(admin_api, b, a)
    wait_status(admin_api, b, "in-sync")
    with BatchLoad(src) as load, ReplicaWatch(src) as watch:
        wait_for(lambda: load.n > 2000, what="the load")
        caught_up(src, dst)
        started = _job_events(b, "job_started")
        resumed = Recovery(src)
        with Stopwatch(23, "control Redis restarted under a running sync job") as sw:
            control_redis.restart()
            wait_for(lambda: _job_events(b, "job_started") > started, what="a new sync job")
            wait_for(lambda: control.lock_held(b.pk), what="the new job's lock")
            at = int(dst.get("counter") or 0)
            wait_for(lambda: int(dst.get("counter") or 0) > at, what="streaming again")
            wait_status(admin_api, b, "in-sync")
            recovered_s = time.monotonic() - sw.started
        load.__exit__()
        caught_up(src, dst)
    resumed.done()
    assert assert_exact([src], [dst], loads=[(src, "")]) >= 3000
    assert watch.samples > 50 and watch.most == 1, f"{watch.most} replicas at once"
    assert _job_events(b, "job_started") == started + 1  # one new job, no duplicate
    assert (resumed.full, resumed.partial) == (0, 1)
    sw.done(f"the job ended, 1 new job resumed by 1 partial resync in {recovered_s:.1f} s")


def test_row_24_sql_database_unavailable_for_30_s_during_a_sync(
    admin_api: Any, live_worker: Any
) -> None:
    """Row 24: the SQL database is unavailable for 30 s while a sync job streams under load
    (SQLite: another process holds its exclusive lock, so every read and write of the console
    waits and fails). Expected: replication goes on meanwhile (it needs only the control Redis
    and the servers), the job is neither ended nor doubled, the status is saved again once the
    database is back, and the destination is exact."""
    from django.db import connection

    from tests.replication.test_sync_jobs import bdb, make_replica, wait_status

    if connection.vendor != "sqlite":
        pytest.skip("the outage is made with SQLite's exclusive lock")
    a, b, src, dst = _console_pair(admin_api)
    populate(src, 3000)
    make_replica(admin_api, b, a)
    wait_status(admin_api, b, "in-sync")
    path = connection.settings_dict["NAME"]
    with BatchLoad(src) as load, ReplicaWatch(src) as watch:
        wait_for(lambda: load.n > 2000, what="the load")
        caught_up(src, dst)
        started = _job_events(b, "job_started")
        last_update = bdb(admin_api, b)["replica_sources"][0]["last_update"]
        resynced = Recovery(src)
        connection.close()  # this process holds no lock of its own meanwhile
        with Stopwatch(24, "SQL database unavailable for 30 s") as sw:
            outage = sqlite3.connect(path, timeout=30, isolation_level=None)
            try:
                outage.execute("BEGIN EXCLUSIVE")
                at = int(dst.get("counter") or 0)
                time.sleep(30)  # the outage itself
                during = int(dst.get("counter") or 0) - at
            finally:
                outage.close()
            sw.restart()
            wait_for(
                lambda: bdb(admin_api, b)["replica_sources"][0]["last_update"] > last_update,
                what="the status saved again",
            )
            recovered_s = time.monotonic() - sw.started
        load.__exit__()
        caught_up(src, dst)
    resynced.done()
    assert during > 1000, f"only {during} writes applied during the outage"
    assert assert_exact([src], [dst], loads=[(src, "")]) >= 3000
    assert watch.most == 1, f"{watch.most} replicas at once"
    assert _job_events(b, "job_started") == started  # the same job throughout
    assert (resynced.full, resynced.partial) == (0, 0)
    assert bdb(admin_api, b)["replica_sources"][0]["status"] == "in-sync"
    sw.done(
        f"streamed on through the outage ({during} writes applied), no resync; status saved "
        f"again {recovered_s:.1f} s after"
    )
