"""Streaming: lag and throughput under redis-benchmark, our syncer beside a native replica.

    .venv/bin/python bench/streaming.py [-n 2000000] [--mix 300000] [--runs 5] [--no-pin]

For each of (native REPLICAOF, syncer), on a fresh source: attach, wait for the initial sync,
then run `redis-benchmark -t set -n N -P 16 -r 1000000 -d 100` against the source while a marker
key is written to the source every 10 ms and polled on the destination. Reports lag p50/p99/max,
catch-up time after the load, commands applied per second, the source's accepted ops/s, and the CPU
seconds of each process during the load (source, destination server, and the syncer process).
Native and ours run interleaved `--runs` times (min / median in the table); processes are pinned
to CPUs unless `--no-pin` (bench.common.Pinning): redis-benchmark and the source on one, the
replica side on the other.
Then the same for DESIGN §6's mix (`-t set,incr,lpush,hset,sadd,zadd`, --mix commands each,
run one test after the other): its INCR, LPUSH, HSET, SADD and ZADD are not blind writes, so
the syncer applies them in MULTI … EXEC (checkpoint.py).
Prints a table and writes bench/results/streaming-*.json.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    BackgroundThreads,
    Pinning,
    Syncer,
    loaded,
    machine_load,
    min_median,
    pin_argument,
    process_cpu,
    summary,
    table,
    wait,
    write_results,
)
from tests.support.servers import RedisServer

MARKER = "bench:marker"


class Marker(BackgroundThreads):
    """Writes the wall time to the source every 10 ms; notes when each value shows on the dest."""

    def __init__(self, src: redis.Redis, dst: redis.Redis) -> None:
        self.src, self.dst = src, dst
        self.lags_ms: list[float] = []
        self.last_seen = 0.0
        super().__init__(self._write, self._poll)

    def _write(self) -> None:
        while not self.stop.wait(0.01):
            self.src.set(MARKER, repr(time.time()))

    def _poll(self) -> None:
        while not self.stop.is_set():
            v = self.dst.get(MARKER)
            now = time.time()
            if v is not None:
                t = float(v)
                if t > self.last_seen:
                    self.last_seen = t
                    self.lags_ms.append((now - t) * 1000)
            time.sleep(0.001)


# The issue's load, and DESIGN §6's mix (redis-benchmark runs its tests one after the other).
WORKLOADS = {"set": "set", "mix": "set,incr,lpush,hset,sadd,zadd"}


def run_load(src: RedisServer, n: int, tests: str = "set") -> tuple[float, float, int]:
    """Runs redis-benchmark; returns (seconds, the source's accepted ops/s, commands sent)."""
    t0 = time.monotonic()
    out = subprocess.run(
        [
            *("redis-benchmark", "-p", str(src.port), "-t", tests, "-n", str(n), "-P", "16"),
            *("-r", "1000000", "-d", "100", "-q"),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    elapsed = time.monotonic() - t0
    total = n * len(tests.split(","))
    rates = re.findall(r"^\s*(\S+): ([0-9.]+) requests per second", out.replace("\r", "\n"), re.M)
    final = {name: float(rate) for name, rate in rates}  # the last figure of each test
    if len(final) != len(tests.split(",")):
        return elapsed, total / elapsed, total
    # The same number of commands per test: the overall rate is the harmonic mean.
    return elapsed, total / sum(n / r for r in final.values()), total


def measure(pins: Pinning, kind: str, n: int, workload: str = "set") -> dict[str, Any]:
    src = pins.source_server()
    dst = pins.replica_server()
    syncer: Syncer | None = None
    try:
        if kind == "native":
            dst.client().execute_command("REPLICAOF", "127.0.0.1", src.port)
            wait(
                lambda: dst.client().info("replication").get("master_link_status") == "up", "native"
            )
        else:
            syncer = pins.syncer(src.url, "--to", dst.url)
            wait(lambda: loaded(dst), "syncer loaded")
        cpu0 = syncer.cpu_seconds() if syncer else 0.0
        dst_cpu0, src_cpu0 = process_cpu(dst.pid), process_cpu(src.pid)
        load_before = machine_load()
        with Marker(src.client(), dst.client()) as marker:
            time.sleep(0.3)
            t_start = time.time()
            load_s, rps, total = run_load(src, n, WORKLOADS[workload])
            t_end = time.time()
            wait(lambda: marker.last_seen >= t_end, "catch-up marker", period=0.001)
            caught_up = time.time() - t_end
        applied_per_s = total / (t_end - t_start + caught_up)
        lags = sorted(marker.lags_ms)
        result = {
            "kind": kind,
            "workload": workload,
            "commands": total,
            "load_s": load_s,
            "source_ops_per_s": rps,
            "lag_p50_ms": statistics.median(lags),
            "lag_p99_ms": lags[min(len(lags) - 1, int(len(lags) * 0.99))],
            "lag_max_ms": lags[-1],
            "samples": len(lags),
            "catch_up_s": caught_up,
            "applied_per_s": applied_per_s,
            "destination_cpu_s": process_cpu(dst.pid) - dst_cpu0,
            "source_cpu_s": process_cpu(src.pid) - src_cpu0,
            "machine_load_before": load_before,
        }
        if syncer is not None:
            syncer_cpu = syncer.cpu_seconds() - cpu0
            result["syncer_cpu_s"] = syncer_cpu
            result["syncer_cpu_s_per_million"] = syncer_cpu / total * 1e6
            result["syncer_peak_rss_bytes"] = syncer.peak_rss
        return result
    finally:
        if syncer is not None:
            syncer.stop()
        src.stop()
        dst.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=2_000_000, help="SETs of the issue's load")
    ap.add_argument(
        "--mix", type=int, default=300_000, help="commands per test of the mix (0: skip it)"
    )
    pin_argument(ap)
    args = ap.parse_args()
    pins = Pinning(not args.no_pin)
    print(pins.describe())
    loads = [("set", args.n)] + ([("mix", args.mix)] if args.mix else [])
    results: list[dict[str, Any]] = []
    for i in range(args.runs):
        for workload, n in loads:
            for kind in ("native", "syncer"):
                r = measure(pins, kind, n, workload)
                r["run"] = i
                results.append(r)
                print(
                    f"run {i + 1}/{args.runs} {workload} {kind}: p99 {r['lag_p99_ms']:.1f} ms, "
                    f"src ops/s {r['source_ops_per_s']:.0f}; before: {r['machine_load_before']}"
                )
    rows = [
        (
            *("workload", "replica", "src ops/s", "lag p50", "p99", "max ms", "catch-up s"),
            *("applied/s", "src CPU s", "dest CPU s", "syncer CPU s", "syncer CPU s/M"),
        )
    ]
    ratios: dict[str, dict[str, float]] = {}
    for workload, _ in loads:
        for kind in ("native", "syncer"):
            rs = [r for r in results if r["workload"] == workload and r["kind"] == kind]

            def col(key: str, fmt: str = "{:.2f}", rs: list[dict[str, Any]] = rs) -> str:
                return min_median([r[key] for r in rs], fmt) if key in rs[0] else "-"

            rows.append(
                (
                    workload,
                    kind,
                    col("source_ops_per_s", "{:.0f}"),
                    col("lag_p50_ms", "{:.1f}"),
                    col("lag_p99_ms", "{:.1f}"),
                    col("lag_max_ms", "{:.1f}"),
                    col("catch_up_s"),
                    col("applied_per_s", "{:.0f}"),
                    col("source_cpu_s"),
                    col("destination_cpu_s"),
                    col("syncer_cpu_s"),
                    col("syncer_cpu_s_per_million"),
                )
            )
        nat = [r for r in results if r["workload"] == workload and r["kind"] == "native"]
        our = [r for r in results if r["workload"] == workload and r["kind"] == "syncer"]
        per_run = [
            o["source_ops_per_s"] / n["source_ops_per_s"] for n, o in zip(nat, our, strict=True)
        ]
        ratios[workload] = summary(per_run)
        p99s = [o["lag_p99_ms"] for o in our]
        ratios[workload + "_p99_ms"] = summary(p99s)
    print(f"{args.runs} run(s), min / median; {pins.describe()}")
    print(table(rows))
    for workload, _ in loads:
        r = ratios[workload]
        print(
            f"{workload}: source ops/s with syncer / with native replica, per run: "
            f"min {r['min']:.2f}, median {r['median']:.2f}; syncer p99 lag per run: "
            + ", ".join(
                f"{o['lag_p99_ms']:.1f}"
                for o in results
                if o["workload"] == workload and o["kind"] == "syncer"
            )
            + " ms"
        )
    print(machine_load())
    path = write_results(
        "streaming",
        {
            "n": args.n,
            "mix": args.mix,
            "runs": args.runs,
            "pinned": pins.active,
            "placement": pins.describe(),
            "results": results,
            "ops_ratio": ratios,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
