"""Fan-in: 32 sources of 30,000 keys each into one destination, under write load (DESIGN §6).

    .venv/bin/python bench/fan_in.py [--sources 32] [--keys 30000] [--seconds 5] [--runs N]
                                     [--no-pin]

Fills every source with DESIGN §6's mix under its own key prefix, starts the syncer with all of
them into one destination and times the full sync (until every source's checkpoint says
streaming). Then it writes to every source at once for --seconds (pipelined SET, INCR and RPUSH),
while a marker key per source is written every 10 ms and polled on the destination. It reports
the lag (all sources together, and the worst source's p99), the catch-up time after the load,
the syncer's CPU and peak RSS, and compares the destination with the union of the sources key by
key. A native replica has one master, so no native figure stands beside this one (one source
against native REPLICAOF: bench/full_sync.py and bench/streaming.py).
The sources and the load generator run on one CPU, the syncer and the destination on another,
unless `--no-pin` (bench.common.Pinning); `--runs` repeats the whole (min / median in the table);
CPU seconds of the sources (together), the destination and the syncer are given for the load.
Prints a table and writes bench/results/fan_in-*.json.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    BackgroundThreads,
    Pinning,
    Syncer,
    machine_load,
    min_median,
    pin_argument,
    populate_workload,
    process_cpu,
    table,
    wait,
    write_results,
)
from replication.syncer.checkpoint import CHECKPOINT_KEY, Checkpoint, CheckpointState
from tests.support.compare import assert_same_data
from tests.support.servers import RedisServer


def streaming_links(dst: RedisServer) -> int:
    """How many sources have a streaming checkpoint in the destination."""
    n = 0
    for raw in dst.client().hgetall(CHECKPOINT_KEY).values():
        ckpt = Checkpoint.decode(raw if isinstance(raw, bytes) else raw.encode())
        n += ckpt is not None and ckpt.state is CheckpointState.STREAMING
    return n


class Markers(BackgroundThreads):
    """Every 10 ms the wall time goes to `marker` on each source; the destination is polled."""

    def __init__(self, sources: list[RedisServer], dst: RedisServer) -> None:
        self.clients = [s.client() for s in sources]
        self.dst = dst.client()
        self.names = [f"bench:marker:{i}" for i in range(len(sources))]
        self.lags: list[list[float]] = [[] for _ in sources]
        self.seen = [0.0] * len(sources)
        super().__init__(self._write, self._poll)

    def _write(self) -> None:
        while not self.stop.wait(0.01):
            for c, name in zip(self.clients, self.names, strict=True):
                c.set(name, repr(time.time()))

    def _poll(self) -> None:
        while not self.stop.is_set():
            values = self.dst.mget(self.names)
            now = time.time()
            for i, v in enumerate(values):
                if v is not None and (t := float(v)) > self.seen[i]:
                    self.seen[i] = t
                    self.lags[i].append((now - t) * 1000)
            time.sleep(0.001)


def write_load(sources: list[RedisServer], seconds: float) -> int:
    """Pipelines of 50 writes to each source in turn for `seconds`; returns commands sent."""
    clients = [s.client() for s in sources]
    rnd = random.Random(11)
    sent = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for i, c in enumerate(clients):
            pipe = c.pipeline(transaction=False)
            for _ in range(50):
                r = rnd.random()
                if r < 0.6:
                    pipe.set(f"s{i}:w:{rnd.randrange(30000)}", rnd.randbytes(100))
                elif r < 0.8:
                    pipe.incr(f"s{i}:counter")
                else:
                    pipe.rpush(f"s{i}:log", sent)
                sent += 1
            pipe.execute()
    return sent


def p99(values: list[float]) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * 0.99))]


def run_once(args: argparse.Namespace, pins: Pinning) -> dict[str, Any]:
    sources: list[RedisServer] = []
    dst: RedisServer | None = None
    syncer: Syncer | None = None
    try:
        for i in range(args.sources):
            sources.append(pins.source_server())
            populate_workload(sources[-1], args.keys, seed=i, prefix=b"s%d:key" % i)
        total_keys = sum(s.client().dbsize() for s in sources)
        dst = pins.replica_server()
        load_before = machine_load()
        t0 = time.monotonic()
        syncer = pins.syncer(*[s.url for s in sources], "--to", dst.url)
        wait(lambda: streaming_links(dst) == len(sources), "every source loaded", period=0.02)
        full_sync_s = time.monotonic() - t0
        full_sync_cpu = syncer.cpu_seconds()
        cpu0 = syncer.cpu_seconds()
        src_cpu0 = sum(process_cpu(s.pid) for s in sources)
        dst_cpu0 = process_cpu(dst.pid)
        with Markers(sources, dst) as markers:
            time.sleep(0.3)
            t_start = time.time()
            sent = write_load(sources, args.seconds)
            t_end = time.time()
            wait(lambda: min(markers.seen) >= t_end, "catch-up markers", period=0.001)
            caught_up = time.time() - t_end
        load_cpu = syncer.cpu_seconds() - cpu0
        src_cpu = sum(process_cpu(s.pid) for s in sources) - src_cpu0
        dst_cpu = process_cpu(dst.pid) - dst_cpu0
        syncer.stop()
        rss = syncer.peak_rss
        syncer = None
        everything = [lag for lags in markers.lags for lag in lags]
        worst = max(range(len(sources)), key=lambda i: p99(markers.lags[i]))
        compared = assert_same_data([s.client() for s in sources], [dst.client()])
    finally:
        if syncer is not None:
            syncer.stop()
        for s in sources:
            s.stop()
        if dst is not None:
            dst.stop()
    return {
        "sources": args.sources,
        "keys_per_source": args.keys,
        "total_keys": total_keys,
        "full_sync_s": full_sync_s,
        "full_sync_syncer_cpu_s": full_sync_cpu,
        "load_s": t_end - t_start,
        "commands_written": sent,
        "written_per_s": sent / (t_end - t_start),
        "lag_p50_ms": statistics.median(everything),
        "lag_p99_ms": p99(everything),
        "lag_max_ms": max(everything),
        "worst_source": worst,
        "worst_source_p99_ms": p99(markers.lags[worst]),
        "catch_up_s": caught_up,
        "syncer_cpu_during_load_s": load_cpu,
        "sources_cpu_during_load_s": src_cpu,
        "destination_cpu_during_load_s": dst_cpu,
        "syncer_peak_rss_bytes": rss,
        "keys_compared": compared,
        "machine_load_before": load_before,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sources", type=int, default=32)
    ap.add_argument("--keys", type=int, default=30_000)
    ap.add_argument("--seconds", type=float, default=5.0)
    pin_argument(ap)
    args = ap.parse_args()
    pins = Pinning(not args.no_pin)
    print(pins.describe())
    runs = []
    for i in range(args.runs):
        runs.append(run_once(args, pins))
        r = runs[-1]
        print(
            f"run {i + 1}/{args.runs}: full sync {r['full_sync_s']:.2f} s, catch-up "
            f"{r['catch_up_s']:.2f} s, RSS {r['syncer_peak_rss_bytes'] / 1e6:.0f} MB; "
            f"before: {r['machine_load_before']}"
        )

    def col(key: str, fmt: str = "{:.2f}", scale: float = 1.0) -> str:
        return min_median([r[key] / scale for r in runs], fmt)

    print(f"{args.runs} run(s), min / median; {pins.describe()}")
    print(
        table(
            [
                (
                    *("sources", "keys", "full sync s", "sync CPU s", "writes/s", "lag p50"),
                    *("p99", "max ms", "worst p99", "catch-up s", "syncer CPU s"),
                    *("src CPU s", "dest CPU s", "peak RSS MB"),
                ),
                (
                    str(args.sources),
                    str(runs[0]["total_keys"]),
                    col("full_sync_s"),
                    col("full_sync_syncer_cpu_s"),
                    col("written_per_s", "{:.0f}"),
                    col("lag_p50_ms", "{:.1f}"),
                    col("lag_p99_ms", "{:.1f}"),
                    col("lag_max_ms", "{:.1f}"),
                    col("worst_source_p99_ms", "{:.1f}"),
                    col("catch_up_s"),
                    col("syncer_cpu_during_load_s"),
                    col("sources_cpu_during_load_s"),
                    col("destination_cpu_during_load_s"),
                    col("syncer_peak_rss_bytes", "{:.0f}", 1e6),
                ),
            ]
        )
    )
    compared = runs[-1]["keys_compared"]
    print(f"destination equal to the union of the sources ({compared} keys); {machine_load()}")
    result = {"runs": runs, "pinned": pins.active, "placement": pins.describe()}
    print(f"wrote {write_results('fan_in', result)}")


if __name__ == "__main__":
    main()
