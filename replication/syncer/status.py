"""What the syncer reports: a plain object per source (and per shard of a sharded source).

The control plane polls `SyncEngine.statuses()` (or receives them through `on_status`) and
serialises `SourceStatus.as_dict()`; nothing here knows about Django.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from .errors import ErrorKind

__all__ = ["LinkStatus", "Phase", "SourceStatus", "worst_phase"]


class Phase(StrEnum):
    CONNECTING = "connecting"
    SYNCING = "syncing"  # full sync: loading the snapshot
    IN_SYNC = "in-sync"  # streaming commands
    OUT_OF_SYNC = "out-of-sync"  # link down, being retried ("Reconnecting")
    STOPPED = "stopped"  # fatal error or stopped by the operator


# Worst first: the aggregate of several links (or sources) is the worst of them.
_SEVERITY = {
    Phase.STOPPED: 0,
    Phase.OUT_OF_SYNC: 1,
    Phase.CONNECTING: 2,
    Phase.SYNCING: 3,
    Phase.IN_SYNC: 4,
}


def worst_phase(phases: list[Phase]) -> Phase:
    return min(phases, key=_SEVERITY.__getitem__) if phases else Phase.CONNECTING


@dataclass(slots=True)
class LinkStatus:
    """One replication link (one primary of the source)."""

    address: str
    phase: Phase = Phase.CONNECTING
    rdb_size: int | None = None  # None while unknown (diskless transfer)
    rdb_transferred: int = 0
    keys_loaded: int = 0
    keys_expected: int | None = None  # from the source's INFO keyspace, for diskless progress
    commands_applied: int = 0
    lag_ms: float | None = None
    # False while the source cannot be sampled: `lag_ms` is then a lower bound (the time since
    # the last good sample), shown as "at least"; never a stale figure (lag.py).
    lag_exact: bool = True
    last_update: float | None = None  # wall time of the last applied source command
    ingress_bytes: int = 0  # bytes on the wire (deflated ones through a sync gateway)
    ingress_bytes_decompressed: int = 0  # the replication stream's bytes, after inflating
    last_error: str | None = None
    last_error_kind: ErrorKind | None = None  # what `last_error` is about (errors.ErrorKind)
    replid: str | None = None
    offset: int = -1  # replication offset applied (and checkpointed) on the destination
    full_syncs: int = 0
    partial_syncs: int = 0
    restore_mode: str | None = None  # "restore" (DUMP payloads) or "decode" (plain commands)
    # The last full sync's handshake: "dual-channel" (dualchannel.py) or "classic".
    full_sync_channel: str | None = None
    # Dual channel: most bytes of command stream held here at once, and how many went to disk.
    stream_buffer_peak: int = 0
    stream_spilled: int = 0

    @property
    def progress(self) -> float | None:
        """Full-sync progress in percent (100 once streaming)."""
        if self.phase is Phase.IN_SYNC:
            return 100.0
        if self.rdb_size:
            return min(100.0, 100.0 * self.rdb_transferred / self.rdb_size)
        if self.keys_expected:
            return min(99.9, 100.0 * self.keys_loaded / self.keys_expected)
        return None


@dataclass(slots=True)
class SourceStatus:
    """One source as the operator sees it: a standalone link, or all shards of a sharded source."""

    source: str  # redacted URL
    links: list[LinkStatus] = field(default_factory=list)
    stopped_error: str | None = None
    stopped_error_kind: ErrorKind | None = None

    @property
    def phase(self) -> Phase:
        if self.stopped_error is not None:
            return Phase.STOPPED
        return worst_phase([ln.phase for ln in self.links])

    def _sum(self, name: str) -> int:
        return sum(int(getattr(ln, name) or 0) for ln in self.links)

    @property
    def rdb_size(self) -> int | None:
        sizes = [ln.rdb_size for ln in self.links]
        return None if not sizes or None in sizes else sum(s or 0 for s in sizes)

    @property
    def progress(self) -> float | None:
        values = [ln.progress for ln in self.links]
        if not values or None in values:
            return None
        return sum(v or 0.0 for v in values) / len(values)

    @property
    def lag_ms(self) -> float | None:
        lags = [ln.lag_ms for ln in self.links if ln.lag_ms is not None]
        return max(lags) if lags else None

    @property
    def lag_exact(self) -> bool:
        return all(ln.lag_exact for ln in self.links)

    @property
    def last_update(self) -> float | None:
        times = [ln.last_update for ln in self.links if ln.last_update is not None]
        return max(times) if times else None

    @property
    def last_error(self) -> str | None:
        if self.stopped_error:
            return self.stopped_error
        errors = [ln.last_error for ln in self.links if ln.last_error]
        return errors[-1] if errors else None

    @property
    def last_error_kind(self) -> ErrorKind | None:
        """The kind of `last_error` (the same error: the stopping one, else the last link's)."""
        if self.stopped_error:
            return self.stopped_error_kind
        kinds = [ln.last_error_kind for ln in self.links if ln.last_error]
        return kinds[-1] if kinds else None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready snapshot (field names follow the REST API where they overlap)."""
        return {
            "source": self.source,
            "status": str(self.phase),
            "progress": self.progress,
            "rdb_size": self.rdb_size,
            "rdb_transferred": self._sum("rdb_transferred"),
            "keys_loaded": self._sum("keys_loaded"),
            "commands_applied": self._sum("commands_applied"),
            "lag": self.lag_ms,
            "lag_exact": self.lag_exact,
            "last_update": self.last_update,
            "ingress_bytes": self._sum("ingress_bytes"),
            "ingress_bytes_decompressed": self._sum("ingress_bytes_decompressed"),
            "last_error": self.last_error,
            "last_error_kind": _str_or_none(self.last_error_kind),
            "full_syncs": self._sum("full_syncs"),
            "partial_syncs": self._sum("partial_syncs"),
            "links": [
                {
                    **asdict(ln),
                    "phase": str(ln.phase),
                    "progress": ln.progress,
                    "last_error_kind": _str_or_none(ln.last_error_kind),
                }
                for ln in self.links
            ],
        }


def _str_or_none(kind: ErrorKind | None) -> str | None:
    return None if kind is None else str(kind)
