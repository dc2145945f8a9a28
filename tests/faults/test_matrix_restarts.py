"""Issue 11's fault matrix, rows 7-12: processes that die, freeze or restart — the syncer (the
CLI, and the console's sync worker), and the source.

As in test_matrix_links.py every row asserts the oracle under the matrix's two write loads, how
the source served the recovery (its sync_full / sync_partial_ok counters: `Recovery`, or, after
the source itself restarted and its counters started again from 0, `sync_stats`), and what the
syncer said: the CLI's stderr event lines, the engine's events and status, the console's event
list. Each row prints its recovery path and time (`figures`).
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
import redis

from replication.syncer.checkpoint import CHECKPOINT_KEY, Checkpoint, CheckpointState
from tests.replication.syncer.conftest import Cli, EngineThread
from tests.support.load import caught_up, populate
from tests.support.oracle import Recovery, sync_stats
from tests.support.wait import wait_for

from .conftest import (
    KEYS,
    Clis,
    Clock,
    Engines,
    Figures,
    Proxies,
    Rig,
    event_lines,
    exact,
    flowing,
    freeze,
    kinds,
    reloaded,
    streaming_via_proxy,
    thaw,
    via,
    writing,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def checkpoints(dst: redis.Redis) -> list[Checkpoint | None]:
    raw = dst.hgetall(CHECKPOINT_KEY).values()
    return [Checkpoint.decode(v if isinstance(v, bytes) else v.encode()) for v in raw]


def test_row_07_kill9_of_the_syncer_mid_stream_resumes_by_partial_sync_without_duplicates(
    rig: Rig, cli: Clis, figures: Figures
) -> None:
    """Row 7, `kill -9` of the syncer CLI while it streams under load, twice; the source keeps
    writing while no syncer runs. Expected: each restart continues from the checkpoint the
    destination holds (partial resync, no snapshot, no flush), every write applied exactly once
    (the logs are exactly 1..n: no duplicate, no gap); each new process logs its partial resync."""
    rig.source.configure(repl_backlog_size="64mb")
    populate(rig.src(), KEYS)
    args = (rig.source.url, "--to", rig.dest.url, "--quiet")
    proc = cli(*args)
    caught_up(rig.src(), rig.dst())
    recover: list[float] = []
    with writing(rig.src()) as load, Recovery(rig.src()) as rec:
        for _ in range(2):
            flowing(rig.dst())
            proc.kill9()
            written = load.n
            wait_for(lambda w=written: load.n > w + 500, what="writes while no syncer runs")
            clock = Clock()
            proc = cli(*args)

            def resumed(p: Cli = proc) -> bool:
                return bool(event_lines(p, "partial_resync"))

            recover.append(clock.wait(resumed, what="the partial resync"))
            assert not event_lines(proc, "full_sync_started") and not event_lines(proc, "flush")
        flowing(rig.dst())
    keys = exact(rig.src(), rig.dst())
    assert (rec.full, rec.partial) == (0, 2)
    assert proc.stop() == 0
    figures("row 07", rec, keys=keys, recover_s=" ".join(f"{s:.2f}" for s in recover))


def test_row_07b_kill9_of_the_console_sync_worker_resumes_by_partial_sync_without_duplicates(
    rig: Rig, admin_api: Any, live_worker: Any, figures: Figures
) -> None:
    """Row 7, in the console: `kill -9` of the Celery worker that runs the sync job, while it
    streams under load. Expected: once the dead job's lock expires, reconcile starts a new job
    that resumes by partial sync (no snapshot, no flush) and applies every write exactly once;
    the destination's event list says partial resync."""
    from django.utils import timezone

    from console.models import Database
    from replication import control
    from replication.models import ReplicaEvent
    from tests.support.databases import create_active

    rig.source.configure(repl_backlog_size="64mb")
    populate(rig.src(), KEYS)
    dest = create_active(admin_api, name="row07b")
    resp = admin_api.put(
        f"/v1/bdbs/{dest.pk}", {"replica_sources": [{"uri": rig.source.url}]}, format="json"
    )
    assert resp.status_code == 200, resp.content
    dest = Database.objects.get(pk=dest.pk)
    dst = redis.Redis(port=dest.port, username="admin", password=dest.internal_password)

    def source_status() -> str:
        return str(admin_api.get(f"/v1/bdbs/{dest.pk}").json()["replica_sources"][0]["status"])

    wait_for(lambda: source_status() == "in-sync", what="the sync job in sync")
    src = rig.src()
    caught_up(src, dst)
    with writing(src), Recovery(src) as rec:
        flowing(dst)
        killed_at = timezone.now()
        live_worker.kill_sync()
        clock = Clock()
        wait_for(lambda: not control.lock_held(dest.pk), what="the dead job's lock to expire")
        live_worker.start_sync()
        flowing(dst)
        recover_s = clock.elapsed()
        flowing(dst)
    keys = exact(src, dst)
    assert (rec.full, rec.partial) == (0, 1)
    after = ReplicaEvent.objects.filter(destination=dest, time__gte=killed_at)
    wait_for(
        lambda: after.filter(kind="partial_resync").exists(),
        what="the partial resync in the destination's events",
    )
    seen = list(after.values_list("kind", flat=True))
    assert "job_started" in seen and "flush" not in seen, seen
    assert "full_sync_started" not in seen, seen
    wait_for(lambda: source_status() == "in-sync", what="in-sync again")
    figures("row 07b", rec, keys=keys, recover_s=recover_s)


def test_row_08_kill9_of_the_syncer_mid_rdb_flushes_and_loads_again(
    rig: Rig, proxies: Proxies, cli: Clis, figures: Figures
) -> None:
    """Row 8, `kill -9` of the syncer CLI in the middle of loading the snapshot. The destination
    holds part of it and a `loading` checkpoint. Expected: the next process flushes (and says
    why), loads one new snapshot (2 full syncs in all, no partial), then streams exactly."""
    populate(rig.src(), KEYS)
    proxy = proxies(rig.source)
    proxy.throttle(150_000)  # the snapshot takes seconds: time to kill the syncer in it
    args = (via(proxy), "--to", rig.dest.url, "--quiet")
    with writing(rig.src()), Recovery(rig.src()) as rec:
        proc = cli(*args)
        wait_for(lambda: rig.dst().dbsize() > 500, what="part of the snapshot loaded")
        proc.kill9()
        assert [c and c.state for c in checkpoints(rig.dst())] == [CheckpointState.LOADING]
        assert rig.dst().dbsize() < KEYS
        proxy.throttle(None)
        clock = Clock()
        proc = cli(*args)
        recover_s = clock.wait(
            lambda: event_lines(proc, "full_sync_done"), what="the snapshot loaded again"
        )
        flowing(rig.dst())
    keys = exact(rig.src(), rig.dst())
    assert (rec.full, rec.partial) == (2, 0)
    flush = event_lines(proc, "flush")
    assert len(flush) == 1 and "cannot be resumed" in flush[0], proc.output()
    assert len(event_lines(proc, "full_sync_started")) == 1
    assert proc.stop() == 0
    figures("row 08", rec, keys=keys, recover_s=recover_s)


def test_row_09_syncer_frozen_past_the_source_repl_timeout_resumes_by_partial_sync(
    rig: Rig, cli: Clis, figures: Figures
) -> None:
    """Row 9, the syncer CLI frozen (SIGSTOP) until the source drops it for its `repl-timeout`
    (3 s without an ack), then thawed (SIGCONT). Expected: the syncer finds its link closed,
    logs the reconnect, continues by partial resync (the backlog holds the outage) and applies
    every write exactly once."""
    rig.source.configure(repl_timeout=3, repl_backlog_size="64mb")
    populate(rig.src(), KEYS)
    proc = cli(rig.source.url, "--to", rig.dest.url, "--quiet")
    caught_up(rig.src(), rig.dst())
    log_at = rig.source.logfile.stat().st_size
    with writing(rig.src()), Recovery(rig.src()) as rec:
        flowing(rig.dst())
        frozen = Clock()
        freeze(proc)
        wait_for(
            lambda: rig.source.info_int("replication", "connected_slaves") == 0,
            what="the source to drop the frozen replica",
        )
        frozen_s = frozen.elapsed()
        assert "Disconnecting timedout replica" in rig.source.logfile.read_text()[log_at:]
        clock = Clock()
        thaw(proc)
        recover_s = clock.wait(
            lambda: event_lines(proc, "partial_resync"), what="the partial resync after the thaw"
        )
        flowing(rig.dst())
    keys = exact(rig.src(), rig.dst())
    assert (rec.full, rec.partial) == (0, 1)
    assert event_lines(proc, "reconnect") and len(event_lines(proc, "full_sync_started")) == 1
    assert not event_lines(proc, "flush")
    assert proc.stop() == 0
    figures("row 09", rec, keys=keys, frozen_s=frozen_s, recover_s=recover_s)


def _down(rig: Rig, et: EngineThread, how: str) -> str:
    """Stop the source (`save`: SHUTDOWN SAVE; `crash`: kill -9) and wait until the status says
    out-of-sync; returns the source's replication id before."""
    replid = str(rig.src().info("replication")["master_replid"])
    if how == "save":
        with contextlib.suppress(redis.ConnectionError):
            rig.src().shutdown(save=True)
        assert rig.source.proc is not None
        rig.source.proc.wait(30)
    else:
        rig.source.kill()
    wait_for(lambda: et.status().phase == "out-of-sync", what="the status to say out-of-sync")
    return replid


def test_row_10_source_shutdown_save_restart_resumes_by_partial_sync_with_the_new_replid(
    rig: Rig, engines: Engines, figures: Figures
) -> None:
    """Row 10, the source stopped with `SHUTDOWN SAVE` and started again from that snapshot: it
    comes back with a new replication id and the old one as its second. Expected: +CONTINUE
    (a partial resync, no snapshot), the status carries the new id, the data exact."""
    populate(rig.src(), KEYS)
    et = engines([rig.source.url], rig.dest.url)
    et.wait_phase("in-sync")
    with writing(rig.src()):
        flowing(rig.dst())
    # Caught up first: a source restarted from its snapshot has an empty backlog, so only a
    # replica at its very last offset can continue (a replica behind gets a full sync: Redis).
    caught_up(rig.src(), rig.dst())
    old = _down(rig, et, "save")
    clock = Clock()
    rig.source.start()

    def resumed() -> bool:
        assert rig.source.running, rig.source.log_tail()
        assert et.engine.full_sync_rounds == 1, (
            f"{kinds(et)}; checkpoints {checkpoints(rig.dst())}; source offset "
            f"{rig.source.info_int('replication', 'master_repl_offset')}\n"
            f"{rig.source.log_tail(lines=40)}"
        )
        st = et.status()
        return st.as_dict()["partial_syncs"] == 1 and st.phase == "in-sync"

    with writing(rig.src()):
        recover_s = clock.wait(resumed, what="the partial resync after the restart")
        flowing(rig.dst())
    keys = exact(rig.src(), rig.dst())
    since_restart = sync_stats(rig.src())
    assert (since_restart.full, since_restart.partial_ok) == (0, 1)
    info = rig.src().info("replication")
    assert info["master_replid"] != old and info["master_replid2"] == old
    assert et.status().links[0].replid == info["master_replid"]
    resync = next(e for e in et.engine.events() if e.kind == "partial_resync")
    assert info["master_replid"] in resync.message
    assert kinds(et).count("full_sync_started") == 1 and "flush" not in kinds(et)
    figures("row 10", since_restart, keys=keys, recover_s=recover_s)


def test_row_11_source_crash_restarted_from_an_older_rdb_loads_the_new_source(
    rig: Rig, engines: Engines, figures: Figures
) -> None:
    """Row 11, the source saves a snapshot, takes more writes (the syncer applies them), is
    killed with -9 and starts again from the older snapshot: those writes are gone from it.
    Expected: the source refuses our position (it is ahead of the source's), the destination is
    flushed and loaded from one snapshot, and equals the source as it is now."""
    populate(rig.src(), KEYS)
    et = engines([rig.source.url], rig.dest.url)
    et.wait_phase("in-sync")
    with writing(rig.src()):
        flowing(rig.dst())
    rig.src().save()
    populate(rig.src(), 500, prefix="lost")
    rig.src().incr("counter")  # the counter ahead of its log: undone by the older snapshot
    dst = rig.dst()
    wait_for(lambda: dst.exists("lost:499"), what="the writes after the snapshot")
    _down(rig, et, "crash")
    clock = Clock()
    rig.source.start()
    assert rig.src().exists("lost:0") == 0
    with writing(rig.src()):
        recover_s = clock.wait(reloaded(et), what="the full sync after the restart")
        flowing(rig.dst())
    keys = exact(rig.src(), rig.dst())
    assert rig.dst().exists("lost:0") == 0
    since_restart = sync_stats(rig.src())
    assert (since_restart.full, since_restart.partial_ok) == (1, 0)
    seen = kinds(et)
    assert seen.count("flush") == 1 and seen.count("round_restart") == 1, seen
    assert seen.count("full_sync_started") == 2 and "partial_resync" not in seen, seen
    figures("row 11", since_restart, keys=keys, recover_s=recover_s)


def test_row_12_debug_change_repl_id_costs_one_full_sync(
    rig: Rig, proxies: Proxies, engines: Engines, figures: Figures
) -> None:
    """Row 12, `DEBUG CHANGE-REPL-ID` on the source (a new history, no second id), then the link
    cut. Expected: PSYNC refused, one snapshot loaded after a flush said in the events, the
    status carries the new id, the data exact."""
    proxy, et = streaming_via_proxy(rig, proxies, engines)
    with writing(rig.src()), Recovery(rig.src()) as rec:
        flowing(rig.dst())
        rig.src().execute_command("DEBUG", "CHANGE-REPL-ID")
        clock = Clock()
        assert proxy.cut() >= 1
        recover_s = clock.wait(reloaded(et), what="the full sync after the new history")
        flowing(rig.dst())
    keys = exact(rig.src(), rig.dst())
    assert (rec.full, rec.partial) == (1, 0)
    assert et.status().links[0].replid == rig.src().info("replication")["master_replid"]
    seen = kinds(et)
    assert seen.count("flush") == 1 and seen.count("round_restart") == 1, seen
    restart = next(e for e in et.engine.events() if e.kind == "round_restart")
    assert "new history" in restart.message, restart.message
    figures("row 12", rec, keys=keys, recover_s=recover_s)
