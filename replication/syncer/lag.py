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

    A sample only says when the source had reached an offset at the latest: the offsets that
    the source passed while nobody sampled it (before the first sample, or during a gap longer
    than `gap_s`: a partition, a frozen or restarted syncer) were reached at some unknown time
    before. While the oldest unapplied offset lies in such a blind range, `lag_ms()` is only a
    lower bound and `exact()` says so: a syncer restarted 10 s behind must not report the few
    milliseconds since its first sample as its lag.
    """

    def __init__(self, horizon: int = 4096, gap_s: float = 1.0) -> None:
        self._samples: deque[tuple[float, int]] = deque(maxlen=horizon)
        self._last_at = time.monotonic()  # the last successful sample (or the meter's start)
        self.gap_s = gap_s
        # Offset ranges (after, up to] whose reach times are unknown, oldest first.
        self._blind: deque[tuple[int, int]] = deque(maxlen=64)

    def sample(self, offset: int, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        gap = not self._samples or now - self._last_at > self.gap_s
        self._last_at = now
        if self._samples and self._samples[-1][1] >= offset:
            return  # the offset did not move: the first time it was reached is what matters
        if gap:
            self._blind.append((self._samples[-1][1] if self._samples else -1, offset))
        self._samples.append((now, offset))

    def exact(self, applied: int) -> bool:
        """False while the oldest offset not applied yet was reached at an unknown time (then
        `lag_ms(applied)` is a lower bound)."""
        blind = self._blind
        while blind and blind[0][1] <= applied:
            blind.popleft()
        return not any(after <= applied < upto for after, upto in blind)

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
