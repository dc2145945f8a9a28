"""What the engine shares with its links (`LinkContext`), and what one link's stages share
(`LinkState`: link.py connects, fullsync.py loads, stream.py streams).

Links never touch the engine itself: everything they may use is in the one `LinkContext` the
engine hands to all of them. The statuses are read by the control plane from another thread, so
every change to them is made under `lock`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .checkpoint import Checkpoint
from .errors import Origin
from .lag import LagMeter
from .status import LinkStatus
from .writer import Writer

if TYPE_CHECKING:  # fullsync.py uses LinkState: only the type goes the other way
    from .fullsync import ExpiryGap

__all__ = ["LinkContext", "LinkState"]


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkContext:
    """One per engine run, the same for all its links."""

    lock: threading.Lock  # guards every status object (the control plane reads them)
    make_writer: Callable[[int | None], Writer]  # a new destination writer for source i
    # Compiling the stream framer's pattern (started by the engine at once): streams wait for it.
    framer_ready: asyncio.Future[None] | None
    # One source with one primary: the destination's only writer, so batches of blind writes
    # may skip MULTI (checkpoint.py).
    single_link: bool
    backoff_max: float  # longest wait between two reconnection attempts (backoff.py)
    destination: str  # the destination's host:port, for errors about it
    # Per link id: how many times the source closed the link while we were loading. Kept across
    # rounds (a FullSyncRequired restart must not forget them), cleared once a load caught up.
    drops: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True, eq=False)
class LinkState:
    """One link: its identity and status, and the position it has reached on the destination."""

    link_id: str  # its field in the checkpoint hash
    source: int  # index of its source in SyncEngine.sources
    status: LinkStatus
    lock: threading.Lock
    at_source: Origin  # where errors of its source connections come from
    at_destination: Origin  # where errors of its destination writer come from
    ckpt: Checkpoint | None = None  # the last position the destination holds (None: full sync)
    applied: int = -1  # offset applied on the destination
    meter: LagMeter = field(default_factory=LagMeter)
    loaded_any: bool = False  # a key of the current load reached the destination
    # After a full sync, until the stream reaches the source's offset at the end of the load
    # (the expiry gap, fullsync.py); None otherwise.
    gap: ExpiryGap | None = None

    def update(self, **changes: Any) -> None:
        """Change status fields (under the lock: the control plane reads them meanwhile)."""
        with self.lock:
            for k, v in changes.items():
                setattr(self.status, k, v)
