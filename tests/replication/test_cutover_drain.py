"""The cutover's drain (replication.cutover.drain) against real redis-servers: writes wait while
the pause holds and pass after it, refusals leave no source paused (a user without
`CLIENT PAUSE`, a destination that does not catch up), and the version rule of `CLIENT PAUSE …
WRITE` (Redis >= 6.2)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from replication.cutover import DrainRefused, drain, pause_refusal, server_version
from replication.syncer.checkpoint import CHECKPOINT_KEY, Checkpoint, CheckpointState
from replication.syncer.engine import DestinationConfig, SourceConfig
from replication.syncer.urls import parse_redis_url
from tests.support.servers import RedisServer

pytestmark = [pytest.mark.integration]


@pytest.fixture
def pair() -> Iterator[tuple[RedisServer, RedisServer]]:
    with RedisServer() as src, RedisServer() as dst:
        yield src, dst


def _checkpoint(src: RedisServer, dst: RedisServer, *, behind: int = 0) -> None:
    """Write into `dst` the checkpoint a syncer would have after applying `src` up to its
    offset (minus `behind` bytes)."""
    info = src.client().info("replication")
    ckpt = Checkpoint(
        CheckpointState.STREAMING,
        info["master_replid"],
        int(info["master_repl_offset"]) - behind,
    )
    dst.client().hset(CHECKPOINT_KEY, "source-1", ckpt.encode())


def _run(
    src: RedisServer, dst: RedisServer, pause_ms: int, url: str | None = None
) -> dict[str, Any]:
    return asyncio.run(
        drain(
            [SourceConfig(parse_redis_url(url or src.url))],
            DestinationConfig(parse_redis_url(dst.url)),
            pause_ms=pause_ms,
        )
    )


def test_versions_that_may_pause_writes() -> None:
    assert server_version({"redis_version": "7.2.4"}) == (7, 2, 4)
    assert server_version({}) == (0, 0, 0)
    assert pause_refusal("h:1", {"redis_version": "6.2.0"}) is None
    assert pause_refusal("h:1", {"redis_version": "7.2.4", "valkey_version": "8.0.1"}) is None
    refusal = pause_refusal("h:1", {"redis_version": "6.0.16"})
    assert refusal is not None
    assert "h:1 runs Redis 6.0.16" in refusal and "6.2 or later" in refusal
    assert "pause of 0 ms" in refusal


def test_a_write_waits_while_the_pause_holds_and_passes_after(pair) -> None:
    src, dst = pair
    src.client().set("k", "v")
    # The destination is 10 bytes behind at first and catches up 300 ms into the pause.
    _checkpoint(src, dst, behind=10)
    timer = threading.Timer(0.3, _checkpoint, args=(src, dst))
    wrote: list[float] = []

    def write() -> None:
        time.sleep(0.1)  # inside the pause
        start = time.monotonic()
        redis.Redis(port=src.port).set("during", "1")
        wrote.append(time.monotonic() - start)

    writer = threading.Thread(target=write)
    timer.start()
    writer.start()
    result = _run(src, dst, pause_ms=5000)
    writer.join(10)
    timer.cancel()
    assert 250 < result["drained_ms"] < 5000, result
    assert wrote and wrote[0] > 0.1, wrote  # it waited for the UNPAUSE ...
    assert src.client().get("during") == b"1"  # ... and was applied
    assert result["sources"][0]["address"] == f"127.0.0.1:{src.port}"


def test_without_the_permission_to_pause_nothing_is_paused(pair) -> None:
    src, dst = pair
    src.client().execute_command(
        "ACL", "SETUSER", "mover", "on", ">mover-pw", "~*", "&*", "+@all", "-client|pause"
    )
    _checkpoint(src, dst)
    with pytest.raises(DrainRefused) as refused:
        _run(src, dst, 5000, url=f"redis://mover:mover-pw@127.0.0.1:{src.port}")
    message = str(refused.value)
    assert "refused CLIENT PAUSE (NOPERM" in message and "+client|pause" in message, message
    assert "mover-pw" not in message
    start = time.monotonic()
    redis.Redis(port=src.port).set("after", "1")
    assert time.monotonic() - start < 1.0


def test_a_destination_that_does_not_catch_up_is_refused_and_the_source_unpaused(pair) -> None:
    src, dst = pair
    src.client().set("k", "v")
    _checkpoint(src, dst, behind=1)
    with pytest.raises(DrainRefused) as refused:
        _run(src, dst, 400)
    assert "did not reach the offsets" in str(refused.value)
    assert "raise the pause" in str(refused.value)
    start = time.monotonic()
    redis.Redis(port=src.port).set("after", "1")
    assert time.monotonic() - start < 1.0
    # Without a pause, the same wait applies (bounded), and nothing was paused.
    _checkpoint(src, dst)
    assert _run(src, dst, 0)["paused_ms"] == 0
