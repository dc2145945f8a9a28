"""Random faults: issue 18's seeded random-fault run, for as long as asked, for bug hunting.

    .venv/bin/python bench/faults.py [--minutes 10] [--seed N] [--cluster] [--sources 2]

The same run as tests/faults/test_random.py (tests/support/chaos.py: the schedule, the lie
checks, the verdict): N sources under an INCR + RPUSH load into one destination (standalone, or
a 3-shard cluster with --cluster) through the syncer CLI, and a seeded random schedule of link
cuts, silent pauses, throttles, kill -9 and SIGSTOP of the syncer, kill -9 of sources (every
other one back from an older RDB) and of the destination. Prints each fault as it is applied,
every lie found, and the verdict (faults applied by kind, lies, data equal, counters exact, any
stall, SIGTERM); writes bench/results/faults-*.json. Exit status 1 when the verdict is not clean.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine_load, table, write_results
from tests.support.chaos import KINDS, ChaosRun


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="how long faults are applied")
    ap.add_argument("--seed", type=int, default=None, help="default: a random one (printed)")
    ap.add_argument("--cluster", action="store_true", help="a 3-shard cluster destination")
    ap.add_argument("--sources", type=int, default=2, help="how many sources (2 or more)")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    print(f"seed {seed}, {args.minutes:g} minutes; {machine_load()}", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix=f"faults-{seed}-"))
    verdict = ChaosRun(
        seed=seed,
        seconds=args.minutes * 60,
        workdir=workdir,
        cluster=args.cluster,
        sources=args.sources,
        say=lambda s: print(s, flush=True),
    ).run()
    by_kind = verdict.faults_by_kind
    print()
    print(table([("fault", "applied"), *[(k, str(by_kind.get(k, 0))) for k in KINDS]]))
    print()
    rows = [
        ("seed", str(seed)),
        ("destination", "3-shard cluster" if args.cluster else "standalone"),
        ("faults applied", str(len(verdict.faults))),
        ("status lines checked", str(verdict.status_lines)),
        ("R1 parts / R2 claims judged", f"{verdict.r1_checks} / {verdict.r2_checks}"),
        ("lies", str(len(verdict.lies))),
        ("syncer exits (not ours)", str(len(verdict.syncer_exits))),
        ("stall", verdict.stalled or "none"),
        ("catch-up after the faults", _s(verdict.catch_up_s)),
        (
            "full-sync rounds / partial resyncs",
            f"{verdict.full_sync_rounds} / {verdict.partial_resyncs}",
        ),
        ("watchdog alarms", str(verdict.watchdog_alarms)),
        ("equal (key by key)", f"{verdict.equal} ({verdict.keys} keys)"),
        ("counters exact, logs 1..n", str(verdict.counters_exact)),
        ("counters", ", ".join(f"{k} {n}" for k, n in verdict.counters.items())),
        ("SIGTERM", "deaf (killed)" if verdict.sigterm_s is None else _s(verdict.sigterm_s)),
        ("verdict", "clean" if verdict.ok else "NOT CLEAN"),
    ]
    print(table([("", ""), *rows]))
    for what in (*verdict.lies, *verdict.syncer_exits, *verdict.load_failures):
        print(what)
    for detail in (verdict.equal_detail, verdict.counters_detail):
        if detail:
            print(detail)
    print(f"syncer log: {verdict.log}")
    print(machine_load())
    path = write_results("faults", {"minutes": args.minutes, **verdict.as_dict()})
    print(f"wrote {path}")
    return 0 if verdict.ok else 1


def _s(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f} s"


if __name__ == "__main__":
    sys.exit(main())
