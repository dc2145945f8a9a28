"""Verify of the DESIGN §6 workload: keys/s, the verifier's peak memory, and the source's
accepted ops/s while it runs against without it.

    .venv/bin/python bench/verify.py [--keys 1000000] [--rate 50000]

The destination is a native replica of the source, detached (an equal copy); each method
(DEBUG DIGEST-VALUE, DUMP) is run once unbounded, and once at --rate keys/s. While each runs,
redis-benchmark sends GETs to the source; the same benchmark alone is the baseline. Prints a
table and writes bench/results/verify-*.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine_load, populate_workload, server, table, wait, write_results
from tests.support import peak


def ops_per_s(port: int, requests: int) -> float:
    """GETs per second the source accepts (redis-benchmark, 16 deep pipeline, 8 clients)."""
    out = subprocess.run(
        [
            "redis-benchmark",
            "-p",
            str(port),
            "-t",
            "get",
            "-n",
            str(requests),
            "-P",
            "16",
            "-c",
            "8",
            "-r",
            "1000000",
            "--csv",
        ],
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    return float(out.strip().splitlines()[-1].split(",")[1].strip('"'))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--rate", type=float, default=50_000)
    ap.add_argument("--requests", type=int, default=2_000_000)
    args = ap.parse_args()
    src, dst = server(), server()
    try:
        populate_workload(src, args.keys)
        dst.client().execute_command("REPLICAOF", "127.0.0.1", src.port)
        wait(
            lambda: (
                dst.client().info("replication").get("master_link_status") == "up"
                and dst.client().dbsize() == src.client().dbsize()
            ),
            "a native copy",
        )
        dst.client().execute_command("REPLICAOF", "NO", "ONE")
        baseline = ops_per_s(src.port, args.requests)
        print(f"baseline: {baseline:,.0f} GET/s", flush=True)
        rows = [["run", "keys/s", "seconds", "peak RSS MiB", "source GET ops/s", "differences"]]
        rows.append(["no verify", "", "", "", f"{baseline:,.0f}", ""])
        runs = []
        for method, rate in (("digest", None), ("dump", None), ("digest", args.rate)):
            extra = ["--rate", str(rate)] if rate else []
            t0 = time.monotonic()
            proc = peak.start(
                "replication.syncer",
                "verify",
                src.url,
                "--to",
                dst.url,
                "--json",
                "--quiet",
                "--method",
                method,
                *extra,
            )
            during = ops_per_s(src.port, args.requests)
            out, err = proc.communicate()
            seconds = time.monotonic() - t0
            result = json.loads(out)
            keys_s = args.keys / result["seconds"]
            run = {
                "method": method,
                "rate": rate,
                "keys_per_s": keys_s,
                "seconds": result["seconds"],
                "peak_rss_kib": peak.peak_kib(err.decode()),
                "source_ops_s": during,
                "differences": result["differences"],
                "wall_s": seconds,
            }
            runs.append(run)
            print(json.dumps(run), flush=True)
            name = method + (f" at {rate:,.0f}/s" if rate else "")
            rows.append(
                [
                    name,
                    f"{keys_s:,.0f}",
                    f"{result['seconds']:.1f}",
                    f"{run['peak_rss_kib'] / 1024:.0f}",
                    f"{during:,.0f}",
                    str(result["differences"]),
                ]
            )
        print(table(rows))
        print(machine_load())
        path = write_results(
            "verify",
            {
                "keys": args.keys,
                "baseline_ops_s": baseline,
                "runs": runs,
                "machine": machine_load(),
            },
        )
        print(f"results: {path}")
    finally:
        src.stop()
        dst.stop()


if __name__ == "__main__":
    main()
