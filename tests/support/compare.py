"""Compare datasets key by key: type, value (server-side digest) and TTL within a tolerance.

Works for any layout: a standalone server is `[client]`, a Redis Cluster is the list of its
primaries' clients, several sources are the concatenation of their lists. The syncer's own
bookkeeping keys (replication.syncer.checkpoint.is_bookkeeping_key) are never part of a dataset,
which is why we do not compare `DEBUG DIGEST` of whole servers: the destination holds the
checkpoint, the source does not.

Values are compared with `DEBUG DIGEST-VALUE` (same algorithm in Redis and Valkey, independent of
encodings); on a mismatch the values are fetched to make the failure readable.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import redis

from replication.syncer.checkpoint import is_bookkeeping_key

Entry = tuple[bytes, bytes, int]  # type, digest, absolute expiry in ms (-1 = none)


def dataset(
    clients: Sequence[redis.Redis], db: int = 0, *, batch: int = 1000
) -> dict[bytes, Entry]:
    """Every user key of `db` across `clients`: key -> (type, digest, expiry).

    The expiry is absolute (`PEXPIRETIME`), so scanning the source and then the destination does
    not make TTLs drift apart by the time the scan took."""
    out: dict[bytes, Entry] = {}
    for client in clients:
        conn = client if db == 0 else _with_db(client, db)
        keys: list[bytes] = []
        for key in conn.scan_iter(count=batch):
            if not is_bookkeeping_key(key):
                keys.append(key)
            if len(keys) >= batch:
                out.update(_describe(conn, keys))
                keys = []
        out.update(_describe(conn, keys))
    return out


def _with_db(client: redis.Redis, db: int) -> redis.Redis:
    kw = client.connection_pool.connection_kwargs
    return redis.Redis(host=kw["host"], port=kw["port"], password=kw.get("password"), db=db)


def _describe(conn: redis.Redis, keys: list[bytes]) -> dict[bytes, Entry]:
    if not keys:
        return {}
    pipe = conn.pipeline(transaction=False)
    for key in keys:
        pipe.type(key)
        pipe.execute_command("DEBUG", "DIGEST-VALUE", key)
        pipe.execute_command("PEXPIRETIME", key)
    replies = pipe.execute(raise_on_error=False)
    out: dict[bytes, Entry] = {}
    for i, key in enumerate(keys):
        typ, digest, expiry = replies[3 * i : 3 * i + 3]
        if typ == b"none" or isinstance(digest, Exception):
            continue  # expired or deleted between SCAN and now
        if isinstance(expiry, Exception):
            continue
        out[key] = (typ, digest[0] if isinstance(digest, list) else digest, int(expiry))
    return out


def value_of(client: redis.Redis, key: bytes) -> object:
    typ = client.type(key)
    if typ == b"string":
        return client.get(key)
    if typ == b"list":
        return client.lrange(key, 0, -1)
    if typ == b"set":
        return sorted(client.smembers(key))
    if typ == b"zset":
        return client.zrange(key, 0, -1, withscores=True)
    if typ == b"hash":
        return sorted(client.hgetall(key).items())
    if typ == b"stream":
        return client.xrange(key)
    return typ


def diff_datasets(
    source: dict[bytes, Entry], dest: dict[bytes, Entry], *, ttl_tolerance_ms: int = 1000
) -> list[str]:
    """Human-readable differences (empty when equal)."""
    problems: list[str] = []
    missing = source.keys() - dest.keys()
    extra = dest.keys() - source.keys()
    if missing:
        problems.append(
            f"{len(missing)} keys missing on the destination, e.g. {sorted(missing)[:5]}"
        )
    if extra:
        problems.append(
            f"{len(extra)} unexpected keys on the destination, e.g. {sorted(extra)[:5]}"
        )
    for key in source.keys() & dest.keys():
        (st, sd, sttl), (dt, dd, dttl) = source[key], dest[key]
        if st != dt:
            problems.append(f"{key!r}: type {st!r} on the source, {dt!r} on the destination")
        elif sd != dd:
            problems.append(f"{key!r}: {st.decode()} value differs")
        elif (sttl < 0) != (dttl < 0) or abs(sttl - dttl) > ttl_tolerance_ms:
            problems.append(
                f"{key!r}: expires at {sttl} ms on the source, {dttl} on the destination"
            )
        if len(problems) > 20:
            problems.append("…")
            break
    return problems


def _locate(clients: Sequence[redis.Redis], db: int, key: bytes) -> redis.Redis | None:
    for client in clients:
        conn = client if db == 0 else _with_db(client, db)
        try:
            if conn.exists(key):
                return conn
        except redis.ResponseError:  # MOVED: another primary of a cluster holds it
            continue
    return None


def assert_same_data(
    sources: Sequence[redis.Redis],
    dest: Sequence[redis.Redis],
    *,
    dbs: Iterable[int] = (0,),
    ttl_tolerance_ms: int = 1000,
) -> int:
    """Assert that the destination holds exactly the sources' user data; returns the key count.

    Digests can differ between Redis and Valkey for equal values (sorted-set scores are formatted
    differently), so a digest mismatch is settled by comparing the values themselves.
    """
    total = 0
    for db in dbs:
        src, dst = dataset(sources, db), dataset(dest, db)
        for key in src.keys() & dst.keys():
            (st, sd, _), (dt, dd, dttl) = src[key], dst[key]
            if st == dt and sd != dd:
                s_conn, d_conn = _locate(sources, db, key), _locate(dest, db, key)
                if s_conn and d_conn and value_of(s_conn, key) == value_of(d_conn, key):
                    dst[key] = (dt, sd, dttl)
        problems = diff_datasets(src, dst, ttl_tolerance_ms=ttl_tolerance_ms)
        if problems:
            detail = ""
            bad = next((k for k in src.keys() & dst.keys() if src[k][1] != dst[k][1]), None)
            if bad is not None:
                s_conn, d_conn = _locate(sources, db, bad), _locate(dest, db, bad)
                if s_conn is not None and d_conn is not None:
                    detail = f"\n{bad!r} source: {value_of(s_conn, bad)!r:.300}\n"
                    detail += f"{bad!r} destination: {value_of(d_conn, bad)!r:.300}"
            raise AssertionError(f"db {db}: " + "\n".join(problems) + detail)
        total += len(src)
    return total
