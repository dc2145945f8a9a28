"""How far behind a link is, in time: from samples of the source's replication offset."""

from __future__ import annotations

import time
from collections import deque

__all__ = ["LagMeter"]


class LagMeter:
    """Lag = how long ago the source first reached an offset we have not applied yet.

    Samples `(monotonic time, master_repl_offset)` come from a side connection (≥10 per second);
    `lag_ms(applied)` is 0 when we applied everything sampled so far. A lag is only as good as
    its last sample: `age_s()` says how old that is, and a link whose source cannot be sampled
    reports its lag as unknown (at least that age), never as the last figure (link.py).
    """

    def __init__(self, horizon: int = 4096) -> None:
        self._samples: deque[tuple[float, int]] = deque(maxlen=horizon)
        self._last_at = time.monotonic()  # the last successful sample (or the meter's start)

    def sample(self, offset: int, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._last_at = now
        if self._samples and self._samples[-1][1] >= offset:
            return  # the offset did not move: the first time it was reached is what matters
        self._samples.append((now, offset))

    def age_s(self, now: float | None = None) -> float:
        """Seconds since the last successful sample."""
        return (time.monotonic() if now is None else now) - self._last_at

    @property
    def latest(self) -> int | None:
        return self._samples[-1][1] if self._samples else None

    def lag_ms(self, applied: int, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        samples = self._samples
        while len(samples) > 1 and samples[0][1] <= applied:
            samples.popleft()
        if not samples or samples[0][1] <= applied:
            return 0.0
        return max(0.0, (now - samples[0][0]) * 1000.0)
