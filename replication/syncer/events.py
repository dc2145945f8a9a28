"""What the syncer did and why, as events: every flush, full sync, partial resync, reconnect,
round restart, stop and watchdog alarm is one `SyncEvent`.

Each event is logged as one line on the `replication.syncer` logger (the CLI prints them to
stderr, TTY or not: under systemd or in a container that is the only record), kept in a short
history (`SyncEngine.events()`) and handed to `on_event` (the control plane stores them as the
destination's event list). Never a password: the messages are built from redacted URLs and
host:port addresses only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["EventKind", "EventLog", "SyncEvent"]

log = logging.getLogger("replication.syncer")

HISTORY = 1000


class EventKind(StrEnum):
    FULL_SYNC_STARTED = "full_sync_started"  # a link starts loading a snapshot
    FULL_SYNC_DONE = "full_sync_done"  # its snapshot is loaded; streaming follows
    PARTIAL_RESYNC = "partial_resync"  # a link continues from its position (+CONTINUE)
    RECONNECT = "reconnect"  # a link dropped and is tried again
    FLUSH = "flush"  # the destination was flushed before loading everything again
    ROUND_RESTART = "round_restart"  # every link starts again from a full sync
    STOPPED = "stopped"  # a fatal error stopped the sync
    WATCHDOG = "watchdog"  # a link made no progress while it should have


_LEVEL = {
    EventKind.RECONNECT: logging.WARNING,
    EventKind.ROUND_RESTART: logging.WARNING,
    EventKind.WATCHDOG: logging.WARNING,
    EventKind.STOPPED: logging.ERROR,
}


@dataclass(frozen=True, slots=True)
class SyncEvent:
    time: float  # unix time
    kind: EventKind
    source: int | None  # index in SyncEngine.sources; None: the destination or all sources
    link: str | None  # the link id (its checkpoint field); None: not about one link
    message: str  # plain words for the operator

    def line(self) -> str:
        if self.link is not None:
            where = self.link
        elif self.source is not None:  # about a source, before or beside its links
            where = f"source {self.source}"
        else:
            where = "destination"
        return f"{self.kind} {where}: {self.message}"


class EventLog:
    """The events of one engine (thread-safe: the control plane reads them from another thread)."""

    def __init__(self, on_event: Callable[[SyncEvent], None] | None = None) -> None:
        self.on_event = on_event
        self._events: deque[SyncEvent] = deque(maxlen=HISTORY)
        self._lock = threading.Lock()

    def emit(
        self,
        kind: EventKind,
        message: str,
        *,
        source: int | None = None,
        link: str | None = None,
    ) -> SyncEvent:
        event = SyncEvent(time.time(), kind, source, link, message)
        with self._lock:
            self._events.append(event)
        log.log(_LEVEL.get(kind, logging.INFO), "%s", event.line())
        if self.on_event is not None:
            self.on_event(event)
        return event

    def recent(self) -> list[SyncEvent]:
        with self._lock:
            return list(self._events)
