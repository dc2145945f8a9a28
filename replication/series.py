"""The lag and throughput series of sources, kept in tiers in the control Redis (control.py):
one sample a second for 15 minutes, 10 s buckets for 12 hours, 1 min buckets for a week.

`source_intervals` feeds the API's `sync_source_stats` and the page's charts: it sums bytes and
commands over each interval and reports the largest lag seen in it, read from the finest tier
that still holds the asked start and whose step divides the interval. Intervals in which nothing
was sampled (the sync was paused, stopped, or no job ran) are absent: a gap, never a 0.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from replication import control

INTERVALS_S = {
    "1sec": 1,
    "10sec": 10,
    "1min": 60,
    "5min": 300,
    "15min": 900,
    "1hour": 3600,
    "12hour": 12 * 3600,
    "1week": 7 * 24 * 3600,
}
# (step s, seconds kept), finest first: the 1 s samples, then control.TIERS.
TIERS: tuple[tuple[int, int], ...] = (
    (1, control.STATS_SECONDS),
    *((step, step * kept) for step, kept in control.TIERS),
)


def tier_for(step: int, start: float | None, now: float) -> int:
    """The tier (its step) to read intervals of `step` seconds from `start` (None: as far back
    as kept): the finest that divides `step` and still holds `start`, else the one of those
    that reaches back furthest."""
    usable = [(s, kept) for s, kept in TIERS if step % s == 0]
    for s, kept in usable:
        if start is not None and start >= now - kept:
            return s
    return max(usable, key=lambda t: t[1])[0]


def _samples(destination_uid: int, source_uid: int, tier: int) -> list[dict[str, Any]]:
    if tier == 1:
        return control.stats_read(destination_uid, source_uid)
    return control.tier_read(destination_uid, source_uid, tier)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).isoformat().replace("+00:00", "Z")


def source_intervals(
    destination_uid: int,
    source_uid: int,
    *,
    interval: str,
    stime: datetime | None = None,
    etime: datetime | None = None,
) -> list[dict[str, Any]]:
    step = INTERVALS_S[interval]
    start = stime.timestamp() if stime else None
    end = etime.timestamp() if etime else float("inf")
    tier = tier_for(step, start, time.time())
    buckets: dict[int, dict[str, Any]] = {}
    for s in _samples(destination_uid, source_uid, tier):
        t = float(s["t"])
        if not (start or 0.0) <= t < end:
            continue
        key = int(t // step) * step
        b = buckets.setdefault(
            key,
            {
                "interval": interval,
                "stime": _iso(key),
                "etime": _iso(key + step),
                "ingress_bytes": 0,
                "ingress_bytes_decompressed": 0,
                "commands": 0,
                "lag": None,
            },
        )
        b["ingress_bytes"] += s.get("ingress_bytes", 0)
        b["ingress_bytes_decompressed"] += s.get("ingress_bytes_decompressed", 0)
        b["commands"] += s.get("commands", 0)
        if s.get("lag") is not None:
            b["lag"] = max(b["lag"] or 0, s["lag"])
    return [buckets[k] for k in sorted(buckets)]
