"""Full sync of the DESIGN §6 workload: our syncer beside native REPLICAOF and a naive copier.

    .venv/bin/python bench/full_sync.py [--keys 1000000]

Prints a table and writes bench/results/full_sync-*.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    Syncer,
    loaded,
    machine_load,
    populate_workload,
    server,
    table,
    wait,
    write_results,
)
from bench.naive_copy import naive_copy
from tests.support.compare import assert_same_data


def native(src_port: int) -> float:
    rep = server()
    try:
        c = rep.client()
        t0 = time.monotonic()
        c.execute_command("REPLICAOF", "127.0.0.1", src_port)

        def done() -> bool:
            info = c.info("replication")
            return info.get("master_link_status") == "up" and not info.get(
                "master_sync_in_progress"
            )

        wait(done, "native replica in sync")
        return time.monotonic() - t0
    finally:
        rep.stop()


def ours(src_url: str) -> tuple[float, int, float, object]:
    dst = server()
    try:
        t0 = time.monotonic()
        s = Syncer(src_url, "--to", dst.url)
        wait(lambda: loaded(dst), "syncer loaded", period=0.02)
        elapsed = time.monotonic() - t0
        cpu = s.cpu_seconds()
        s.stop()
        return elapsed, s.peak_rss, cpu, dst
    except BaseException:
        dst.stop()
        raise


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--no-verify", action="store_true")
    args = ap.parse_args()
    src = server()
    try:
        fill = populate_workload(src, args.keys)
        dbsize = src.client().dbsize()
        mem = src.client().info("memory")["used_memory"]
        print(f"source: {dbsize} keys, used_memory {mem / 1e6:.0f} MB, filled in {fill:.1f} s")
        t_native = native(src.port)
        t_ours, rss, cpu, dst = ours(src.url)
        try:
            verified = "skipped"
            if not args.no_verify:
                n = assert_same_data([src.client()], [dst.client()])  # type: ignore[attr-defined]
                verified = f"equal ({n} keys)"
        finally:
            dst.stop()  # type: ignore[attr-defined]
        naive_dst = server()
        try:
            t0 = time.monotonic()
            naive_copy(src.client(), naive_dst.client())
            t_naive = time.monotonic() - t0
        finally:
            naive_dst.stop()
    finally:
        src.stop()
    rows = [
        ("method", "seconds", "vs native", "peak RSS MB"),
        ("native REPLICAOF", f"{t_native:.2f}", "1.00", "-"),
        ("syncer (RESTORE)", f"{t_ours:.2f}", f"{t_ours / t_native:.2f}", f"{rss / 1e6:.0f}"),
        ("naive SCAN+DUMP/RESTORE", f"{t_naive:.2f}", f"{t_naive / t_native:.2f}", "-"),
    ]
    print(table(rows))
    print(f"syncer CPU {cpu:.1f} s; destination {verified}; {machine_load()}")
    path = write_results(
        "full_sync",
        {
            "keys": dbsize,
            "native_s": t_native,
            "syncer_s": t_ours,
            "syncer_peak_rss_bytes": rss,
            "syncer_cpu_s": cpu,
            "naive_s": t_naive,
            "ratio_syncer_native": t_ours / t_native,
            "ratio_naive_native": t_naive / t_native,
            "verified": verified,
            "machine": machine_load(),
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
