"""The command line, killed with -9 at the worst moments: exactly once, no orphans."""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Callable

import pytest

from replication.syncer.checkpoint import CHECKPOINT_KEY, Checkpoint, CheckpointState
from tests.support.compare import assert_same_data
from tests.support.load import Load, populate
from tests.support.proxy import TcpProxy
from tests.support.servers import RedisServer
from tests.support.wait import wait_for

from .conftest import Cli, source_offset

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def checkpoint(dst: RedisServer) -> Checkpoint | None:
    raw = dst.client().hgetall(CHECKPOINT_KEY)
    values = [Checkpoint.decode(v if isinstance(v, bytes) else v.encode()) for v in raw.values()]
    return values[0] if values else None


def caught_up(dst: RedisServer, src: RedisServer) -> bool:
    c = checkpoint(dst)
    return c is not None and c.state is CheckpointState.STREAMING and c.offset >= source_offset(src)


def test_kill9_during_streaming_applies_every_command_once(
    servers: Callable[..., RedisServer], cli: Callable[..., Cli]
) -> None:
    src, dst = servers(), servers()
    populate(src.client(), 1000)
    args = (src.url, "--to", dst.url, "--quiet")
    proc = cli(*args)
    wait_for(lambda: caught_up(dst, src), what="first sync", timeout=60)
    with Load(src.client()):
        for _ in range(3):
            wait_for(lambda: dst.client().get("counter") is not None, what="load arriving")
            time.sleep(0.7)
            proc.kill9()
            before = checkpoint(dst)
            assert before is not None
            time.sleep(0.3)  # the source keeps writing while no syncer runs
            proc = cli(*args)
            wait_for(
                lambda b=before.offset: (c := checkpoint(dst)) is not None and c.offset > b,
                what="the restarted syncer applying again",
            )
    wait_for(lambda: caught_up(dst, src), what="catch up after the load", timeout=60)
    s, d = src.client(), dst.client()
    n = int(s.get("counter") or 0)
    assert n > 100
    assert int(d.get("counter") or 0) == n
    log = d.lrange("log", 0, -1)
    assert log == s.lrange("log", 0, -1)
    assert [int(x) for x in log] == list(range(1, n + 1))  # no duplicate, no gap
    assert_same_data([s], [d])
    assert "full_sync_started" not in proc.output() and "partial_resync" in proc.output()
    assert proc.stop() == 0


class BlindLoad(Load):
    """Pipelines of blind writes only (SET, SET … PXAT, DEL, UNLINK) over a small key space, so
    that most batches write some keys twice: the batches the syncer sends without MULTI."""

    batches = 0

    def _run(self) -> None:
        rnd = random.Random(5)
        far = int(time.time() * 1000) + 3_600_000
        while not self.stop.is_set():
            pipe = self.client.pipeline(transaction=False)
            for _ in range(200):
                key = f"b:{rnd.randrange(500)}"
                r = rnd.random()
                if r < 0.6:
                    pipe.set(key, f"{self.batches}:{rnd.random()}")
                elif r < 0.8:
                    pipe.set(key, str(self.batches), pxat=far + rnd.randrange(1000))
                elif r < 0.9:
                    pipe.delete(key, f"b:{rnd.randrange(500)}")
                else:
                    pipe.unlink(key)
            pipe.set("last", self.batches)
            pipe.execute()
            self.batches += 1


def test_kill9_during_blind_writes_ends_with_the_same_data(
    servers: Callable[..., RedisServer], cli: Callable[..., Cli]
) -> None:
    """Blind batches are pipelined without MULTI; the one cut by the kill is applied again from
    its checkpoint, which leaves the same data as applying it once."""
    # A backlog for the few seconds each restart takes under this load: every reconnection must
    # be a partial resync (the syncer's event lines would name a full sync).
    src, dst = servers(args=["--repl-backlog-size", "256mb"]), servers()
    args = (src.url, "--to", dst.url, "--quiet")
    proc = cli(*args)
    wait_for(lambda: caught_up(dst, src), what="first sync", timeout=60)
    src.client().set("last", -1)  # the first stream commands (SELECT) go through MULTI
    wait_for(lambda: caught_up(dst, src), what="first command")
    multi_before = dst.command_calls("multi")
    with BlindLoad(src.client()) as load:
        for _ in range(3):
            wait_for(lambda: dst.client().get("last") != b"-1", what="load arriving")
            time.sleep(0.5)
            proc.kill9()
            before = checkpoint(dst)
            assert before is not None
            time.sleep(0.2)
            proc = cli(*args)
            wait_for(
                lambda b=before.offset: (c := checkpoint(dst)) is not None and c.offset > b,
                what="the restarted syncer applying again",
            )
    assert load.batches > 20
    wait_for(lambda: caught_up(dst, src), what="catch up after the load", timeout=60)
    assert dst.client().get("last") == str(load.batches - 1).encode()
    assert_same_data([src.client()], [dst.client()])
    assert "full_sync_started" not in proc.output() and "partial_resync" in proc.output()
    assert proc.stop() == 0
    # The load went the blind way: a PING closes each blind batch; MULTI only for the
    # reconnections' first commands.
    assert dst.command_calls("ping") > 20
    assert dst.command_calls("multi") - multi_before < dst.command_calls("ping") / 10


def test_kill9_during_full_sync_reloads_clean(
    servers: Callable[..., RedisServer], cli: Callable[..., Cli]
) -> None:
    src, dst = servers(), servers()
    populate(src.client(), 20000)
    with TcpProxy(src.port) as proxy:
        proxy.throttle(400_000)
        args = (f"redis://127.0.0.1:{proxy.port}", "--to", dst.url, "--quiet")
        proc = cli(*args)
        wait_for(lambda: dst.client().dbsize() > 2000, what="part of the snapshot loaded")
        proc.kill9()
        c = checkpoint(dst)
        assert c is not None and c.state is CheckpointState.LOADING
        # deleted after being loaded: a resumed load would leave them behind as orphans
        src.client().delete(*[f"k:{i}" for i in range(0, 20000, 3)])
        proxy.throttle(None)
        proc = cli(*args)
        wait_for(lambda: caught_up(dst, src), what="reload", timeout=120)
    assert_same_data([src.client()], [dst.client()])
    assert proc.stop() == 0


@pytest.mark.parametrize("state", ["destination silent", "source silent mid-snapshot", "streaming"])
def test_sigterm_ends_the_syncer_in_every_state(
    servers: Callable[..., RedisServer], cli: Callable[..., Cli], state: str
) -> None:
    """A hung handshake or a silent partition must not make the syncer deaf to SIGTERM."""
    src, dst = servers(), servers()
    populate(src.client(), 20_000)
    with TcpProxy(src.port) as to_src, TcpProxy(dst.port) as to_dst:
        src_url, dst_url = f"redis://127.0.0.1:{to_src.port}", f"redis://127.0.0.1:{to_dst.port}"
        if state == "destination silent":
            to_dst.pause()
        elif state == "source silent mid-snapshot":
            to_src.throttle(200_000)
        proc = cli(src_url, "--to", dst_url)
        if state == "source silent mid-snapshot":
            wait_for(lambda: to_src.bytes_down > 300_000, what="the snapshot to be under way")
            to_src.pause()
        elif state == "streaming":
            wait_for(lambda: caught_up(dst, src), what="the first sync")
        else:
            wait_for(lambda: to_dst.accepted_total >= 1, what="a connection to the destination")
        time.sleep(1)
        proc.proc.send_signal(signal.SIGTERM)
        proc.proc.wait(60)  # a generous bound for the wait; the syncer's own grace is 3 s
        proc.fh.close()
    assert proc.proc.returncode == 0, proc.output()
    assert "stopped" in proc.output()
