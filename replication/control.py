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
  `ingress_bytes_decompressed`), the last 15 minutes.
- `series:<step>:<source uid>` (list) and `acc:<step>:<source uid>` (hash): the same samples rolled
  up into buckets of `step` seconds (`TIERS`: 10 s for 12 hours, 1 min for a week), each a JSON
  array `[bucket start, largest lag or null, commands, ingress bytes, decompressed bytes]`; the
  bucket being filled lives in the hash until a sample of the next bucket pushes it to the list.
  Bounded: 900 + 4,320 + 10,080 entries per source (MEMORY USAGE of the three full lists:
  0.76 MB; 32 sources: 24 MB).
  Written by one Lua script with the 1 s sample, and only while the writer's generation is the
  wanted one, so a job of the previous sources never writes into the new sources' history.
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
STATS_SECONDS = 15 * 60
# The rolled-up series: (bucket seconds, buckets kept).
TIERS: tuple[tuple[int, int], ...] = ((10, 12 * 360), (60, 7 * 24 * 60))
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


# KEYS: desired, stats, totals, then (series, acc) per tier. ARGV: generation ("" = any), the
# sample's JSON, stats length, stats TTL, t, lag ("" = none), commands, ingress bytes,
# decompressed bytes, then (step, buckets kept) per tier.
_APPEND = """
local g = redis.call('HGET', KEYS[1], 'generation')
if ARGV[1] ~= '' and g and g ~= ARGV[1] then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[3]), -1)
redis.call('EXPIRE', KEYS[2], ARGV[4])
local names = {'commands', 'ingress_bytes', 'ingress_bytes_decompressed'}
local fields = {'c', 'ib', 'ibd'}
for i = 1, 3 do
  if tonumber(ARGV[6 + i]) > 0 then redis.call('HINCRBY', KEYS[3], names[i], ARGV[6 + i]) end
end
local t, lag = tonumber(ARGV[5]), ARGV[6]
local n, k = 10, 4
while ARGV[n] do
  local step, keep = tonumber(ARGV[n]), tonumber(ARGV[n + 1])
  local list, acc = KEYS[k], KEYS[k + 1]
  local b = math.floor(t / step) * step
  local cur = redis.call('HMGET', acc, 'b', 'lag', 'c', 'ib', 'ibd')
  if cur[1] and tonumber(cur[1]) ~= b then
    redis.call('RPUSH', list, '[' .. cur[1] .. ',' .. (cur[2] or 'null') .. ',' .. (cur[3] or 0)
      .. ',' .. (cur[4] or 0) .. ',' .. (cur[5] or 0) .. ']')
    redis.call('LTRIM', list, -keep, -1)
    redis.call('EXPIRE', list, keep * step)
    redis.call('DEL', acc)
  end
  if not cur[1] or tonumber(cur[1]) ~= b then
    redis.call('HSET', acc, 'b', string.format('%d', b))
  end
  for i = 1, 3 do redis.call('HINCRBY', acc, fields[i], ARGV[6 + i]) end
  if lag ~= '' then
    local old = redis.call('HGET', acc, 'lag')
    if not old or tonumber(lag) > tonumber(old) then redis.call('HSET', acc, 'lag', lag) end
  end
  redis.call('EXPIRE', acc, keep * step)
  n, k = n + 2, k + 2
end
return 1
"""


def stats_append(
    uid: int, samples: dict[int, dict[str, Any]], *, generation: int | None = None
) -> None:
    """One sample per source (source uid -> sample): the 1 s series, the rolled-up tiers and
    the totals. With `generation`, nothing is written unless it is still the wanted one."""
    script = client().register_script(_APPEND)
    pipe = client().pipeline(transaction=False)
    tiers = [str(v) for tier in TIERS for v in tier]
    for source_uid, sample in samples.items():
        keys = [_key(uid, "desired"), _key(uid, f"stats:{source_uid}")]
        keys.append(_key(uid, f"totals:{source_uid}"))
        for step, _ in TIERS:
            keys += [
                _key(uid, f"series:{step}:{source_uid}"),
                _key(uid, f"acc:{step}:{source_uid}"),
            ]
        lag = sample.get("lag")
        args = [
            "" if generation is None else str(generation),
            json.dumps(sample, separators=(",", ":")),
            str(STATS_SECONDS),
            str(STATS_SECONDS * 2),
            repr(float(sample["t"])),
            "" if lag is None else str(int(lag)),
            *(str(int(sample.get(name) or 0)) for name in TOTALS),
            *tiers,
        ]
        script(keys=keys, args=args, client=pipe)
    pipe.execute()


def totals_read(uid: int, source_uid: int) -> dict[str, int]:
    """The source's counters since its sources were set (0 for what never came)."""
    raw = client().hmget(_key(uid, f"totals:{source_uid}"), list(TOTALS))
    return {name: int(value or 0) for name, value in zip(TOTALS, raw, strict=True)}


def history_clear(uid: int, source_uids: range) -> None:
    """Forget the series and totals of the destination's sources (its sources changed)."""
    kinds = ["stats", "totals"] + [
        f"{kind}:{step}" for step, _ in TIERS for kind in ("series", "acc")
    ]
    keys = [_key(uid, f"{kind}:{n}") for n in source_uids for kind in kinds]
    client().delete(*keys)


def stats_read(uid: int, source_uid: int) -> list[dict[str, Any]]:
    raw = client().lrange(_key(uid, f"stats:{source_uid}"), 0, -1)
    return [json.loads(r) for r in raw]


def tier_read(uid: int, source_uid: int, step: int) -> list[dict[str, Any]]:
    """The `step`-second buckets of a source, oldest first, the one being filled last; each in
    the shape of a 1 s sample (`t` is the bucket's start, `lag` the largest lag in it)."""
    pipe = client().pipeline(transaction=True)
    pipe.lrange(_key(uid, f"series:{step}:{source_uid}"), 0, -1)
    pipe.hmget(_key(uid, f"acc:{step}:{source_uid}"), ["b", "lag", "c", "ib", "ibd"])
    raw, acc = pipe.execute()
    rows = [json.loads(r) for r in raw]
    if acc[0] is not None:
        rows.append(
            [int(acc[0]), None if acc[1] is None else int(acc[1]), *(int(v or 0) for v in acc[2:])]
        )
    names = ("t", "lag", *TOTALS)
    return [dict(zip(names, row, strict=True)) for row in rows]
