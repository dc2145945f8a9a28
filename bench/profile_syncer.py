"""The syncer under a sampling profiler (py-spy, attached to its process): where its CPU goes.

    .venv/bin/python bench/profile_syncer.py full [--keys 1000000]   # the DESIGN §6 full sync
    .venv/bin/python bench/profile_syncer.py stream [-n 2000000]     # SET -P16 after the sync

Prints the syncer's CPU seconds and the functions with the most samples (own and inclusive), and
keeps py-spy's raw (collapsed stacks) output in bench/results/profile-*.txt. py-spy needs to be
allowed to read the syncer's memory (root, or ptrace permitted); it is in requirements-dev.txt.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import RESULTS, Syncer, loaded, populate_workload, server, wait


def top(raw: Path, n: int = 20) -> str:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        k = int(count)
        total += k
        frames = stack.split(";")
        own[frames[-1]] += k
        for f in set(frames):
            inclusive[f] += k
    out = [f"{total} samples; own:"]
    out += [f"  {100 * v / total:5.1f}% {k}" for k, v in own.most_common(n)]
    out.append("inclusive:")
    out += [f"  {100 * v / total:5.1f}% {k}" for k, v in inclusive.most_common(n)]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=("full", "stream"))
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("-n", type=int, default=2_000_000)
    ap.add_argument("--rate", type=int, default=200, help="samples per second")
    args = ap.parse_args()
    spy_bin = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    RESULTS.mkdir(parents=True, exist_ok=True)
    raw = RESULTS / f"profile-{args.what}-{time.strftime('%Y%m%d-%H%M%S')}.txt"
    src, dst = server(), server()
    try:
        if args.what == "full":
            populate_workload(src, args.keys)
        syncer = Syncer(src.url, "--to", dst.url)
        spy = subprocess.Popen(
            [
                *(spy_bin, "record", "--pid", str(syncer.proc.pid), "-r", str(args.rate)),
                *("--format", "raw", "-o", str(raw), "--nonblocking"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            t0 = time.monotonic()
            wait(lambda: loaded(dst), "syncer loaded", period=0.02)
            print(
                f"loaded in {time.monotonic() - t0:.2f} s, syncer CPU {syncer.cpu_seconds():.2f} s"
            )
            if args.what == "stream":
                cpu0 = syncer.cpu_seconds()
                subprocess.run(
                    [
                        *("redis-benchmark", "-p", str(src.port), "-t", "set", "-n", str(args.n)),
                        *("-P", "16", "-r", "1000000", "-d", "100", "-q"),
                    ],
                    check=True,
                    capture_output=True,
                )
                wait(lambda: dst.client().dbsize() >= src.client().dbsize(), "caught up")
                time.sleep(0.3)
                print(f"stream: syncer CPU {syncer.cpu_seconds() - cpu0:.2f} s for {args.n}")
        finally:
            spy.send_signal(2)
            spy.wait(timeout=60)
            syncer.stop()
    finally:
        src.stop()
        dst.stop()
    print(top(raw))
    print(f"wrote {raw}")


if __name__ == "__main__":
    main()
