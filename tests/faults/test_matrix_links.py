"""Issue 11's fault matrix, rows 1-6: faults of the link between the syncer and its source.

Every row runs the syncer (in-process, tests/faults/conftest.py) under two write loads (an INCR
counter with its RPUSH log, and batches of 50), injects its fault, and asserts:
- the oracle (tests/support/oracle.py): the destination exactly the source, counters equal, logs
  exactly 1..n — nothing lost, nothing doubled;
- how it recovered, from the source's own counters (`Recovery`: sync_full, sync_partial_ok);
- that the status and the events said what happened.
Each row prints its recovery path and the time it took (`figures`, summed up after the run).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.replication.syncer.conftest import EngineThread
from tests.support.load import populate
from tests.support.oracle import Recovery
from tests.support.wait import wait_for

from .conftest import (
    KEYS,
    Clock,
    Engines,
    Figures,
    Proxies,
    Rig,
    Rigs,
    exact,
    flowing,
    kinds,
    reloaded,
    streaming_via_proxy,
    tape,
    via,
    writing,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARTITION_S = 20.0


def test_row_01_baseline_under_load_is_exact_after_one_full_sync(
    rig: Rig, engines: Engines, figures: Figures
) -> None:
    """Row 1, baseline: the sync starts while the source takes writes, loads the snapshot and
    streams. Expected: one full sync, no partial resync; in-sync with an exact lag of 0 once
    caught up; events: the full sync started and done, nothing else."""
    populate(rig.src(), KEYS)
    clock = Clock()
    with Recovery(rig.src()) as rec, writing(rig.src()):
        et = engines([rig.source.url], rig.dest.url)
        synced_s = clock.wait(lambda: et.status().phase == "in-sync", what="in-sync")
        flowing(rig.dst())
    keys = exact(rig.src(), rig.dst())
    wait_for(lambda: et.status().lag_ms == 0.0, what="a lag of 0 once everything is applied")
    st = et.status().as_dict()
    assert (rec.full, rec.partial) == (1, 0)
    assert st["status"] == "in-sync" and st["lag_exact"] and st["last_error"] is None
    assert (st["full_syncs"], st["partial_syncs"]) == (1, 0)
    assert kinds(et) == ["full_sync_started", "full_sync_done"]
    figures("row 01", rec, keys=keys, sync_s=synced_s)


def test_row_02_link_cut_while_streaming_resumes_by_partial_sync(
    rig: Rig, proxies: Proxies, engines: Engines, figures: Figures
) -> None:
    """Row 2, the link cut (FIN/RST) three times while streaming under load. Expected: three
    partial resyncs (+CONTINUE), no snapshot; each cut is one reconnect event and one partial
    resync event; in-sync again with no error."""
    proxy, et = streaming_via_proxy(rig, proxies, engines)
    recover: list[float] = []
    with writing(rig.src()), Recovery(rig.src()) as rec:
        for k in range(3):
            flowing(rig.dst())
            clock = Clock()
            assert proxy.cut() >= 1

            def resynced(n: int = k + 1) -> bool:
                st = et.status()
                return st.as_dict()["partial_syncs"] == n and st.phase == "in-sync"

            recover.append(clock.wait(resynced, what=f"partial resync {k + 1}"))
        flowing(rig.dst())
    keys = exact(rig.src(), rig.dst())
    assert (rec.full, rec.partial) == (0, 3)
    st = et.status().as_dict()
    assert st["status"] == "in-sync" and st["last_error"] is None
    assert (st["full_syncs"], st["partial_syncs"]) == (1, 3)
    seen = kinds(et)
    assert seen.count("partial_resync") == 3 and seen.count("reconnect") == 3, seen
    assert seen.count("full_sync_started") == 1 and "flush" not in seen, seen
    figures(
        "row 02",
        rec,
        keys=keys,
        recover_s=" ".join(f"{s:.2f}" for s in recover),
    )


def test_row_03_link_cut_mid_rdb_flushes_and_loads_one_new_snapshot(
    rig: Rig, proxies: Proxies, engines: Engines, figures: Figures
) -> None:
    """Row 3, the link cut in the middle of the snapshot transfer. A half-loaded destination
    cannot be continued. Expected: the round restarts, the destination is flushed and loaded
    from one new snapshot (2 full syncs in all, no partial); the events say flush and why."""
    populate(rig.src(), KEYS)
    proxy = proxies(rig.source)
    proxy.throttle(150_000)  # the ~0.5 MB snapshot takes seconds: time to cut it
    with writing(rig.src()), Recovery(rig.src()) as rec:
        et = engines([via(proxy)], rig.dest.url)
        wait_for(
            lambda: (
                (s := et.status().as_dict())["status"] == "syncing"
                and s["rdb_transferred"] > 100_000
            ),
            what="the snapshot under way",
        )
        assert et.status().links[0].keys_loaded < KEYS
        clock = Clock()
        assert proxy.cut() >= 1
        proxy.throttle(None)
        recover_s = clock.wait(reloaded(et), what="the second full sync to stream")
        flowing(rig.dst())
    keys = exact(rig.src(), rig.dst())
    assert (rec.full, rec.partial) == (2, 0)
    seen = kinds(et)
    assert seen.count("full_sync_started") == 2 and seen.count("full_sync_done") == 1, seen
    assert seen.count("flush") == 1 and seen.count("round_restart") == 1, seen
    flush = next(e for e in et.engine.events() if e.kind == "flush")
    assert "dropped while loading" in flush.message, flush.message
    st = et.status().as_dict()
    assert st["status"] == "in-sync" and st["last_error"] is None
    figures(
        "row 03",
        rec,
        keys=keys,
        recover_s=recover_s,
    )


def test_row_04_silent_partition_20s_never_reads_in_sync_and_resumes_by_partial_sync(
    rigs: Rigs, proxies: Proxies, engines: Engines, figures: Figures
) -> None:
    """Row 4, a silent partition (no byte either way, no FIN, no RST) of 20 s while the source
    takes writes, twice side by side:
    (a) the source's default `repl-timeout` (60 s) with `repl-ping-replica-period 3`: the source
        keeps us, the syncer declares the link dead after 2 x 3 + 1 s without a byte;
    (b) a short source `repl-timeout` (5 s): the source drops us during the partition (its close
        cannot cross until the partition ends).
    Expected for both: the status never says in-sync with a lag below the partition's age; it
    says out-of-sync with a lag "at least" (not exact) while the source cannot be sampled; after
    the partition one partial resync, no snapshot."""
    a, b = rigs(2)
    a.source.configure(repl_ping_replica_period=3, repl_backlog_size="64mb")
    b.source.configure(repl_timeout=5, repl_backlog_size="64mb")
    for r in (a, b):
        populate(r.src(), KEYS)
    pa, pb = proxies(a.source), proxies(b.source)
    ea = engines([via(pa)], a.dest.url)
    eb = engines([via(pb)], b.dest.url)
    for et in (ea, eb):
        et.wait_phase("in-sync")
    with (
        writing(a.src()),
        writing(b.src()),
        Recovery(a.src()) as rec_a,
        Recovery(b.src()) as rec_b,
        tape(ea) as tape_a,
        tape(eb) as tape_b,
    ):
        flowing(a.dst())
        flowing(b.dst())
        log_at = b.source.logfile.stat().st_size
        pa.pause()
        pb.pause()
        start = time.monotonic()
        time.sleep(PARTITION_S)  # the fault itself: its length is the row's definition
        end = time.monotonic()
        # The source of (b) dropped us while it could not hear our acks.
        dropped = b.source.logfile.read_text()[log_at:]
        assert "Disconnecting timedout replica" in dropped, dropped
        b_replicas = b.source.info_int("replication", "connected_slaves")
        pa.resume()
        pb.resume()
        clock = Clock()
        recover_a = clock.wait(
            lambda: ea.status().as_dict()["partial_syncs"] == 1 and ea.status().phase == "in-sync",
            what="(a) partial resync",
        )
        recover_b = clock.wait(
            lambda: eb.status().as_dict()["partial_syncs"] == 1 and eb.status().phase == "in-sync",
            what="(b) partial resync",
        )
        flowing(a.dst())
        flowing(b.dst())
    assert b_replicas == 0
    keys_a, keys_b = exact(a.src(), a.dst()), exact(b.src(), b.dst())
    assert (rec_a.full, rec_a.partial) == (0, 1)
    assert (rec_b.full, rec_b.partial) == (0, 1)
    for name, t in (("a", tape_a), ("b", tape_b)):
        during = t.between(start + 2.5, end)
        lies = [
            f"{s.at - start:.1f} s in: in-sync lag {s.lag_ms} exact={s.lag_exact}"
            for s in during
            if s.phase == "in-sync" and (s.lag_ms is None or s.lag_ms < (s.at - start - 2) * 1000)
        ]
        assert lies == [], (name, lies)
        late = [s for s in during if s.at - start > 10]
        assert late and all(s.phase == "out-of-sync" for s in late), (name, late[:3])
        assert all(not s.lag_exact and (s.lag_ms or 0) >= 5000 for s in late), (name, late[:3])
    dead = [e.message for e in ea.engine.events() if e.kind == "reconnect"]
    assert any("no data for 7 s" in m for m in dead), dead
    for et in (ea, eb):
        seen = kinds(et)
        assert "watchdog" in seen and "partial_resync" in seen and "flush" not in seen, seen
    figures(
        "row 04a",
        rec_a,
        keys=keys_a,
        partition_s=PARTITION_S,
        recover_s=recover_a,
    )
    figures(
        "row 04b",
        rec_b,
        keys=keys_b,
        partition_s=PARTITION_S,
        recover_s=recover_b,
    )


def _outage_past_what_the_source_keeps(
    rig: Rig, proxies: Proxies, engines: Engines, while_down: Callable[[], None]
) -> tuple[EngineThread, Recovery, float]:
    """Stream under load, make the source unreachable (every link closed, every new one refused)
    until the status says out-of-sync, run `while_down`, let the links in again and wait for the
    round that loads everything again. Returns the engine, what the source served meanwhile and
    how long the recovery took from the end of the outage."""
    proxy, et = streaming_via_proxy(rig, proxies, engines)
    with writing(rig.src()), Recovery(rig.src()) as rec:
        flowing(rig.dst())
        proxy.refuse(True)
        proxy.cut()
        wait_for(lambda: et.status().phase == "out-of-sync", what="the status to say out-of-sync")
        while_down()
        clock = Clock()
        proxy.refuse(False)
        recover_s = clock.wait(reloaded(et), what="the full sync after the outage")
        flowing(rig.dst())
    seen = kinds(et)
    assert seen.count("flush") == 1 and seen.count("round_restart") == 1, seen
    assert seen.count("full_sync_started") == 2 and seen.count("partial_resync") == 0, seen
    return et, rec, recover_s


def test_row_05_outage_past_the_backlog_costs_one_full_sync(
    rig: Rig, proxies: Proxies, engines: Engines, figures: Figures
) -> None:
    """Row 5, an outage during which the source writes more than its backlog (16 kB) holds.
    Expected: the source refuses our PSYNC, the syncer loads the snapshot the source then offers
    (exactly one snapshot: no second BGSAVE), after a flush said in the events."""
    rig.source.configure(repl_backlog_size=16384)
    log_at = rig.source.logfile.stat().st_size

    def past_the_backlog() -> None:
        populate(rig.src(), 2000, prefix="during-outage")  # ~300 kB, far past the backlog

    et, rec, recover_s = _outage_past_what_the_source_keeps(rig, proxies, engines, past_the_backlog)
    keys = exact(rig.src(), rig.dst())
    assert (rec.full, rec.partial) == (1, 0)
    assert rig.source.info_int("stats", "sync_partial_err") >= 1
    assert "Waiting for next BGSAVE" not in rig.source.logfile.read_text()[log_at:]
    restart = next(e for e in et.engine.events() if e.kind == "round_restart")
    assert "backlog" in restart.message, restart.message
    figures("row 05", rec, keys=keys, recover_s=recover_s)


def test_row_06_backlog_freed_by_repl_backlog_ttl_costs_one_full_sync(
    rig: Rig, proxies: Proxies, engines: Engines, figures: Figures
) -> None:
    """Row 6, an outage longer than the source's `repl-backlog-ttl` (1 s): with no replica the
    source frees its backlog and takes a new replication id. Expected: PSYNC refused, one
    snapshot loaded after a flush, the data exact."""
    rig.source.configure(repl_backlog_ttl=1)
    replid = rig.src().info("replication")["master_replid"]

    def backlog_freed() -> None:
        wait_for(
            lambda: rig.source.info_int("replication", "repl_backlog_active") == 0,
            what="the source to free its backlog",
        )
        assert rig.src().info("replication")["master_replid"] != replid

    _, rec, recover_s = _outage_past_what_the_source_keeps(rig, proxies, engines, backlog_freed)
    keys = exact(rig.src(), rig.dst())
    assert (rec.full, rec.partial) == (1, 0)
    figures("row 06", rec, keys=keys, recover_s=recover_s)
