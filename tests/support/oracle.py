"""The oracle of fault tests: is the destination exactly the sources, and how did it get there.

`assert_exact` is the whole verdict: every user key equal (type, value, TTL within a tolerance;
the syncer's bookkeeping keys skipped, see tests.support.compare), and for each write load
(tests.support.load.Load / BatchLoad, one key prefix per load) the counter equal to the source's
and the log exactly 1..n, so a lost or a doubled write is named, not just "different".

`Recovery` reads how a source served its replicas (`INFO stats`: `sync_full`,
`sync_partial_ok`, `sync_partial_err`) before and after a fault, so a test can assert that an
outage inside the backlog cost a partial resync and not a snapshot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import redis

from tests.support.compare import assert_same_data


def assert_log_exact(
    source: redis.Redis, dest: redis.Redis | redis.RedisCluster, prefix: str = ""
) -> int:
    """The load's counter is equal on both sides and its log on the destination is 1..n."""
    counter, log = f"{prefix}counter", f"{prefix}log"
    n = int(source.get(counter) or 0)
    got = dest.get(counter)
    assert got is not None and int(got) == n, f"{counter}: destination {got!r}, source {n}"
    values = [int(v) for v in dest.lrange(log, 0, -1)]
    if values != list(range(1, n + 1)):
        missing = sorted(set(range(1, n + 1)) - set(values))
        doubled = len(values) - len(set(values))
        raise AssertionError(
            f"{log}: {len(values)} entries for a counter of {n}; "
            f"missing {missing[:10]}{'…' if len(missing) > 10 else ''} ({len(missing)}), "
            f"doubled {doubled}, in order: {values == sorted(values)}"
        )
    return n


def assert_exact(
    sources: Sequence[redis.Redis],
    dest: Sequence[redis.Redis],
    *,
    loads: Sequence[tuple[redis.Redis, str]] = (),
    dest_client: redis.Redis | redis.RedisCluster | None = None,
    ttl_tolerance_ms: int = 1500,
) -> int:
    """The full verdict; `loads` are (source client, key prefix) of each write load, read on the
    destination through `dest_client` (a RedisCluster for a sharded destination, else dest[0])."""
    keys = assert_same_data(sources, dest, ttl_tolerance_ms=ttl_tolerance_ms)
    reader = dest_client if dest_client is not None else dest[0]
    for client, prefix in loads:
        assert_log_exact(client, reader, prefix)
    return keys


@dataclass(frozen=True)
class SyncStats:
    full: int
    partial_ok: int
    partial_err: int


def sync_stats(source: redis.Redis) -> SyncStats:
    info = source.info("stats")
    return SyncStats(
        int(info.get("sync_full", 0)),
        int(info.get("sync_partial_ok", 0)),
        int(info.get("sync_partial_err", 0)),
    )


class Recovery:
    """`with Recovery(src) as r: <fault>` then `r.full`, `r.partial` (counts served meanwhile)."""

    def __init__(self, source: redis.Redis) -> None:
        self.source = source
        self.before = sync_stats(source)
        self.after: SyncStats | None = None

    def __enter__(self) -> Recovery:
        self.before = sync_stats(self.source)
        return self

    def __exit__(self, *exc: object) -> None:
        self.done()

    def done(self) -> Recovery:
        self.after = sync_stats(self.source)
        return self

    @property
    def full(self) -> int:
        after = self.after or sync_stats(self.source)
        return after.full - self.before.full

    @property
    def partial(self) -> int:
        after = self.after or sync_stats(self.source)
        return after.partial_ok - self.before.partial_ok
