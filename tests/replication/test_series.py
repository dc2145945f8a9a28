"""The tiered series of sources in the control Redis (1 s, 10 s, 1 min) as the API's
`sync_source_stats` reads them: tiers kept and bounded, gaps left as gaps, and a new source that
starts with an empty history."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from console.models import Database, User
from replication import control, series
from replication import services as replica_services
from replication.models import ReplicaOf
from replication.sources import SourceInput


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).isoformat().replace("+00:00", "Z")


def append(
    uid: int, start: float, seconds: int, *, lag: int | None = 5, gap: range = range(0)
) -> None:
    """One sample a second for source 1 from `start`, none in `gap` (seconds after `start`);
    each second 1 command, 100 bytes on the wire, 300 decompressed, lag = `lag` + second."""
    for second in range(seconds):
        if second in gap:
            continue
        control.stats_append(
            uid,
            {
                1: {
                    "t": start + second,
                    "lag": None if lag is None else lag + second,
                    "commands": 1,
                    "ingress_bytes": 100,
                    "ingress_bytes_decompressed": 300,
                }
            },
        )


def stats(api: Any, uid: int, **query: str) -> list[dict[str, Any]]:
    response = api.get(f"/v1/bdbs/{uid}/sync_source_stats/1", query)
    assert response.status_code == 200, response.content
    [source] = response.json()["sync_source_stats"]
    assert source["uid"] == 1
    return list(source["intervals"])


@pytest.fixture
def destination(admin_user: User, database: Database) -> Database:
    replica_services.replica_sources_set(
        actor=admin_user, destination=database, sources=[SourceInput(uri="redis://192.0.2.1:6379")]
    )
    control.history_clear(database.pk, range(1, 33))  # the test transaction never commits
    return database


def test_the_finest_tier_that_holds_the_start_is_read() -> None:
    now = 1_000_000.0
    assert series.tier_for(1, now - 600, now) == 1
    assert series.tier_for(10, now - 600, now) == 1
    assert series.tier_for(10, now - 3600, now) == 10
    assert series.tier_for(60, now - 6 * 3600, now) == 10
    assert series.tier_for(60, now - 24 * 3600, now) == 60
    assert series.tier_for(900, now - 7 * 24 * 3600 + 60, now) == 60
    # No start: as far back as kept, at a step that divides the interval.
    assert series.tier_for(10, None, now) == 10
    assert series.tier_for(1, None, now) == 1
    assert series.tier_for(300, None, now) == 60


@pytest.mark.django_db
def test_an_hour_ago_is_read_from_the_10s_tier_and_a_day_from_the_1min_tier(
    admin_api: Any, destination: Database
) -> None:
    uid = destination.pk
    now = time.time()
    start = (int(now) // 60) * 60 - 2 * 3600  # a minute boundary two hours ago
    append(uid, start, 1800)  # 30 minutes of samples, ending 90 minutes ago
    # The 1 s tier keeps its last 15 minutes of samples only.
    assert len(control.stats_read(uid, 1)) == control.STATS_SECONDS
    api = admin_api
    assert len(stats(api, uid, interval="1sec", stime=iso(start))) == 900

    tens = stats(api, uid, interval="10sec", stime=iso(now - 3 * 3600))
    assert len(tens) == 180
    assert tens[0]["stime"] == iso(start) and tens[0]["etime"] == iso(start + 10)
    assert {i["commands"] for i in tens} == {10}
    assert {i["ingress_bytes"] for i in tens} == {1000}
    assert {i["ingress_bytes_decompressed"] for i in tens} == {3000}
    # The largest lag of each interval: 5 + the last second in it.
    assert [i["lag"] for i in tens[:3]] == [14, 24, 34]

    minutes = stats(api, uid, interval="1min", stime=iso(now - 24 * 3600))
    assert len(minutes) == 30
    assert {i["commands"] for i in minutes} == {60}
    assert minutes[-1]["lag"] == 5 + 1799
    # 15 min intervals over a week: read from the 1 min tier.
    quarters = stats(api, uid, interval="15min", stime=iso(now - 7 * 24 * 3600 + 60))
    assert sum(i["commands"] for i in quarters) == 1800
    # etime bounds it.
    assert len(stats(api, uid, interval="1min", stime=iso(start), etime=iso(start + 600))) == 10


@pytest.mark.django_db
def test_tiers_are_bounded(monkeypatch: pytest.MonkeyPatch, destination: Database) -> None:
    monkeypatch.setattr(control, "TIERS", ((10, 4), (60, 2)))
    uid = destination.pk
    start = (int(time.time()) // 60) * 60 - 3600
    append(uid, start, 600)
    c = control.client()
    assert c.llen(f"replicaof:{uid}:series:10:1") == 4
    assert c.llen(f"replicaof:{uid}:series:60:1") == 2
    tens = control.tier_read(uid, 1, 10)
    # The 4 kept buckets and the one being filled, oldest first.
    assert [r["t"] for r in tens] == [start + 590 + 10 * n for n in range(-4, 1)]
    assert c.ttl(f"replicaof:{uid}:series:60:1") <= 120


@pytest.mark.django_db
def test_a_paused_stretch_is_a_gap_and_no_lag_is_null_not_zero(
    admin_api: Any, destination: Database
) -> None:
    uid = destination.pk
    start = (int(time.time()) // 60) * 60 - 600
    append(uid, start, 300, gap=range(60, 180))  # no job sampled minutes 1 and 2
    minutes = stats(admin_api, uid, interval="1min", stime=iso(start))
    assert [i["stime"] for i in minutes] == [iso(start), iso(start + 180), iso(start + 240)]
    append(uid, start + 300, 20, lag=None)
    seconds = stats(admin_api, uid, interval="1sec", stime=iso(start + 300))
    assert len(seconds) == 20 and {i["lag"] for i in seconds} == {None}


@pytest.mark.django_db
def test_a_job_of_older_sources_writes_nothing(destination: Database) -> None:
    uid = destination.pk
    generation = ReplicaOf.objects.get(destination=destination).generation
    control.desired_publish(uid, generation=generation, state="enabled")
    sample = {"t": time.time(), "lag": 1, "commands": 3, "ingress_bytes": 10}
    control.stats_append(uid, {1: sample}, generation=generation - 1)
    assert control.stats_read(uid, 1) == []
    assert control.tier_read(uid, 1, 10) == []
    assert control.totals_read(uid, 1)["commands"] == 0
    control.stats_append(uid, {1: sample}, generation=generation)
    assert len(control.stats_read(uid, 1)) == 1
    assert control.tier_read(uid, 1, 60)[0]["commands"] == 3


@pytest.mark.django_db
def test_a_source_put_in_the_place_of_another_starts_empty(
    admin_api: Any,
    admin_user: User,
    destination: Database,
    django_capture_on_commit_callbacks: Any,
) -> None:
    uid = destination.pk
    start = time.time() - 1200
    append(uid, start, 120)
    assert stats(admin_api, uid, interval="1min", stime=iso(start - 60))
    with django_capture_on_commit_callbacks(execute=True):
        replica_services.replica_sources_set(
            actor=admin_user,
            destination=destination,
            sources=[SourceInput(uri="redis://192.0.2.9:6379")],
        )
    for interval, since in (("1sec", 900), ("10sec", 3600), ("1min", 7 * 24 * 3600)):
        assert stats(admin_api, uid, interval=interval, stime=iso(time.time() - since)) == []
    assert control.totals_read(uid, 1) == dict.fromkeys(control.TOTALS, 0)
