"""Backoff: the delays of every retry loop of the syncer."""

from __future__ import annotations

import asyncio

from replication.syncer.backoff import Backoff


def test_starts_at_half_a_second_and_doubles_up_to_the_cap() -> None:
    b = Backoff(10.0)
    assert [b.next_delay() for _ in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_reset_starts_over() -> None:
    b = Backoff(10.0)
    b.next_delay()
    b.next_delay()
    assert b.delay == 2.0
    b.reset()
    assert [b.next_delay(), b.next_delay()] == [0.5, 1.0]


def test_a_cap_below_the_first_delay_applies_from_the_second() -> None:
    """As the loops it replaced did: the first wait is always the first delay."""
    b = Backoff(0.1)
    assert [b.next_delay() for _ in range(3)] == [0.5, 0.1, 0.1]


def test_sleep_waits_the_delay_and_moves_on() -> None:
    b = Backoff(1.0, first=0.05)

    async def run() -> float:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await b.sleep()
        return loop.time() - t0

    assert asyncio.run(run()) >= 0.05
    assert b.delay == 0.1
