"""What the engine shares with its links (`LinkContext`), and what one link's stages share
(`LinkState`: link.py connects, fullsync.py loads, stream.py streams).

Links never touch the engine itself: everything they may use is in the one `LinkContext` the
engine hands to all of them. The statuses are read by the control plane from another thread, so
every change to them is made under `lock`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .checkpoint import CHECKPOINT_KEY, JOB_TAG_FIELD, Checkpoint
from .errors import Origin
from .events import EventLog
from .lag import LagMeter
from .status import LinkStatus
from .writer import Writer

if TYPE_CHECKING:  # fullsync.py uses LinkState: only the type goes the other way
    from .dualchannel import DualChannelConfig
    from .fullsync import ExpiryGap

__all__ = ["Identity", "LinkContext", "LinkState"]


@dataclass(slots=True)
class Identity:
    """The identity of the copy (checkpoint.py): the epoch token the destination's markers hold,
    the marker keys, and the job tag. The engine sets it when a round starts; a link writes it
    again right after a flush that came in a source's stream (a chained source flushed)."""

    token: bytes = b""
    keys: list[bytes] = field(default_factory=list)
    job_tag: bytes | None = None

    def mark_commands(self) -> list[list[bytes]]:
        """The commands that write the markers (and the job tag) on database 0."""
        cmds = [[b"SET", key, self.token] for key in self.keys]
        if self.job_tag is not None:
            cmds.append([b"HSET", CHECKPOINT_KEY, JOB_TAG_FIELD, self.job_tag])
        return cmds


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
    events: EventLog = field(default_factory=EventLog)  # what happened, for logs and the console
    identity: Identity = field(default_factory=Identity)  # set by the engine at each round
    # Full syncs over Valkey's dual channel where a source offers it (None: never asked).
    dual_channel: DualChannelConfig | None = None


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
    streaming: bool = False  # the command stream is being applied (stream.py)
    # When the applied offset last moved (monotonic): the watchdog compares it with the source.
    progress_at: float = field(default_factory=time.monotonic)
    # After a full sync, until the stream reaches the source's offset at the end of the load
    # (the expiry gap, fullsync.py); None otherwise.
    gap: ExpiryGap | None = None

    def update(self, **changes: Any) -> None:
        """Change status fields (under the lock: the control plane reads them meanwhile)."""
        with self.lock:
            for k, v in changes.items():
                setattr(self.status, k, v)
