"""The naive copier we compare against: SCAN + DUMP/PTTL, then RESTORE, pipelined, in Python."""

from __future__ import annotations

import argparse
import time

import redis


def naive_copy(src: redis.Redis, dst: redis.Redis, *, batch: int = 1000) -> int:
    """Copy every key of db 0 once (no consistency with concurrent writes); returns the count."""
    copied = 0
    cursor = 0
    while True:
        cursor, keys = src.scan(cursor, count=batch)
        if keys:
            p = src.pipeline(transaction=False)
            for k in keys:
                p.dump(k)
                p.pttl(k)
            replies = p.execute()
            w = dst.pipeline(transaction=False)
            for i, k in enumerate(keys):
                payload, ttl = replies[2 * i], replies[2 * i + 1]
                if payload is None:
                    continue
                w.restore(k, max(int(ttl), 0), payload, replace=True)
                copied += 1
            w.execute()
        if cursor == 0:
            return copied


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("source_port", type=int)
    ap.add_argument("dest_port", type=int)
    args = ap.parse_args()
    t0 = time.monotonic()
    n = naive_copy(redis.Redis(port=args.source_port), redis.Redis(port=args.dest_port))
    print(f"{n} keys in {time.monotonic() - t0:.2f} s")


if __name__ == "__main__":
    main()
