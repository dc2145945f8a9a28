"""Verify (replication/syncer/verify.py) against real servers and a real syncer: equal copies,
changes made behind the syncer's back, writes in flight, several and sharded sources, a big key
in bounded memory, and the CLI's exit statuses."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from replication.syncer.engine import DestinationConfig, SourceConfig
from replication.syncer.verify import (
    Verifier,
    VerifyCancelled,
    VerifyOptions,
    VerifyProgress,
    VerifyReport,
)
from tests.support import peak
from tests.support.load import BatchLoad, populate
from tests.support.servers import RedisClusterServers, RedisServer, free_port
from tests.support.wait import wait_for

from .conftest import EngineThread, in_sync_and_caught_up

pytestmark = [pytest.mark.integration]

REPO = Path(__file__).resolve().parents[3]


def verify(sources: list[str], dest: str, **options: Any) -> VerifyReport:
    return asyncio.run(Verifier(sources, dest, options=VerifyOptions(**options)).run())


def synced(
    engines: Callable[..., EngineThread], sources: list[RedisServer], dest: RedisServer
) -> EngineThread:
    et = engines([SourceConfig(s.url) for s in sources], DestinationConfig(dest.url))
    for i, s in enumerate(sources):
        in_sync_and_caught_up(et, s, i)
    return et


def test_an_equal_copy_has_no_differences_and_no_bookkeeping_keys(
    servers: Callable[..., RedisServer], engines: Callable[..., EngineThread]
) -> None:
    src, dst = servers(), servers()
    populate(src.client(), 5000)
    src.client(db=3).set("in-db-3", "x")
    synced(engines, [src], dst)
    assert dst.client().exists("__replicaof:{syncer}:checkpoint")
    seen: list[VerifyProgress] = []
    report = asyncio.run(
        Verifier([src.url], dst.url, on_progress=seen.append, options=VerifyOptions()).run()
    )
    assert report.differences == 0, report.as_dict()
    assert report.totals()["equal"] == 5001
    assert report.extra == 0 and report.unsettled == 0
    assert report.method == "digest"
    assert seen and seen[-1].fraction == 1.0
    # Without DEBUG: DUMP payloads, the same verdict.
    assert verify([src.url], dst.url, method="dump").totals()["equal"] == 5001


def test_four_changes_behind_the_syncers_back_are_exactly_reported(
    servers: Callable[..., RedisServer], engines: Callable[..., EngineThread]
) -> None:
    src, dst = servers(), servers()
    populate(src.client(), 2000, ttl_every=1000)  # k:0 and k:1000 expire, nothing else
    synced(engines, [src], dst)
    d = dst.client()
    d.set("k:1", b"changed")  # k:1 is a string (populate: i % 20 < 14)
    d.delete("k:2")
    d.set("added-on-the-destination", "1")
    d.expire("k:3", 5000)
    for method in ("digest", "dump"):
        report = verify([src.url], dst.url, method=method)
        (only,) = report.sources
        assert only.samples == {
            "different": ["k:1"],
            "missing": ["k:2"],
            "ttl_off": ["k:3"],
        }, method
        assert report.extra_samples == ["added-on-the-destination"]
        assert report.totals() == {
            "equal": 1997,
            "missing": 1,
            "different": 1,
            "ttl_off": 1,
            "conflicts": 0,
            "extra": 1,
            "unsettled": 0,
        }
        assert report.differences == 4


def test_under_a_write_load_no_false_differences_and_a_real_one_found(
    servers: Callable[..., RedisServer], engines: Callable[..., EngineThread]
) -> None:
    src, dst = servers(), servers()
    populate(src.client(), 20_000)
    synced(engines, [src], dst)
    with BatchLoad(src.client()):
        wait_for(lambda: dst.client().exists("counter"), what="the load arriving")
        report = verify([src.url], dst.url, batch=64)
        assert report.differences == 0, report.as_dict()
        assert report.totals()["equal"] >= 20_000
        # Keys rewritten every time they were looked at are unsettled, never differences.
        assert all(
            k in {"counter", "log"} or k.startswith("key:") for k in report.unsettled_samples
        )
        dst.client().set("k:5", b"wrong")
        report = verify([src.url], dst.url)
    assert report.sources[0].samples.get("different") == ["k:5"]
    assert report.differences == 1, report.as_dict()


def test_several_sources_a_union_with_conflicts(
    servers: Callable[..., RedisServer], engines: Callable[..., EngineThread]
) -> None:
    a, b, dst = servers(), servers(), servers()
    populate(a.client(), 1000, prefix="a")
    populate(b.client(), 1000, prefix="b")
    synced(engines, [a, b], dst)
    assert verify([a.url, b.url], dst.url).differences == 0
    a.client().set("both", "from a")
    b.client().set("both", "from b")
    wait_for(lambda: dst.client().exists("both"), what="the shared key")
    report = verify([a.url, b.url], dst.url)
    assert [s.counts["conflicts"] for s in report.sources] == [1, 1]
    assert [s.samples for s in report.sources] == [{"conflicts": ["both"]}] * 2
    assert [s.counts["equal"] for s in report.sources] == [1000, 1000]
    # Compared with one of them only, the other's keys are extra ("both" holds b's value, the
    # last written).
    alone = verify([a.url], dst.url)
    assert alone.extra == 1000
    assert alone.sources[0].samples == {"different": ["both"]}


def test_a_sharded_source_into_a_sharded_destination(
    engines: Callable[..., EngineThread], tmp_path: Path
) -> None:
    with RedisClusterServers(shards=3) as src, RedisClusterServers(shards=2) as dst:
        c = src.client()
        for i in range(3000):
            c.set(f"key:{i}", i)
        et = engines([SourceConfig(src.url)], DestinationConfig(dst.url))
        et.wait_phase("in-sync")
        wait_for(lambda: dst.client().get("key:2999") == b"2999", what="the last key")
        report = verify([src.url], dst.url)
        assert report.differences == 0 and report.totals()["equal"] == 3000, report.as_dict()
        dst.client().delete("key:7")
        dst.client().set("key:8", "x")
        report = verify([src.url], dst.url)
        assert report.sources[0].samples == {"missing": ["key:7"], "different": ["key:8"]}


def test_rate_limit_and_cancel(servers: Callable[..., RedisServer]) -> None:
    src = servers()
    populate(src.client(), 3000)
    verifier = Verifier(
        [src.url], src.url, options=VerifyOptions(rate=1000, batch=100), on_progress=lambda p: None
    )
    seen: list[VerifyProgress] = []

    def progress(p: VerifyProgress) -> None:
        seen.append(p)
        if p.done >= 1000:
            verifier.cancel()

    verifier.on_progress = progress
    with pytest.raises(VerifyCancelled):
        asyncio.run(verifier.run())
    last = seen[-1]
    assert 1000 <= last.done < 3000
    # 1,000 keys at 1,000 keys/s (each key read on both sides counts once): about a second.
    assert last.elapsed_s >= 0.9
    assert last.eta_s is not None and last.eta_s > 0


def run_cli(*args: str) -> tuple[int, str, str, int]:
    """`python -m replication.syncer verify ARGS`: (exit status, stdout, stderr, peak KiB)."""
    return peak.run("replication.syncer", "verify", *args)


def test_cli_exit_statuses(servers: Callable[..., RedisServer]) -> None:
    src, dst = servers(), servers()
    populate(src.client(), 500)
    dst.client().execute_command("REPLICAOF", "127.0.0.1", src.port)
    wait_for(
        lambda: (
            dst.client().info("replication").get("master_link_status") == "up"
            and dst.client().dbsize() == 500
        ),
        what="a native copy",
    )
    dst.client().execute_command("REPLICAOF", "NO", "ONE")
    status, out, _, _ = run_cli(src.url, "--to", dst.url, "--json", "--quiet")
    assert status == 0, out
    assert json.loads(out)["totals"]["equal"] == 500
    dst.client().delete("k:1")
    status, out, _, _ = run_cli(src.url, "--to", dst.url, "--quiet")
    assert status == 1
    assert "missing 1" in out and "'k:1'" in out
    status, _, err, _ = run_cli(src.url, "--to", f"redis://127.0.0.1:{free_port()}", "--quiet")
    assert status == 2 and "cannot connect" in err
    status, _, err, _ = run_cli(src.url, "--to", "http://x", "--quiet")
    assert status == 2 and "redis://" in err
    status, _, err, _ = run_cli(src.url, "--to", dst.url, "--rate", "lots")
    assert status == 2


@pytest.mark.slow
def test_a_hash_of_two_million_fields_in_bounded_memory(
    servers: Callable[..., RedisServer],
) -> None:
    src, dst = servers(), servers()
    s = src.client()
    value = b"v" * 40
    for start in range(0, 2_000_000, 10_000):
        s.hset("big", mapping={f"field:{i:07d}": value for i in range(start, start + 10_000)})
    s.set("small", "1")
    assert s.hlen("big") == 2_000_000
    dst.client().execute_command("REPLICAOF", "127.0.0.1", src.port)
    wait_for(
        lambda: (
            dst.client().info("replication").get("master_link_status") == "up"
            and dst.client().hlen("big") == 2_000_000
        ),
        what="a native copy of the big hash",
    )
    dst.client().execute_command("REPLICAOF", "NO", "ONE")
    dst.client().hset("big", "field:1234567", b"w" * 40)
    # Its size in the server (a DUMP would be about half): what bounded memory is measured by.
    size = int(s.memory_usage("big") or 0)
    assert size > 100_000_000
    # What the command needs for nothing at all: two empty servers.
    empty_a, empty_b = servers(), servers()
    status, _, _, baseline_kib = run_cli(empty_a.url, "--to", empty_b.url, "--quiet")
    assert status == 0

    # Without DEBUG: read in pages (HSCAN + HMGET), never dumped.
    status, out, _, rss_kib = run_cli(src.url, "--to", dst.url, "--method", "dump", "--json")
    result = json.loads(out)
    assert status == 1, out
    assert result["sources"][0]["samples"] == {"different": ["big"]}
    assert result["totals"]["equal"] == 1
    print(
        f"\nverify (pages) of a 2,000,000-field hash: peak RSS {rss_kib / 1024:.0f} MiB "
        f"(empty: {baseline_kib / 1024:.0f} MiB; the hash: {size / 2**20:.0f} MiB in the server)"
    )
    assert (rss_kib - baseline_kib) * 1024 < size / 8

    dst.client().hset("big", "field:1234567", value)
    status, out, _, rss_kib = run_cli(src.url, "--to", dst.url, "--method", "dump", "--quiet")
    assert status == 0, out
    assert (rss_kib - baseline_kib) * 1024 < size / 8
    status, out, _, digest_kib = run_cli(src.url, "--to", dst.url, "--quiet")
    assert status == 0, out
    assert (digest_kib - baseline_kib) * 1024 < size / 8
