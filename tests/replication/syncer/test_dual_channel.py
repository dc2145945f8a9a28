"""Dual-channel full sync (dualchannel.py) against a real Valkey 8 source: writes during the
load, a cut of either connection while the snapshot loads, the spill file, the fallbacks to the
classic handshake; and the stream buffer as a unit."""

from __future__ import annotations

import random
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from replication.syncer.dualchannel import StreamBuffer, parse_endoff
from replication.syncer.engine import DestinationConfig, SourceConfig
from replication.syncer.events import EventKind
from replication.syncer.gateway import GatewayOptions
from replication.syncer.resp import TlsOptions
from replication.syncer.status import LinkStatus
from tests.support.compare import assert_same_data
from tests.support.gateway import GatewayProcess
from tests.support.load import Load, populate
from tests.support.proxy import TcpProxy
from tests.support.servers import RedisServer
from tests.support.wait import wait_for

from .conftest import EngineThread, in_sync_and_caught_up
from .rdb_fixtures import VALKEY_SERVER
from .test_tls import pki  # noqa: F401  (the fixture)

Servers = Callable[..., RedisServer]
Engines = Callable[..., EngineThread]

# A Valkey source that offers dual channel, without the 5 s wait before it forks; each key of the
# snapshot takes `delay` µs to save, so that the load lasts long enough to write and cut during it.
DUAL = ["--dual-channel-replication-enabled", "yes", "--repl-diskless-sync-delay", "0"]


def dual_source(servers: Servers, *, keys: int, delay_us: int) -> RedisServer:
    src = servers(binary=VALKEY_SERVER, args=[*DUAL, "--rdb-key-save-delay", str(delay_us)])
    populate(src.client(), keys)
    return src


def replica_clients(src: RedisServer) -> dict[str, str]:
    """The source's replica connections: their type (`main-channel`, `rdb-channel`, or none for
    a classic replica) -> the address `CLIENT KILL ADDR` takes (we announce our socket's port)."""
    info = src.client().info("replication")
    out: dict[str, str] = {}
    for name, value in info.items():
        if name.startswith("slave") and isinstance(value, dict):
            out[str(value.get("type", "classic"))] = f"{value['ip']}:{value['port']}"
    return out


def assert_log_exactly_once(src: RedisServer, dst: RedisServer) -> None:
    """Load's counter and log: every INCR applied once, in order (a replayed or lost batch would
    show as a repeated or missing number)."""
    log = [int(x) for x in dst.client().lrange("log", 0, -1)]
    assert log == list(range(1, len(log) + 1))
    assert int(dst.client().get("counter") or 0) == len(log) == src.client().llen("log")


def link_of(et: EngineThread) -> LinkStatus:
    """The source's one link (a blank status until the engine has resolved it)."""
    links = et.status().links
    return links[0] if links else LinkStatus("")


def messages(et: EngineThread, kind: EventKind) -> list[str]:
    return [e.message for e in et.engine.events() if e.kind is kind]


@pytest.mark.integration
def test_full_sync_under_writes_uses_dual_channel(
    servers: Servers, engines: Engines, tmp_path: Path
) -> None:
    src = dual_source(servers, keys=20000, delay_us=100)  # about 2 s of snapshot
    dst = servers(binary=VALKEY_SERVER)
    with Load(src.client()):
        et = engines([src.url], dst.url, work_dir=str(tmp_path))
        et.wait_phase("syncing")
        # The command stream flows on the main connection while the snapshot loads, and the
        # source counts it as streaming to a replica, not as buffered for one.
        wait_for(
            lambda: link_of(et).stream_buffer_peak > 0 and et.status().phase == "syncing",
            what=f"stream buffered during the load ({et.status().as_dict()})",
        )
        assert set(replica_clients(src)) == {"main-channel", "rdb-channel"}
        et.wait_phase("in-sync")
        time.sleep(0.3)
    in_sync_and_caught_up(et, src)
    link = link_of(et)
    assert link.full_sync_channel == "dual-channel"
    assert (link.full_syncs, link.partial_syncs, link.stream_spilled) == (1, 0, 0)
    assert "dual channel" in messages(et, EventKind.FULL_SYNC_STARTED)[0]
    assert set(replica_clients(src)) == {"replica"}  # online; the rdb connection is gone
    assert_same_data([src.client()], [dst.client()])
    assert_log_exactly_once(src, dst)
    # The checkpoint is the snapshot's end offset plus the stream applied since: a new run
    # continues from it by partial resync, without a second full sync.
    et.stop()
    for i in range(100):
        src.client().rpush("after", i)
    again = engines([src.url], dst.url)
    in_sync_and_caught_up(again, src)
    link = link_of(again)
    assert (link.full_syncs, link.partial_syncs) == (0, 1)
    assert_same_data([src.client()], [dst.client()])


@pytest.mark.integration
def test_rdb_connection_cut_during_the_snapshot_loads_again(
    servers: Servers, engines: Engines
) -> None:
    src = dual_source(servers, keys=20000, delay_us=200)  # about 4 s of snapshot
    dst = servers(binary=VALKEY_SERVER)
    with Load(src.client()):
        et = engines([src.url], dst.url)
        wait_for(
            lambda: link_of(et).keys_loaded > 1000,
            what=f"part of the snapshot loaded ({et.status().as_dict()})",
        )
        src.client().config_set("rdb-key-save-delay", 0)  # the next snapshot goes fast
        src.client().execute_command("CLIENT", "KILL", "ADDR", replica_clients(src)["rdb-channel"])
        wait_for(
            lambda: link_of(et).full_syncs >= 2,
            what=f"a second full sync ({et.status().as_dict()})",
        )
        et.wait_phase("in-sync")
        time.sleep(0.3)
    in_sync_and_caught_up(et, src)
    assert any("dropped while loading" in m for m in messages(et, EventKind.ROUND_RESTART))
    assert link_of(et).full_sync_channel == "dual-channel"
    assert_same_data([src.client()], [dst.client()])
    assert_log_exactly_once(src, dst)


@pytest.mark.integration
def test_main_connection_cut_during_the_snapshot_continues_after_it(
    servers: Servers, engines: Engines
) -> None:
    """The snapshot loads on; the stream buffered up to the cut is applied, and the rest comes by
    partial resync from there: one full sync, one partial resync."""
    src = dual_source(servers, keys=20000, delay_us=200)
    dst = servers(binary=VALKEY_SERVER)
    with Load(src.client()):
        et = engines([src.url], dst.url)
        wait_for(
            lambda: link_of(et).keys_loaded > 1000 and link_of(et).stream_buffer_peak > 0,
            what=f"part of the snapshot loaded ({et.status().as_dict()})",
        )
        src.client().execute_command("CLIENT", "KILL", "ADDR", replica_clients(src)["main-channel"])
        et.wait_phase("in-sync")
        wait_for(
            lambda: link_of(et).partial_syncs == 1,
            what=f"a partial resync ({et.status().as_dict()})",
        )
        time.sleep(0.3)
    in_sync_and_caught_up(et, src)
    link = link_of(et)
    assert (link.full_syncs, link.partial_syncs) == (1, 1)
    assert_same_data([src.client()], [dst.client()])
    assert_log_exactly_once(src, dst)


@pytest.mark.integration
def test_a_source_that_cannot_continue_offers_dual_channel_for_the_new_load(
    servers: Servers, engines: Engines
) -> None:
    """A PSYNC from a saved position the source's backlog no longer holds is answered
    +DUALCHANNELSYNC: that connection is kept through the flush and the load goes over dual
    channel (the classic handshake's +FULLRESYNC offer, link.py)."""
    src = servers(binary=VALKEY_SERVER, args=[*DUAL, "--repl-backlog-size", "16384"])
    populate(src.client(), 3000)
    dst = servers(binary=VALKEY_SERVER)
    et = engines([src.url], dst.url)
    in_sync_and_caught_up(et, src)
    et.stop()
    for i in range(200):
        src.client().set(f"big:{i}", b"x" * 1000)  # 200 kB: past the 16 kB backlog
    again = engines([src.url], dst.url)
    with Load(src.client()):
        again.wait_phase("in-sync")
        time.sleep(0.3)
    in_sync_and_caught_up(again, src)
    link = link_of(again)
    assert (link.full_sync_channel, link.full_syncs, link.partial_syncs) == ("dual-channel", 1, 0)
    assert any("cannot continue" in m for m in messages(again, EventKind.FULL_SYNC_STARTED))
    assert_same_data([src.client()], [dst.client()])
    assert_log_exactly_once(src, dst)


@pytest.mark.integration
def test_dual_channel_over_tls(servers: Servers, engines: Engines, pki: dict[str, str]) -> None:  # noqa: F811
    """Both connections over TLS with our client certificate (the Valkey binary here is built
    without TLS: a TLS endpoint that requires client certificates stands in front of it)."""
    src = servers(binary=VALKEY_SERVER, args=DUAL)
    populate(src.client(), 3000)
    dst = servers(binary=VALKEY_SERVER)
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=pki["ca"])
    served.load_cert_chain(pki["server_crt"], pki["server_key"])
    served.verify_mode = ssl.CERT_REQUIRED
    tls = TlsOptions(cert=pki["crt"], key=pki["key"], ca=pki["ca"])
    with TcpProxy(src.port, tls=served) as proxy, Load(src.client()):
        url = f"rediss://127.0.0.1:{proxy.port}"
        et = engines([SourceConfig(url, tls)], DestinationConfig(dst.url))
        et.wait_phase("in-sync")
        time.sleep(0.3)
        in_sync_and_caught_up(et, src)
        assert proxy.connections_total >= 3  # the lag sampler, the main and the rdb connection
    assert link_of(et).full_sync_channel == "dual-channel"
    assert_same_data([src.client()], [dst.client()])
    assert_log_exactly_once(src, dst)


@pytest.mark.integration
def test_stream_spills_to_the_work_dir_past_a_tiny_memory_bound(
    servers: Servers, engines: Engines, tmp_path: Path
) -> None:
    src = dual_source(servers, keys=20000, delay_us=100)
    dst = servers(binary=VALKEY_SERVER)
    with Load(src.client()):
        et = engines([src.url], dst.url, work_dir=str(tmp_path), stream_buffer_memory=4096)
        wait_for(
            lambda: link_of(et).stream_spilled > 0,
            what=f"the stream spilled to disk ({et.status().as_dict()})",
        )
        # The spill file is unlinked at once: nothing in the directory for anyone to read, and
        # nothing left behind whatever happens to the process.
        assert list(tmp_path.iterdir()) == []
        et.wait_phase("in-sync")
        time.sleep(0.3)
    in_sync_and_caught_up(et, src)
    link = link_of(et)
    assert link.full_sync_channel == "dual-channel"
    assert link.stream_spilled > 0
    assert_same_data([src.client()], [dst.client()])
    assert_log_exactly_once(src, dst)


@pytest.mark.integration
@pytest.mark.parametrize(
    ("binary", "args", "dual", "why"),
    [
        ("redis-server", [], True, "does not offer dual-channel"),
        (VALKEY_SERVER, ["--dual-channel-replication-enabled", "no"], True, "does not offer"),
        (VALKEY_SERVER, [*DUAL, "--repl-diskless-sync", "no"], True, "does not offer"),
        (VALKEY_SERVER, DUAL, False, "dual channel is turned off"),
    ],
    ids=["redis7", "valkey-option-off", "valkey-disk-sync", "syncer-option-off"],
)
def test_classic_handshake_when_dual_channel_is_not_offered(
    servers: Servers,
    engines: Engines,
    binary: str,
    args: list[str],
    dual: bool,
    why: str,
) -> None:
    src = servers(binary=binary, args=args)
    populate(src.client(), 3000)
    dst = servers(binary=VALKEY_SERVER)
    with Load(src.client()):
        et = engines([src.url], dst.url, dual_channel=dual)
        et.wait_phase("in-sync")
        time.sleep(0.3)
    in_sync_and_caught_up(et, src)
    link = link_of(et)
    assert (link.full_sync_channel, link.full_syncs) == ("classic", 1)
    started = messages(et, EventKind.FULL_SYNC_STARTED)
    assert len(started) == 1 and "classic handshake" in started[0] and why in started[0]
    assert_same_data([src.client()], [dst.client()])
    assert_log_exactly_once(src, dst)


@pytest.mark.integration
def test_through_the_sync_gateway_the_classic_handshake_runs(
    servers: Servers, engines: Engines
) -> None:
    src = servers(binary=VALKEY_SERVER, args=DUAL, password="source-secret")
    populate(src.client(), 3000)
    dst = servers(binary=VALKEY_SERVER)
    gw = GatewayProcess(range(src.port, src.port + 1)).start()
    try:
        source = SourceConfig(src.url, gateway=GatewayOptions(gw.port, 6))
        et = engines([source], DestinationConfig(dst.url))
        in_sync_and_caught_up(et, src)
    finally:
        gw.stop()
    assert link_of(et).full_sync_channel == "classic"
    started = messages(et, EventKind.FULL_SYNC_STARTED)
    assert len(started) == 1 and "classic handshake: through the sync gateway" in started[0]
    assert_same_data([src.client()], [dst.client()])


@pytest.mark.integration
def test_rdb_connection_refused_falls_back_to_the_classic_handshake(
    servers: Servers, engines: Engines
) -> None:
    """A user that may PSYNC but not SYNC: the source offers dual channel, then refuses the rdb
    connection's SYNC; the link connects again without asking for it."""
    src = servers(binary=VALKEY_SERVER, args=DUAL)
    populate(src.client(), 3000)
    src.client().acl_setuser(
        "repl", enabled=True, passwords=["+replpw"], commands=["+@all", "-sync"], keys=["*"]
    )
    dst = servers(binary=VALKEY_SERVER)
    et = engines([f"redis://repl:replpw@127.0.0.1:{src.port}"], dst.url)
    in_sync_and_caught_up(et, src)
    link = link_of(et)
    assert (link.full_sync_channel, link.full_syncs) == ("classic", 1)
    assert any("rdb connection was refused" in m for m in messages(et, EventKind.RECONNECT))
    started = messages(et, EventKind.FULL_SYNC_STARTED)
    assert len(started) == 1 and "refused the dual-channel sync" in started[0]
    assert_same_data([src.client()], [dst.client()])


# -- the stream buffer and the $ENDOFF line as units ------------------------------------------


def test_stream_buffer_keeps_order_through_memory_and_spill_file(tmp_path: Path) -> None:
    rnd = random.Random(7)
    buf = StreamBuffer(memory_limit=1000, spill_dir=str(tmp_path))
    sent = bytearray()
    got = bytearray()
    for _ in range(3000):
        if rnd.random() < 0.55:
            chunk = rnd.randbytes(rnd.randint(1, 700))
            buf.append(chunk)
            sent += chunk
        else:
            got += buf.pop(rnd.randint(1, 1500))
        assert buf.held == len(sent) - len(got)
    while data := buf.pop():
        got += data
    assert got == sent
    assert buf.spilled > 0 and buf.peak > buf.memory_limit
    assert buf.appended == len(sent)
    assert list(tmp_path.iterdir()) == []  # the spill file has no name
    buf.close()


def test_stream_buffer_is_full_at_its_spill_bound(tmp_path: Path) -> None:
    buf = StreamBuffer(memory_limit=10, spill_limit=100, spill_dir=str(tmp_path))
    buf.append(b"x" * 10)
    assert (buf.full, buf.spilled) == (False, 0)
    buf.append(b"y" * 99)
    assert (buf.full, buf.spilled) == (False, 99)
    buf.append(b"z")
    assert (buf.full, buf.held) == (True, 110)
    assert buf.pop(1000) == b"x" * 10
    assert buf.pop(1000) == b"y" * 99 + b"z"
    assert (buf.full, buf.held) == (False, 0)
    buf.append(b"again")  # drained: memory again
    assert buf.spilled == 100
    assert buf.pop() == b"again"
    buf.close()


def test_parse_endoff() -> None:
    replid = "6cde64ca629852ab1b1e932e8536e64dd32169c2"
    end = parse_endoff(f"$ENDOFF:1234 {replid} 0 17")
    assert end is not None
    assert (end.offset, end.replid, end.db, end.client_id) == (1234, replid, 0, 17)
    assert parse_endoff("$EOF:" + "a" * 40) is None
    assert parse_endoff(f"$ENDOFF:x {replid} 0 17") is None
    assert parse_endoff("$ENDOFF:1 short 0 17") is None
    assert parse_endoff("-ERR unknown command 'SYNC'") is None
