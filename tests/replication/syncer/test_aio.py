"""Cancellation always ends the syncer's loops (the stall of issue 18: a link that lost its
cancellation streamed on, and the round waiting for it never ended)."""

from __future__ import annotations

import asyncio

from replication.syncer.aio import cancel_all
from replication.syncer.source import SourceLink
from replication.syncer.urls import parse_redis_url


async def _reading_link_cancelled_as_data_arrives() -> tuple[bool, int]:
    """A link reading the command stream is cancelled in the same loop iteration as data
    arrives for it: the read must not swallow the cancellation."""
    link = SourceLink(parse_redis_url("redis://127.0.0.1:1"))
    reader = asyncio.StreamReader()
    link._reader = reader  # the stream as connect() would have opened it
    reads = 0

    async def stream() -> None:
        nonlocal reads
        while True:
            await link.read()
            reads += 1

    task = asyncio.create_task(stream())
    await asyncio.sleep(0.01)
    reader.feed_data(b"*1\r\n$4\r\nPING\r\n")
    task.cancel()
    await asyncio.sleep(0.05)
    done = task.done()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return done, reads


def test_a_read_cancelled_as_its_data_arrives_ends():
    done, reads = asyncio.run(_reading_link_cancelled_as_data_arrives())
    assert done, "the link kept reading after it was cancelled"
    assert reads == 0


async def _stubborn_task_is_cancelled_again() -> int:
    cancels = 0

    async def stubborn() -> None:
        nonlocal cancels
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                cancels += 1
                if cancels == 1:
                    continue  # loses the first cancellation, like wait_for on 3.11
                raise

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    await cancel_all([task])
    assert task.cancelled()
    return cancels


def test_cancel_all_cancels_again_what_keeps_running():
    assert asyncio.run(_stubborn_task_is_cancelled_again()) == 2
