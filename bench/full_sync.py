"""Full sync of the DESIGN §6 workload: our syncer beside native REPLICAOF and a naive copier.

    .venv/bin/python bench/full_sync.py [--keys 1000000] [--runs 3] [--no-pin] [--no-naive]
    .venv/bin/python bench/full_sync.py --scale [--runs 1]       # 1M, 3M and 5M keys

Native and ours load the same source, interleaved (native, ours, native, ours …) `--runs` times;
the table gives min / median of wall time and of the CPU seconds of each process: the source
(its snapshot child included), the replica side's redis-server (native replica or our
destination) and the syncer. Processes are pinned to CPUs unless `--no-pin` (bench.common.Pinning).
`--scale` loads 1M, 3M and 5M keys (ours and native, no naive copy, no key-by-key check): the
syncer's time per key must stay flat (±10 %) and its peak RSS flat and at most 200 MB.
Prints tables and writes bench/results/full_sync-*.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    Pinning,
    loaded,
    machine_load,
    min_median,
    native_in_sync,
    pin_argument,
    populate_workload,
    process_cpu,
    summary,
    table,
    wait,
    write_results,
)
from bench.naive_copy import naive_copy
from tests.support.compare import assert_same_data
from tests.support.servers import RedisServer

SCALE_KEYS = (1_000_000, 3_000_000, 5_000_000)


def native(pins: Pinning, src: RedisServer) -> dict[str, Any]:
    rep = pins.replica_server()
    try:
        c = rep.client()
        src_cpu0, rep_cpu0 = process_cpu(src.pid), process_cpu(rep.pid)
        load = machine_load()
        t0 = time.monotonic()
        c.execute_command("REPLICAOF", "127.0.0.1", src.port)

        wait(lambda: native_in_sync(c), "native replica in sync")
        return {
            "seconds": time.monotonic() - t0,
            "source_cpu_s": process_cpu(src.pid) - src_cpu0,
            "replica_cpu_s": process_cpu(rep.pid) - rep_cpu0,
            "machine_load_before": load,
        }
    finally:
        rep.stop()


def ours(pins: Pinning, src: RedisServer, verify: bool) -> dict[str, Any]:
    dst = pins.replica_server()
    try:
        src_cpu0, dst_cpu0 = process_cpu(src.pid), process_cpu(dst.pid)
        load = machine_load()
        t0 = time.monotonic()
        s = pins.syncer(src.url, "--to", dst.url)
        wait(lambda: loaded(dst), "syncer loaded", period=0.02)
        elapsed = time.monotonic() - t0
        result = {
            "seconds": elapsed,
            "syncer_cpu_s": s.cpu_seconds(),
            "source_cpu_s": process_cpu(src.pid) - src_cpu0,
            "replica_cpu_s": process_cpu(dst.pid) - dst_cpu0,
            "machine_load_before": load,
        }
        s.stop()
        result["syncer_peak_rss_bytes"] = s.peak_rss
        if verify:
            n = assert_same_data([src.client()], [dst.client()])
            result["verified"] = f"equal ({n} keys)"
        return result
    finally:
        dst.stop()


def interleaved(pins: Pinning, keys: int, runs: int, verify: bool) -> dict[str, Any]:
    """Fill a source with `keys` keys; native and ours `runs` times, interleaved."""
    src = pins.source_server()
    try:
        fill = populate_workload(src, keys)
        dbsize = src.client().dbsize()
        mem = src.client().info("memory")["used_memory"]
        print(f"source: {dbsize} keys, used_memory {mem / 1e6:.0f} MB, filled in {fill:.1f} s")
        nat: list[dict[str, Any]] = []
        our: list[dict[str, Any]] = []
        for i in range(runs):
            nat.append(native(pins, src))
            our.append(ours(pins, src, verify and i == 0))
            print(
                f"run {i + 1}/{runs}: native {nat[-1]['seconds']:.2f} s, "
                f"ours {our[-1]['seconds']:.2f} s (syncer CPU {our[-1]['syncer_cpu_s']:.2f} s); "
                f"{our[-1]['machine_load_before']}"
            )
        return {"keys": dbsize, "native": nat, "ours": our, "src": src}
    except BaseException:
        src.stop()
        raise


def _col(runs: list[dict[str, Any]], key: str, fmt: str = "{:.2f}") -> str:
    return min_median([r[key] for r in runs], fmt)


def one_size(args: argparse.Namespace, pins: Pinning) -> None:
    res = interleaved(pins, args.keys, args.runs, not args.no_verify)
    src: RedisServer = res.pop("src")
    try:
        t_naive = None
        if not args.no_naive:
            naive_dst = pins.replica_server()
            try:
                t0 = time.monotonic()
                naive_copy(src.client(), naive_dst.client())
                t_naive = time.monotonic() - t0
            finally:
                naive_dst.stop()
    finally:
        src.stop()
    nat, our = res["native"], res["ours"]
    t_nat = statistics.median(r["seconds"] for r in nat)
    t_our = statistics.median(r["seconds"] for r in our)
    ratios = [o["seconds"] / n["seconds"] for n, o in zip(nat, our, strict=True)]
    rows = [
        (
            *("method", "seconds", "vs native", "source CPU s", "replica CPU s"),
            *("syncer CPU s", "RSS MB"),
        ),
        (
            "native REPLICAOF",
            _col(nat, "seconds"),
            "1.00",
            _col(nat, "source_cpu_s"),
            _col(nat, "replica_cpu_s"),
            "-",
            "-",
        ),
        (
            "syncer (RESTORE)",
            _col(our, "seconds"),
            f"{t_our / t_nat:.2f}",
            _col(our, "source_cpu_s"),
            _col(our, "replica_cpu_s"),
            _col(our, "syncer_cpu_s"),
            min_median([r["syncer_peak_rss_bytes"] / 1e6 for r in our], "{:.0f}"),
        ),
    ]
    if t_naive is not None:
        rows.append(
            ("naive SCAN+DUMP/RESTORE", f"{t_naive:.2f}", f"{t_naive / t_nat:.2f}", *"----")
        )
    print(f"{args.runs} run(s), min / median; {pins.describe()}")
    print(table(rows))
    print(
        f"ratio per run (ours/native): {', '.join(f'{r:.2f}' for r in ratios)}; "
        f"median of the medians {t_our / t_nat:.2f}"
    )
    verified = our[0].get("verified", "skipped")
    print(f"destination {verified}; {machine_load()}")
    path = write_results(
        "full_sync",
        {
            "keys": res["keys"],
            "pinned": pins.active,
            "placement": pins.describe(),
            "runs": args.runs,
            "native": nat,
            "ours": our,
            "native_s": summary([r["seconds"] for r in nat]),
            "syncer_s": summary([r["seconds"] for r in our]),
            "syncer_cpu_s": summary([r["syncer_cpu_s"] for r in our]),
            "syncer_peak_rss_bytes": max(r["syncer_peak_rss_bytes"] for r in our),
            "ratio_syncer_native": t_our / t_nat,
            "ratios_per_run": ratios,
            "naive_s": t_naive,
            "ratio_naive_native": t_naive / t_nat if t_naive is not None else None,
            "verified": verified,
            "machine": machine_load(),
        },
    )
    print(f"wrote {path}")


def scale(args: argparse.Namespace, pins: Pinning) -> None:
    sizes: list[dict[str, Any]] = []
    for keys in SCALE_KEYS:
        res = interleaved(pins, keys, args.runs, verify=False)
        res.pop("src").stop()
        sizes.append(res)
    rows = [
        (
            *("keys", "native s", "ours s", "vs native", "ours µs/key", "vs 1M"),
            *("syncer CPU s", "CPU µs/key", "peak RSS MB"),
        )
    ]
    base = None
    out = []
    for res in sizes:
        keys = res["keys"]
        t_nat = statistics.median(r["seconds"] for r in res["native"])
        t_our = statistics.median(r["seconds"] for r in res["ours"])
        cpu = statistics.median(r["syncer_cpu_s"] for r in res["ours"])
        rss = max(r["syncer_peak_rss_bytes"] for r in res["ours"])
        per_key = t_our / keys * 1e6
        base = base or per_key
        rows.append(
            (
                str(keys),
                f"{t_nat:.2f}",
                f"{t_our:.2f}",
                f"{t_our / t_nat:.2f}",
                f"{per_key:.2f}",
                f"{per_key / base:.2f}",
                f"{cpu:.2f}",
                f"{cpu / keys * 1e6:.2f}",
                f"{rss / 1e6:.0f}",
            )
        )
        out.append({**res, "us_per_key": per_key, "flat_vs_1m": per_key / base, "peak_rss": rss})
    print(f"scale, {args.runs} run(s) per size, medians; {pins.describe()}")
    print(table(rows))
    flat = all(abs(r["flat_vs_1m"] - 1) <= 0.10 for r in out)
    rss_ok = all(r["peak_rss"] <= 200e6 for r in out)
    print(f"time per key flat (±10 %): {flat}; peak RSS ≤ 200 MB: {rss_ok}; {machine_load()}")
    path = write_results(
        "full_sync-scale",
        {"pinned": pins.active, "placement": pins.describe(), "runs": args.runs, "sizes": out},
    )
    print(f"wrote {path}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--no-verify", action="store_true")
    ap.add_argument("--no-naive", action="store_true", help="skip the naive SCAN+DUMP copier")
    ap.add_argument("--scale", action="store_true", help=f"full syncs of {SCALE_KEYS} keys")
    pin_argument(ap)
    args = ap.parse_args()
    pins = Pinning(not args.no_pin)
    print(pins.describe())
    if args.scale:
        scale(args, pins)
    else:
        one_size(args, pins)


if __name__ == "__main__":
    main()
