"""The lag and throughput series of sources (one sample a second, the last hour, control Redis).

`source_series` feeds the charts; `source_intervals` the API's `sync_source_stats`, which sums
bytes and commands over each interval and reports the largest lag seen in it.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from replication import control

INTERVALS_S = {"1sec": 1, "10sec": 10, "1min": 60, "5min": 300, "15min": 900, "1hour": 3600}


def source_series(destination_uid: int, source_uid: int, seconds: int) -> list[dict[str, Any]]:
    """Samples of the last `seconds` (keys `t` unix s, `lag` ms or None, `commands` and
    `ingress_bytes` per second), oldest first."""
    since = time.time() - seconds
    return [s for s in control.stats_read(destination_uid, source_uid) if s["t"] >= since]


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
    start = stime.timestamp() if stime else 0.0
    end = etime.timestamp() if etime else float("inf")
    buckets: dict[int, dict[str, Any]] = {}
    for s in control.stats_read(destination_uid, source_uid):
        t = float(s["t"])
        if not start <= t < end:
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
