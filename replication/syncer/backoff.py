"""The one retry delay of the syncer: exponential backoff, so that a server that is down is asked
again soon at first and then less and less often, never in a tight loop (STYLE §9)."""

from __future__ import annotations

import asyncio

__all__ = ["FIRST_DELAY_S", "Backoff"]

FIRST_DELAY_S = 0.5


class Backoff:
    """Delays of 0.5 s, 1 s, 2 s … up to `cap`; `reset()` once the thing retried works again."""

    def __init__(self, cap: float, *, first: float = FIRST_DELAY_S) -> None:
        self.cap = cap
        self.first = first
        self.delay = first  # what the next sleep() waits

    def reset(self) -> None:
        self.delay = self.first

    def next_delay(self) -> float:
        """The delay to wait now; the following one is twice as long (at most `cap`)."""
        delay = self.delay
        self.delay = min(delay * 2, self.cap)
        return delay

    async def sleep(self) -> None:
        await asyncio.sleep(self.next_delay())
