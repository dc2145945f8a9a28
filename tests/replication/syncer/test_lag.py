"""LagMeter: lag as the age of the oldest sampled offset not applied yet."""

from __future__ import annotations

import pytest

from replication.syncer.lag import LagMeter


def test_lag_meter() -> None:
    m = LagMeter()
    assert m.lag_ms(0, now=10.0) == 0.0
    m.sample(100, now=10.0)
    m.sample(100, now=10.5)  # unchanged offset keeps the first time it was reached
    m.sample(200, now=11.0)
    assert m.lag_ms(50, now=11.2) == pytest.approx(1200)
    assert m.lag_ms(100, now=11.2) == pytest.approx(200)
    assert m.lag_ms(200, now=11.2) == 0.0
    assert m.latest == 200


def test_nothing_sampled_means_no_lag_and_no_latest() -> None:
    m = LagMeter()
    assert m.latest is None
    assert m.lag_ms(-1, now=5.0) == 0.0


def test_an_offset_going_back_is_ignored() -> None:
    """Samples only move forward (a stale INFO reply after a newer one changes nothing)."""
    m = LagMeter()
    m.sample(500, now=1.0)
    m.sample(400, now=2.0)
    assert m.latest == 500
    assert m.lag_ms(450, now=3.0) == pytest.approx(2000)


def test_applied_samples_are_dropped_but_the_newest_kept() -> None:
    m = LagMeter()
    for i in range(10):
        m.sample(100 * (i + 1), now=float(i))
    assert m.lag_ms(1000, now=20.0) == 0.0
    assert m.latest == 1000  # kept: the next lag counts from it
    m.sample(1100, now=21.0)
    assert m.lag_ms(1000, now=21.5) == pytest.approx(500)


def test_horizon_bounds_the_samples_kept() -> None:
    m = LagMeter(horizon=3)
    for i in range(5):
        m.sample(i + 1, now=float(i))
    # Offsets 1 and 2 fell out: the oldest unapplied one still known is 3 (time 2.0).
    assert m.lag_ms(0, now=10.0) == pytest.approx(8000)


def test_lag_is_never_negative() -> None:
    m = LagMeter()
    m.sample(10, now=5.0)
    assert m.lag_ms(0, now=4.0) == 0.0


def test_offsets_before_the_first_sample_give_only_a_lower_bound() -> None:
    """A syncer (re)started behind the source: its first sample says when the source had that
    offset at the latest, not when it reached it (issue 18's random run: a restarted syncer
    said "in-sync lag 487 ms" 4.5 s behind)."""
    m = LagMeter()
    m.sample(1000, now=10.0)
    assert m.lag_ms(400, now=10.3) == pytest.approx(300)
    assert not m.exact(400)  # at least 300 ms, maybe much more
    m.sample(1100, now=10.35)
    assert not m.exact(999)
    assert m.exact(1000)  # the oldest unapplied offset (1001..1100) was sampled in time
    assert m.lag_ms(1000, now=10.5) == pytest.approx(150)
    assert m.exact(1100)


def test_a_gap_in_the_samples_is_blind_until_applied_past_it() -> None:
    """A partition or a frozen syncer: the offsets the source passed meanwhile were reached at
    unknown times; offsets sampled before the gap still give an exact lag."""
    m = LagMeter(gap_s=1.0)
    m.sample(100, now=0.0)
    m.sample(200, now=0.05)
    assert m.exact(100)
    m.sample(900, now=8.0)  # nothing sampled for 8 s
    assert m.exact(150)  # 151..200 were sampled at 0.05: the lag is exact (and large)
    assert m.lag_ms(150, now=8.1) == pytest.approx(8050)
    assert not m.exact(200)  # 201..900: reached between 0.05 and 8.0, nobody knows when
    assert m.lag_ms(200, now=8.1) == pytest.approx(100)  # a lower bound only
    m.sample(950, now=8.05)  # no gap: these offsets are timed
    assert not m.exact(899)
    assert m.exact(900)
    assert m.exact(950)
    m.sample(1000, now=8.1)
    assert m.exact(950)
