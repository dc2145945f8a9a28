"""When a Replica Of alert is raised and cleared: the hysteresis, as pure code.

Per source and alert, the sync job feeds one sample a second. An alert is raised after
`RAISE_SAMPLES` samples in a row above its mark and cleared after `CLEAR_SAMPLES` samples in a
row below it, so a figure that hovers around a threshold does not raise and clear every second:
- high syncer lag: above the threshold (ms) raises; at or below `CLEAR_RATIO` of it clears;
- connection error: the source is out of sync (its link is down and being retried) raises; in
  sync again clears;
- general error (the sync stopped with an error) is raised at once by the failure itself and
  cleared by the first sample of a source in sync again.
Nothing here touches the database: replication.services saves the changes and delivers them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from replication.models import AlertName, SourceStatus

RAISE_SAMPLES = 3
CLEAR_SAMPLES = 3
CLEAR_RATIO = 0.8


@dataclass(frozen=True, slots=True)
class Thresholds:
    """What a destination's AlertSettings say, as the tracker needs it."""

    lag_enabled: bool = True
    lag_ms: int = 10_000
    connection_enabled: bool = True
    general_enabled: bool = True


@dataclass(frozen=True, slots=True)
class Change:
    """An alert that changes state now, with what was sampled."""

    source_uid: int
    name: str
    state: bool
    value: dict[str, object]


@dataclass(slots=True)
class _Streak:
    above: int = 0
    below: int = 0


@dataclass(slots=True)
class AlertTracker:
    """The streaks of one job's sources; `raised` starts from the saved states (a new job goes on
    from where the last one left the alerts)."""

    raised: set[tuple[int, str]] = field(default_factory=set)
    streaks: dict[tuple[int, str], _Streak] = field(default_factory=dict)

    def _step(self, key: tuple[int, str], high: bool, low: bool) -> bool | None:
        """Count a sample; True/False when the alert must now be raised/cleared."""
        streak = self.streaks.setdefault(key, _Streak())
        streak.above = streak.above + 1 if high else 0
        streak.below = streak.below + 1 if low else 0
        if key not in self.raised and streak.above >= RAISE_SAMPLES:
            self.raised.add(key)
            return True
        if key in self.raised and streak.below >= CLEAR_SAMPLES:
            self.raised.discard(key)
            return False
        return None

    def sample(
        self, *, source_uid: int, status: str, lag: int | None, thresholds: Thresholds
    ) -> list[Change]:
        changes: list[Change] = []
        lag_key = (source_uid, AlertName.HIGH_SYNCER_LAG.value)
        if thresholds.lag_enabled and lag is not None:
            moved = self._step(
                lag_key,
                high=lag > thresholds.lag_ms,
                low=lag <= thresholds.lag_ms * CLEAR_RATIO,
            )
            if moved is not None:
                value: dict[str, object] = {"lag": lag, "threshold": thresholds.lag_ms}
                changes.append(Change(source_uid, lag_key[1], moved, value))
        elif not thresholds.lag_enabled and lag_key in self.raised:
            self.raised.discard(lag_key)  # switched off: cleared
            changes.append(Change(source_uid, lag_key[1], False, {"enabled": False}))
        conn_key = (source_uid, AlertName.CONNECTION_ERROR.value)
        if thresholds.connection_enabled:
            moved = self._step(
                conn_key,
                high=status == SourceStatus.OUT_OF_SYNC,
                low=status == SourceStatus.IN_SYNC,
            )
            if moved is not None:
                changes.append(Change(source_uid, conn_key[1], moved, {"status": status}))
        general_key = (source_uid, AlertName.GENERAL_ERROR.value)
        if general_key in self.raised and status == SourceStatus.IN_SYNC:
            self.raised.discard(general_key)
            changes.append(Change(source_uid, general_key[1], False, {"status": status}))
        return changes
