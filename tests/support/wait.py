"""Wait for a condition in integration tests: poll, and fail with a clear message if it never holds.

The deadline only keeps a broken run from hanging; it is not a performance assertion.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    pass


def wait_for(
    predicate: Callable[..., T | None], *, what: str, timeout: float = 120.0, interval: float = 0.1
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise WaitTimeout(f"gave up waiting for {what}")
        time.sleep(interval)
