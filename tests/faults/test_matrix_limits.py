"""Issue 11's fault matrix, rows 13-19: the limits of a source or a destination (output buffer,
memory, credentials, certificates, slots, huge values, expiries).

Each row drives a real syncer (`SyncEngine` in a thread, or the CLI for the memory figure) against
real servers, makes the fault, and then asserts the oracle (tests/support/oracle.py): after the
operator's fix (or by itself) the destination is exactly the source, the load's counter equal and
its log exactly 1..n, the recovery path counted from the source's `INFO stats`, and the status and
events said what happened. A row that must stop the sync checks that it stopped at once, naming
the cause and the fix, without a retry storm and without half-applied batches.

Each row prints `FAULT ROW <n>: ... | recovery: ... | <s> s` (see with `pytest -s`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from replication.syncer.engine import SourceConfig
from replication.syncer.errors import (
    AuthError,
    CrossSlotError,
    FatalSyncError,
    OutOfMemoryError,
    OutputBufferLimitError,
)
from replication.syncer.events import EventKind
from replication.syncer.resp import TlsOptions
from tests.replication.syncer.conftest import Cli, EngineThread
from tests.support.fault_rows import (  # noqa: F401 - the *_fixture: fixtures
    Stopwatch,
    caught_up_with,
    engines_fixture,
    kinds,
    messages,
    own_servers_fixture,
    peak_rss_kb,
)
from tests.support.load import BatchLoad, caught_up, populate
from tests.support.oracle import Recovery, assert_exact
from tests.support.pki import make_ca
from tests.support.proxy import TcpProxy
from tests.support.servers import RedisClusterServers, RedisServer, free_port
from tests.support.wait import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MB = 1024 * 1024
# Settings the rows change on the shared servers, and the values every row starts from.
_BASELINE = {
    "client-output-buffer-limit": "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 "
    "8388608 60",
    "maxmemory": "0",
}

Engines = Callable[..., EngineThread]


@pytest.fixture(scope="module")
def shared() -> Iterator[tuple[RedisServer, RedisServer]]:
    """One source and one destination for the module's rows (reset between them)."""
    # A backlog that holds what the rows write while no syncer runs (row 14 resumes after it).
    src = RedisServer(args=["--repl-diskless-sync-delay", "0", "--repl-backlog-size", "64mb"])
    src.start()
    dst = RedisServer().start()
    try:
        yield src, dst
    finally:
        src.stop()
        dst.stop()


@pytest.fixture
def pair(shared: tuple[RedisServer, RedisServer]) -> tuple[RedisServer, RedisServer]:
    """The shared servers, empty, with the baseline settings and no client of a previous row."""
    for server in shared:
        c = server.client()
        for name, value in _BASELINE.items():
            c.config_set(name, value)
        c.client_kill_filter(_type="replica")
        c.client_kill_filter(_type="normal", skipme=True)
        c.flushall()
    return shared


def fill(client: redis.Redis, n: int, size: int, prefix: str = "big") -> None:
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        pipe.set(f"{prefix}:{i}", b"%d" % i * (size // 4))
        if i % 500 == 499:
            pipe.execute()
    pipe.execute()


def assert_stream_prefix(d: redis.Redis | redis.RedisCluster) -> None:
    """The load's log on the destination is 1..k and its counter k or k+1 (INCR and RPUSH are
    two commands of the source's stream: a stop may fall between them), nothing else."""
    log = [int(v) for v in d.lrange("log", 0, -1)]
    assert log == list(range(1, len(log) + 1)), "the log on the destination is not 1..k"
    assert int(d.get("counter") or 0) - len(log) in (0, 1)


def stopped_by(et: EngineThread, cls: type[FatalSyncError]) -> FatalSyncError:
    """The engine ended with `cls`; its status says stopped with the same error and kind, and its
    last event is the stop."""
    err = et.wait_done()
    assert isinstance(err, cls), repr(err)
    st = et.status()
    assert st.phase == "stopped" and st.last_error == str(err), st.as_dict()
    assert st.last_error_kind == err.kind
    stops = messages(et.engine.events(), EventKind.STOPPED)
    assert len(stops) == 1 and stops[0].endswith(str(err)), stops
    if err.side == "destination":  # the event says so, though it is tied to a source
        assert stops[0].startswith("the destination "), stops
    return err


def test_row_13_output_buffer_limit_stops_naming_the_setting(
    pair: tuple[RedisServer, RedisServer], engines: Engines
) -> None:
    """Row 13: the source drops us while we load or catch up because its replica output buffer
    limit is too small for the writes made meanwhile. Expected: three drops, then a stop
    whose error names `client-output-buffer-limit` and the fix; after the operator raises it, the
    sync resumes (by partial sync when the load had finished, else from a flush) and the
    destination is exact."""
    src, dst = pair
    s = src.client()
    populate(s, 1000)
    s.config_set("client-output-buffer-limit", "replica 64kb 32kb 1")
    with TcpProxy(src.port) as proxy, BatchLoad(s) as load:
        proxy.throttle(100_000)  # a slow snapshot: the writes buffered for us pass the limit
        wait_for(lambda: load.n > 500, what="the load")
        with Stopwatch(13, "replica output-buffer limit hit while loading") as sw:
            before = Recovery(s)
            et = engines([f"redis://127.0.0.1:{proxy.port}"], dst.url)
            err = stopped_by(et, OutputBufferLimitError)
            stopped_after = time.monotonic() - sw.started
            before.done()
            assert "client-output-buffer-limit" in str(err) and "CONFIG SET" in str(err)
            assert (err.side, err.source) == ("source", 0)
            # Each drop is followed by a reconnection the source serves: a snapshot, or a partial
            # resync when its backlog still holds what we missed; the third counted drop stops it
            # (a close while we had caught up does not count).
            attempts = before.full + before.partial
            assert before.full >= 1 and attempts >= 3, (before.full, before.partial)
            events = kinds(et.engine.events())
            assert events.count("full_sync_started") == before.full
            assert events.count("partial_resync") == before.partial
            # The operator's fix, then a new run.
            s.config_set("client-output-buffer-limit", "replica 256mb 64mb 60")
            proxy.throttle(None)
            sw.restart()
            fixed = Recovery(s)
            et = engines([f"redis://127.0.0.1:{proxy.port}"], dst.url)
            caught_up_with(et, src)
        load.__exit__()  # stopped here, while the link still runs through the proxy
        caught_up(s, dst.client())
    fixed.done()
    assert assert_exact([s], [dst.client()], loads=[(s, "")]) >= 1000
    # A load that had finished before the stop resumes from its checkpoint; one cut short starts
    # again from a flush.
    assert (fixed.full, fixed.partial) == ((0, 1) if "full_sync_done" in events else (1, 0))
    sw.done(
        f"stopped after 3 drops ({before.full} snapshot(s), {before.partial} partial "
        f"resync(s)) in {stopped_after:.1f} s naming the setting; after the fix: {fixed.full} "
        f"full sync(s), {fixed.partial} partial resync(s)"
    )


def test_row_14_destination_out_of_memory_during_full_sync_and_while_streaming(
    pair: tuple[RedisServer, RedisServer], engines: Engines
) -> None:
    """Row 14: the destination reaches its maxmemory (noeviction), first while loading the
    snapshot, then while streaming. Expected: each time a stop naming the destination, OOM and
    maxmemory, with nothing half-applied (the log on the destination is a prefix 1..m of the
    source's); after raising maxmemory, the load is done again from a flush (full), the stream
    resumes by partial sync, and the destination is exact."""
    src, dst = pair
    s, d = src.client(), dst.client()
    populate(s, 2000)
    fill(s, 3000, 1000)  # ~3.5 MB of values
    d.config_set("maxmemory", int(d.info("memory")["used_memory"]) + 1 * MB)
    with Stopwatch(14, "destination OOM during the full sync") as sw:
        et = engines([src.url], dst.url)
        err = stopped_by(et, OutOfMemoryError)
        assert (err.kind, err.side, err.source) == ("oom", "destination", 0)
        assert "maxmemory" in str(err) and "out of memory" in str(err)
        d.config_set("maxmemory", 0)
        sw.restart()
        loaded = Recovery(s)
        et = engines([src.url], dst.url)
        caught_up_with(et, src)
        loaded.done()
        assert "flush" in kinds(et.engine.events())  # the interrupted load is not kept
        assert_exact([s], [d])
        assert (loaded.full, loaded.partial) == (1, 0)
        full_s = sw.done("stopped at once; after the fix: flush + 1 full sync")

    with Stopwatch(14, "destination OOM while streaming") as sw, BatchLoad(s) as load:
        wait_for(lambda: load.n > 1000 and d.get("counter") is not None, what="the load")
        d.config_set("maxmemory", int(d.info("memory")["used_memory"]) + 512 * 1024)
        fill(s, 2000, 1000, prefix="more")  # ~2 MB: over the limit
        err = stopped_by(et, OutOfMemoryError)
        assert (err.kind, err.side, err.source) == ("oom", "destination", 0)
        # Nothing half-applied: the destination holds a prefix of the source's stream.
        m = int(d.get("counter") or 0)
        assert_stream_prefix(d)
        d.config_set("maxmemory", 0)
        sw.restart()
        resumed = Recovery(s)
        et = engines([src.url], dst.url)
        wait_for(lambda: int(d.get("counter") or 0) > m, what="streaming again")
    caught_up(s, d)
    resumed.done()
    assert assert_exact([s], [d], loads=[(s, "")]) >= 7000
    # Batches already sent after the refused one may have committed: then the stop says the
    # position was removed and the fix costs a flush + full sync; otherwise it resumes.
    if "saved position was removed" in str(err):
        assert (resumed.full, resumed.partial) == (1, 0)
        path = "position removed (later batches were in flight): flush + 1 full sync"
    else:
        assert (resumed.full, resumed.partial) == (0, 1)
        path = "1 partial resync"
    sw.done(f"stopped at once (full sync row: {full_s:.1f} s); after the fix: {path}")


def test_row_15_source_password_changed_is_fatal_without_a_retry_storm(
    own_servers: Callable[..., RedisServer], engines: Engines
) -> None:
    """Row 15: the source's password is changed and its replica link dropped (as a rotation
    does). Expected: the reconnection's AUTH fails and the sync stops at once with an
    authentication error that does not contain either password, after a handful of connection
    attempts (no retry storm); with the new password the sync resumes by partial sync, exact."""
    # A backlog for the writes the load makes while no syncer runs: resumed by partial sync.
    src = own_servers(password="old-secret-pw", args=["--repl-backlog-size", "64mb"])
    dst = own_servers()
    s = src.client()
    populate(s, 2000)
    # The load keeps its one connection, authenticated before the change.
    with TcpProxy(src.port) as proxy, BatchLoad(src.client()) as load:
        et = engines([f"redis://:old-secret-pw@127.0.0.1:{proxy.port}"], dst.url)
        caught_up_with(et, src)
        wait_for(lambda: load.n > 1000, what="the load")
        with Stopwatch(15, "source password changed") as sw:
            attempts = proxy.accepted_total
            s.config_set("requirepass", "new-secret-pw")
            s.client_kill_filter(_type="replica")
            src.password = "new-secret-pw"
            s = src.client()
            err = stopped_by(et, AuthError)
            stopped_after = time.monotonic() - sw.started
            assert (err.kind, err.side, err.source) == ("auth", "source", 0)
            assert "authentication failed" in str(err)
            assert "old-secret-pw" not in str(err) and "new-secret-pw" not in str(err)
            reconnects = proxy.accepted_total - attempts
            # The replication link's one attempt, and the lag sampler's if it came first.
            assert reconnects <= 3, f"{reconnects} connections after the password change"
            time.sleep(2)  # nothing keeps trying once stopped
            assert proxy.accepted_total - attempts == reconnects
            sw.restart()
            resumed = Recovery(s)
            et = engines([f"redis://:new-secret-pw@127.0.0.1:{proxy.port}"], dst.url)
            caught_up_with(et, src)
        load.__exit__()
        caught_up(s, dst.client())
    resumed.done()
    assert assert_exact([s], [dst.client()], loads=[(s, "")]) >= 2000
    assert load.n > 1000
    assert (resumed.full, resumed.partial) == (0, 1)
    sw.done(
        f"stopped {stopped_after:.1f} s after the change, {reconnects} connection attempt(s); "
        f"with the new password: 1 partial resync"
    )


def _tls_source(
    own_servers: Callable[..., RedisServer], tmp: Path, name: str, issued: Any, client_ca: str
) -> tuple[RedisServer, int]:
    """A source serving TLS on a port of its own with `issued`, requiring client certificates
    signed by `client_ca` (a PEM file)."""
    crt, key, _ = issued.write(tmp, name)
    port = free_port()
    args = ["--tls-port", str(port), "--tls-cert-file", crt, "--tls-key-file", key]
    args += ["--tls-ca-cert-file", client_ca, "--tls-auth-clients", "yes"]
    return own_servers(args=args), port


def test_row_16_tls_wrong_server_certificate_refused_client_certificate_expired_certificate(
    own_servers: Callable[..., RedisServer], engines: Engines, tmp_path: Path
) -> None:
    """Row 16: three TLS misconfigurations of a source, each a stop with a TLS error that says
    which (never a connection lost, retried forever): the server's certificate is not the trusted
    one, the server refuses our client certificate, the server's certificate has expired. Then
    with the right certificates: one full sync, exact."""
    ours, theirs = make_ca("our-ca"), make_ca("another-ca")
    client_ca = tmp_path / "clients-ca.crt"
    client_ca.write_text(ours.pem)
    good_client = ours.issue("syncer").write(tmp_path, "client")
    bad_client = theirs.issue("syncer").write(tmp_path, "stranger")
    src, port = _tls_source(own_servers, tmp_path, "server", ours.issue("db"), str(client_ca))
    expired, old_port = _tls_source(
        own_servers,
        tmp_path,
        "expired",
        ours.issue("db", valid_from_days=-30, valid_until_days=-1),
        str(client_ca),
    )
    dst = own_servers()
    populate(src.client(), 1000)
    trust_ours = str(client_ca)
    trust_theirs = tmp_path / "theirs.crt"
    trust_theirs.write_text(theirs.pem)
    cases = [
        ("wrong server certificate", port, good_client, str(trust_theirs), "does not match", "tls"),
        (
            "client certificate refused",
            port,
            bad_client,
            trust_ours,
            "syncer certificate",
            "tls_client",
        ),
        ("expired certificate", old_port, good_client, trust_ours, "has expired", "tls"),
    ]
    seen: list[str] = []
    for what, tls_port, (crt, key, _), ca, words, kind in cases:
        with Stopwatch(16, f"TLS: {what}") as sw, TcpProxy(tls_port) as proxy:
            tls = TlsOptions(cert=crt, key=key, ca=ca)
            et = engines([SourceConfig(f"rediss://127.0.0.1:{proxy.port}", tls)], dst.url)
            err = stopped_by(et, FatalSyncError)
            assert (err.kind, err.side, err.source) == (kind, "source", 0), repr(err)
            assert words in str(err), str(err)
            assert proxy.accepted_total <= 2, f"{proxy.accepted_total} connection attempts"
            seen.append(f"{what}: {proxy.accepted_total} attempt(s)")
            sw.done(f"stopped with a TLS error ({words!r}), {proxy.accepted_total} attempt(s)")
    assert expired.client().ping()
    with Stopwatch(16, "TLS: right certificates after the errors") as sw:
        full = Recovery(src.client())
        tls = TlsOptions(cert=good_client[0], key=good_client[1], ca=trust_ours)
        et = engines([SourceConfig(f"rediss://127.0.0.1:{port}", tls)], dst.url)
        caught_up_with(et, src)
        full.done()
        assert_exact([src.client()], [dst.client()])
        assert (full.full, full.partial) == (1, 0)
        sw.done("; ".join(seen) + "; then 1 full sync")


def test_row_17_cross_slot_command_into_a_cluster_destination(
    pair: tuple[RedisServer, RedisServer], engines: Engines
) -> None:
    """Row 17: a multi-key command over several slots arrives in the stream of a source whose
    destination is a Redis Cluster. Expected: a stop naming the command, with every batch before
    it applied whole and nothing of the batch that holds it; restarting (flush + full sync) makes
    the destination exact, the snapshot having no multi-key command."""
    src, _ = pair
    s = src.client()
    populate(s, 2000)
    with RedisClusterServers(3) as cluster:
        nodes = [n.client() for n in cluster.nodes]
        dc = cluster.client()
        with Stopwatch(17, "cross-slot MSET into a cluster destination") as sw, BatchLoad(s):
            et = engines([src.url], cluster.url)
            caught_up_with(et, src)
            wait_for(lambda: dc.get("counter") is not None, what="the load on the destination")
            s.mset({"alpha": 1, "beta": 2, "gamma": 3})
            err = stopped_by(et, CrossSlotError)
            assert (err.kind, err.side, err.source) == ("cross_slot", "destination", 0)
            assert "MSET" in str(err)
            assert dc.get("alpha") is None and dc.get("beta") is None
            assert_stream_prefix(dc)
            sw.restart()
            full = Recovery(s)
            et = engines([src.url], cluster.url, flush=True)
            caught_up_with(et, src)
        caught_up(s, dc)
        full.done()
        assert assert_exact([s], nodes, loads=[(s, "")], dest_client=dc) >= 2003
        assert (full.full, full.partial) == (1, 0)
        sw.done("stopped naming MSET, the stream applied up to it; restart: flush + 1 full sync")


def test_row_18_huge_values_keep_the_syncer_under_200_mb(
    pair: tuple[RedisServer, RedisServer], tmp_path: Path
) -> None:
    """Row 18: a 30 MB string and a 1,000,000-element list, in the snapshot and again in the
    stream. Expected: the CLI syncer's peak resident set (VmHWM) stays at or under 200 MB, and the
    destination is exact."""
    src, dst = pair
    # DEBUG DIGEST-VALUE of a million elements takes longer than redis-py's default 5 s.
    s, d = src.client(socket_timeout=120), dst.client(socket_timeout=120)
    big = bytes(range(256)) * (30 * MB // 256)

    def a_million(key: str) -> None:
        pipe = s.pipeline(transaction=False)
        for i in range(0, 1_000_000, 10_000):
            pipe.rpush(key, *range(i, i + 10_000))
        pipe.execute()

    s.set("string-30mb", big)
    a_million("list-1m")
    populate(s, 1000)
    with Stopwatch(18, "30 MB string + 1,000,000-element list") as sw:
        proc = Cli(src.url, "--to", dst.url, log=tmp_path / "syncer.log")
        try:
            wait_for(lambda: d.llen("list-1m") == 1_000_000, what="the snapshot loaded")
            caught_up(s, d)
            load_s = time.monotonic() - sw.started
            s.set("string-30mb-streamed", big[::-1])
            a_million("list-1m-streamed")
            caught_up(s, d)
            peak_mb = peak_rss_kb(proc.proc.pid) / 1024
        finally:
            assert proc.stop() == 0, proc.output()
    assert assert_exact([s], [d]) >= 1004
    assert d.strlen("string-30mb-streamed") == len(big)
    print(f"syncer peak RSS (VmHWM): {peak_mb:.0f} MB")
    assert peak_mb <= 200, f"the syncer's peak RSS was {peak_mb:.0f} MB"
    sw.done(f"full sync in {load_s:.1f} s, streamed the same again; peak RSS {peak_mb:.0f} MB")


def test_row_19_expiry_gap_keys_renewed_during_a_slow_full_sync(
    pair: tuple[RedisServer, RedisServer], engines: Engines
) -> None:
    """Row 19: keys with a 3 s TTL that the source renews every second while a full sync lasts
    longer than that TTL, beside keys that expire for real meanwhile. Expected: the renewed keys
    survive on the destination with the source's TTL (not the grace one), the expired ones are
    gone, one full sync, exact."""
    src, dst = pair
    s, d = src.client(), dst.client()
    populate(s, 3000)
    renewed = [f"renewed:{i}" for i in range(20)]
    expiring = [f"expiring:{i}" for i in range(20)]
    for k in renewed:
        s.set(k, "v", ex=3)
    for k in expiring:
        s.set(k, "v", px=1500)
    stop = threading.Event()

    def renew() -> None:
        c = src.client()
        while not stop.wait(1):
            for k in renewed:
                c.expire(k, 3)

    t = threading.Thread(target=renew)
    t.start()
    try:
        with Stopwatch(19, "expiry gap: TTLs renewed during a slow full sync") as sw:
            full = Recovery(s)
            with TcpProxy(src.port) as proxy:
                proxy.throttle(80_000)  # the snapshot takes ~5 s: longer than the TTLs
                et = engines([f"redis://127.0.0.1:{proxy.port}"], dst.url)
                et.wait_phase("syncing")
                et.wait_phase("in-sync")
                load_s = time.monotonic() - sw.started
                assert load_s > 3, f"the load took only {load_s:.1f} s: no gap to cross"
                proxy.throttle(None)
                caught_up_with(et, src)
                time.sleep(2)  # renewals after the TTL fix-up: the destination follows them
                stop.set()
                t.join()
                caught_up_with(et, src)
                missing = [k for k in renewed if not d.exists(k)]
                assert not missing, f"lost on the destination: {missing}"
                assert all(0 < d.pttl(k) <= 3000 for k in renewed)  # real TTLs, not the grace
                assert not any(d.exists(k) for k in expiring)
                assert assert_exact([s], [d]) >= 3020
            full.done()
    finally:
        stop.set()
        t.join()
    assert (full.full, full.partial) == (1, 0)
    sw.done(f"1 full sync of {load_s:.1f} s, renewed keys kept with their real TTL")
