"""What sync jobs share through the control Redis: the wanted state, the job lock, the series.

Keys (all under `replicaof:<destination uid>:`):
- `desired` (hash): `generation`, `state` (the destination's `replica_sync`) and `revision`.
  `replication.services` writes it after every committed change and reconcile rewrites it from
  the database; a running job polls it four times a second and exits when its generation is stale,
  the state is no longer `enabled`, or the revision moved (a reload: same generation, new
  credentials; the next job resumes by partial sync). This is how stop/pause/restart reach a job
  in under a second.
- `lock` (string): the token of the job that runs the destination, `SET NX PX`, renewed every
  second by that job; it doubles as the heartbeat. A lock that expired means the job is gone.
- `queued` (string): set for a few seconds when a job is enqueued, so that reconcile does not
  enqueue the same job again while it waits in the queue.
- `stats:<source uid>` (list): one JSON sample a second (`t`, `lag`, `commands`, `ingress_bytes`,
  `ingress_bytes_decompressed`), the last hour.
- `totals:<source uid>` (hash): `commands`, `ingress_bytes`, `ingress_bytes_decompressed` summed
  over every sample of every job since the sources were last set: the Prometheus counters, which
  must never go backwards when a job restarts (each job's own counts start at 0). Both this and
  the series are dropped when the sources change (a new source 1 is not the old one).

Nothing secret is ever written here.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings

LOCK_TTL_MS = 10_000
QUEUED_TTL_S = 30
STATS_SECONDS = 3600
# The per-second deltas of a sample that are also summed into the source's totals.
TOTALS = ("commands", "ingress_bytes", "ingress_bytes_decompressed")

_local = threading.local()

_IF_OURS = "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end "
_RENEW = _IF_OURS + "return redis.call('PEXPIRE', KEYS[1], ARGV[2])"
_RELEASE = _IF_OURS + "return redis.call('DEL', KEYS[1])"


def client() -> redis.Redis:
    """A client of the control Redis (one per thread; the URL comes from settings, not users)."""
    c: redis.Redis | None = getattr(_local, "client", None)
    if c is None:
        c = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5)
        _local.client = c
    return c


def _key(uid: int, name: str) -> str:
    return f"replicaof:{uid}:{name}"


@dataclass(frozen=True, slots=True)
class Desired:
    generation: int
    state: str
    revision: int


def desired_publish(uid: int, *, generation: int, state: str) -> None:
    client().hset(_key(uid, "desired"), mapping={"generation": generation, "state": state})


def desired_reload(uid: int) -> None:
    """Ask the running job to exit so that a new one starts with fresh credentials."""
    client().hincrby(_key(uid, "desired"), "revision", 1)


def desired_read(uid: int) -> Desired | None:
    raw = client().hmget(_key(uid, "desired"), ["generation", "state", "revision"])
    if raw[0] is None or raw[1] is None:
        return None
    state = raw[1].decode() if isinstance(raw[1], bytes) else str(raw[1])
    return Desired(int(raw[0]), state, int(raw[2] or 0))


def lock_acquire(uid: int, token: str) -> bool:
    return bool(client().set(_key(uid, "lock"), token, nx=True, px=LOCK_TTL_MS))


def lock_renew(uid: int, token: str) -> bool:
    return bool(client().eval(_RENEW, 1, _key(uid, "lock"), token, LOCK_TTL_MS))


def lock_release(uid: int, token: str) -> None:
    client().eval(_RELEASE, 1, _key(uid, "lock"), token)


def lock_held(uid: int) -> bool:
    return bool(client().exists(_key(uid, "lock")))


def queued_set(uid: int, generation: int) -> None:
    client().set(_key(uid, "queued"), generation, ex=QUEUED_TTL_S)


def queued(uid: int) -> bool:
    """A job was enqueued in the last QUEUED_TTL_S seconds and has not started yet."""
    return bool(client().exists(_key(uid, "queued")))


def queued_clear(uid: int) -> None:
    client().delete(_key(uid, "queued"))


def stats_append(uid: int, samples: dict[int, dict[str, Any]]) -> None:
    """One sample per source (source uid -> sample), trimmed to the last hour."""
    pipe = client().pipeline(transaction=True)
    for source_uid, sample in samples.items():
        key = _key(uid, f"stats:{source_uid}")
        pipe.rpush(key, json.dumps(sample, separators=(",", ":")))
        pipe.ltrim(key, -STATS_SECONDS, -1)
        pipe.expire(key, STATS_SECONDS * 2)
        totals = _key(uid, f"totals:{source_uid}")
        for name in TOTALS:
            if sample.get(name):
                pipe.hincrby(totals, name, int(sample[name]))
    pipe.execute()


def totals_read(uid: int, source_uid: int) -> dict[str, int]:
    """The source's counters since its sources were set (0 for what never came)."""
    raw = client().hmget(_key(uid, f"totals:{source_uid}"), list(TOTALS))
    return {name: int(value or 0) for name, value in zip(TOTALS, raw, strict=True)}


def history_clear(uid: int, source_uids: range) -> None:
    """Forget the series and totals of the destination's sources (its sources changed)."""
    keys = [_key(uid, f"{kind}:{n}") for n in source_uids for kind in ("stats", "totals")]
    client().delete(*keys)


def stats_read(uid: int, source_uid: int) -> list[dict[str, Any]]:
    raw = client().lrange(_key(uid, f"stats:{source_uid}"), 0, -1)
    return [json.loads(r) for r in raw]
