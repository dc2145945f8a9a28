"""Issue 18's seeded random-fault run (tests/support/chaos.py): two sources under an INCR + RPUSH
load, link cuts, silent pauses, throttles, kill -9 and SIGSTOP of the syncer, kill -9 of sources
(one back from an older RDB) and of the destination; no status line may lie, and at the end the
destination is exactly the sources.

CI runs about a minute per case with a fixed seed; `CHAOS_SEED` and `CHAOS_SECONDS` change them,
and bench/faults.py runs the same for as long as asked.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import cast

import pytest

from tests.support.chaos import EXACT_BOUND_S, ChaosRun, LieChecker, SourceLoad, parse_line
from tests.support.servers import RedisServer

SEED = int(os.environ.get("CHAOS_SEED", "119"))
SECONDS = float(os.environ.get("CHAOS_SECONDS", "60"))


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize("cluster", [False, True], ids=["standalone", "cluster"])
def test_random_faults_never_lie_and_end_exact(tmp_path: Path, cluster: bool) -> None:
    print(f"random-fault run: seed {SEED}, {SECONDS:.0f} s, cluster destination {cluster}")
    verdict = ChaosRun(seed=SEED, seconds=SECONDS, workdir=tmp_path, cluster=cluster).run()
    again = (
        f"again: CHAOS_SEED={SEED} CHAOS_SECONDS={SECONDS:.0f} pytest {__file__} or "
        f"python bench/faults.py --seed {SEED} --minutes {SECONDS / 60:.1f}"
        + (" --cluster" if cluster else "")
    )
    report = "\n".join(
        [
            verdict.summary(),
            *verdict.lies,
            *verdict.syncer_exits,
            *verdict.load_failures,
            verdict.equal_detail,
            verdict.counters_detail,
            again,
            f"the syncer's last events (whole log: {verdict.log}):",
            *verdict.events,
        ]
    )
    print(report)
    assert verdict.ok, report
    # The run did what it is for: faults of most kinds, and claims checked against the data.
    assert len(verdict.faults) >= 5 and len(verdict.faults_by_kind) >= 5, report
    assert verdict.r2_checks > 0 and verdict.counters, report


# -- the lie checks themselves (pure code): a lie is caught, the truth passes ---------------------

URLS = ["redis://127.0.0.1:1001", "redis://127.0.0.1:1002"]


def status(at: float, *parts: str):
    return parse_line(" | ".join(f"{u} {p}" for u, p in zip(URLS, parts, strict=True)), at)


def checker(dest_counter: int = 0) -> tuple[LieChecker, list[SourceLoad]]:
    loads = [SourceLoad(cast(RedisServer, None), f"s{i}:") for i in range(2)]
    for load in loads:  # acknowledged 10 per 0.1 s from t=0 to t=30
        load.history = [(t / 10, 10 * t) for t in range(1, 301)]
    return LieChecker(URLS, loads, lambda prefix: dest_counter), loads


def test_status_lines_and_events_are_parsed() -> None:
    line = status(5.0, "in-sync lag 12 ms, 9 commands (3/s)", "in-sync lag >= 1500 ms, 1 commands")
    assert line.parts is not None
    a, b = line.parts[URLS[0]], line.parts[URLS[1]]
    assert (a.phase, a.lag_ms, a.exact) == ("in-sync", 12.0, True)
    assert (b.phase, b.lag_ms, b.exact) == ("in-sync", 1500.0, False)
    line = status(5.0, "out-of-sync lag >= 7000 ms (timeout)", "syncing [###] 10 keys 0.1 MB")
    assert line.parts is not None and line.parts[URLS[0]].phase == "out-of-sync"
    event = parse_line("2026-12-01 12:03:23,938 INFO flush destination: flushing", 6.0)
    assert event.event == "flush" and event.parts is None


def test_r1_an_exact_lag_or_in_sync_over_a_dead_link_is_a_lie() -> None:
    check, _ = checker(dest_counter=10**6)
    check.down_since[1] = 10.0
    check.feed(status(10.0 + EXACT_BOUND_S + 1, "in-sync lag 0 ms", "in-sync lag 0 ms"), 0.0)
    assert len(check.lies) == 1 and "R1: s1 exact lag" in check.lies[0]
    check.feed(status(25.0, "in-sync lag 0 ms", "in-sync lag >= 15000 ms"), 0.0)
    assert len(check.lies) == 2 and "R1: s1 in-sync while its link has been down" in check.lies[1]
    check.feed(status(26.0, "in-sync lag 0 ms", "out-of-sync lag >= 16000 ms (dead)"), 0.0)
    assert len(check.lies) == 2


def test_r2_in_sync_while_the_destination_misses_data_is_a_lie() -> None:
    check, _ = checker(dest_counter=1000)  # what the sources had at t=10
    check.feed(status(20.0, "in-sync lag 0 ms", "in-sync lag 9000 ms"), 0.0)
    check.judge(40.0, 0.0, final=True)
    # s0 claims everything up to ~16 s is there (counter 1600): a lie; s1's 9 s lag is the truth.
    assert len(check.lies) == 1 and "R2: s0" in check.lies[0] and check.r2 == 2


def test_r2_skips_claims_next_to_a_flush() -> None:
    check, _ = checker(dest_counter=0)
    check.feed(parse_line("2026-12-01 12:03:23,938 INFO flush destination: flushing", 20.5), 0.0)
    check.feed(status(20.0, "in-sync lag 0 ms", "in-sync lag 0 ms"), 0.0)
    check.judge(40.0, 0.0, final=True)
    assert check.lies == [] and check.r2 == 0
