"""Compressed links through the sync gateway, on one host: a real gateway process, real servers,
the syncer's command line (and its engine, for the counters)."""

from __future__ import annotations

import os
import socket
import ssl
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from replication.syncer.checkpoint import BOOKKEEPING_PREFIX
from replication.syncer.engine import DestinationConfig, SourceConfig
from replication.syncer.gateway import GatewayOptions, Hello
from replication.syncer.rdb import RdbKey, RdbParser
from replication.syncer.rdbrewrite import inflate_lzf_strings
from replication.syncer.resp import TlsOptions, pack
from tests.support.gateway import GatewayProcess
from tests.support.load import Load, caught_up, populate, populate_documents
from tests.support.oracle import Recovery, assert_exact, sync_stats
from tests.support.pki import make_certificate
from tests.support.proxy import TcpProxy
from tests.support.servers import RedisServer, free_port
from tests.support.wait import wait_for

from .conftest import Cli, EngineThread, in_sync_and_caught_up

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PASSWORD = "source-secret"


def user_keys(server: RedisServer) -> list[bytes]:
    """The keys of `server` other than the syncer's bookkeeping."""
    keys = server.client().scan_iter()
    return [k for k in keys if isinstance(k, bytes) and not k.startswith(BOOKKEEPING_PREFIX)]


@pytest.fixture
def gateways() -> Iterator[Callable[[RedisServer], GatewayProcess]]:
    started: list[GatewayProcess] = []

    def make(source: RedisServer) -> GatewayProcess:
        gw = GatewayProcess(range(source.port, source.port + 1))
        started.append(gw)
        return gw.start()

    yield make
    for gw in started:
        gw.stop()


def test_a_compressed_link_replicates_under_load_and_resumes_by_partial_sync_after_a_cut(
    servers: Callable[..., RedisServer],
    cli: Callable[..., Cli],
    gateways: Callable[[RedisServer], GatewayProcess],
) -> None:
    src, dst = servers(password=PASSWORD), servers()
    populate(src.client(), 3000)
    populate_documents(src.client(), 3000)
    gw = gateways(src)
    with TcpProxy(gw.port) as proxy:
        proc = cli(
            src.url,
            "--to",
            dst.url,
            "--compression",
            "6",
            "--gateway-port",
            str(proxy.port),
            "--quiet",
        )
        s, d = src.client(), dst.client()
        caught_up(s, d, "first")
        assert proxy.connections_total == 1  # the replication link came through the gateway
        with Load(s):
            wait_for(lambda: int(d.get("counter") or 0) > 200, what="the load arriving")
            with Recovery(s) as recovery:
                before = int(d.get("counter") or 0)
                assert proxy.cut() >= 1
                wait_for(
                    lambda: proxy.connections_total >= 2 and int(d.get("counter") or 0) > before,
                    what="the syncer reconnected through the gateway and applying again",
                )
        caught_up(s, d, "after")
        assert recovery.partial == 1 and recovery.full == 0, recovery.__dict__
        assert assert_exact([s], [d], loads=[(s, "")]) > 6000
        assert "partial_resync" in proc.output()
        assert "source-secret" not in proc.output() + gw.output()
        assert proc.stop() == 0


@pytest.mark.parametrize(
    ("rdbcompression", "diskless"),
    [("yes", "yes"), ("yes", "no"), ("no", "yes")],
    ids=["lzf-diskless", "lzf-disk", "raw-diskless"],
)
def test_the_wire_carries_under_a_third_of_the_bytes_of_a_text_workload(
    servers: Callable[..., RedisServer],
    engines: Callable[..., EngineThread],
    gateways: Callable[[RedisServer], GatewayProcess],
    rdbcompression: str,
    diskless: str,
) -> None:
    """The gateway rewrites the snapshot with the source's LZF strings raw (rdbrewrite.py): with
    `rdbcompression yes`, the default, zlib sees text instead of LZF output. Diskless: the
    source sends `$EOF:<mark>`; disk-based: `$<length>` (the gateway sends both EOF-marked)."""
    args = ["--rdbcompression", rdbcompression, "--repl-diskless-sync", diskless]
    src = servers(password=PASSWORD, args=args)
    dst = servers()
    populate_documents(src.client(), 5000)
    src.client().save()
    rdb_file = (src.dir / "dump.rdb").stat().st_size  # what the database itself would send
    gw = gateways(src)
    et = engines(
        [SourceConfig(src.url, gateway=GatewayOptions(gw.port, 6))], DestinationConfig(dst.url)
    )
    in_sync_and_caught_up(et, src)
    full = et.status().as_dict()
    populate_documents(src.client(), 2000, prefix="streamed", seed=7)  # the command stream too
    in_sync_and_caught_up(et, src)
    st = et.status().as_dict()
    wire, inflated = st["ingress_bytes"], st["ingress_bytes_decompressed"]
    print(
        f"\n5,000 documents, rdbcompression {rdbcompression}, diskless {diskless}: RDB file "
        f"{rdb_file} bytes, full "
        f"sync {full['ingress_bytes']} bytes on the wire, {full['ingress_bytes_decompressed']} "
        f"inflated; with 2,000 streamed: {wire} on the wire, {inflated} inflated "
        f"({inflated / wire:.2f}x)"
    )
    assert full["ingress_bytes"] * 3 < full["ingress_bytes_decompressed"], full
    assert full["ingress_bytes"] * 3 < rdb_file  # a third of the snapshot as the source sends it
    assert wire * 3 < inflated, st
    assert full["ingress_bytes_decompressed"] > 5000 * 900  # the documents raw, LZF undone
    assert assert_exact([src.client()], [dst.client()]) == 7000


def test_without_a_gateway_the_source_stops_with_a_clear_error_and_sends_nothing(
    servers: Callable[..., RedisServer], cli: Callable[..., Cli]
) -> None:
    src, dst = servers(password=PASSWORD), servers()
    populate(src.client(), 100)
    nothing = free_port()
    proc = cli(src.url, "--to", dst.url, "--compression", "6", "--gateway-port", str(nothing))
    wait_for(lambda: proc.proc.poll() is not None, what="the syncer to stop")
    out = proc.output()
    assert proc.proc.returncode == 1, out
    assert f"compression is on, but no sync gateway answers at 127.0.0.1:{nothing}" in out
    assert "nothing is ever sent uncompressed" in out
    assert sync_stats(src.client()).full == 0  # it never fell back to the database's port
    assert user_keys(dst) == []


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("password", "authentication failed: WRONGPASS"),
        ("port", "is not a database port here"),
        ("not a gateway", "is not a sync gateway"),
    ],
)
def test_the_gateway_refuses_in_plain_words(
    servers: Callable[..., RedisServer],
    cli: Callable[..., Cli],
    gateways: Callable[[RedisServer], GatewayProcess],
    case: str,
    expected: str,
) -> None:
    src, dst = servers(password=PASSWORD), servers()
    other = servers(password=PASSWORD)  # a server the gateway does not serve
    gw = gateways(src)
    url, gw_port = src.url, gw.port
    if case == "password":
        url = url.replace(PASSWORD, "wrong")
    elif case == "port":
        url = other.url
    else:
        gw_port = other.port  # a Redis where the gateway should be
    proc = cli(url, "--to", dst.url, "--compression", "6", "--gateway-port", str(gw_port))
    wait_for(lambda: proc.proc.poll() is not None, what="the syncer to stop")
    out = proc.output()
    assert proc.proc.returncode == 1, out
    assert expected in out
    assert user_keys(dst) == []


def test_tls_and_compression_through_a_gateway_with_the_proxy_certificate(
    servers: Callable[..., RedisServer],
    engines: Callable[..., EngineThread],
    tmp_path: Path,
) -> None:
    """rediss:// with compression: TLS to the gateway (which presents the proxy certificate on
    the same port as plain syncers get), TLS from the gateway to the database's TLS port."""
    pem = make_certificate(common_name="localhost")
    crt, key = tmp_path / "proxy.crt", tmp_path / "proxy.key"
    crt.write_text(pem.certificate)
    key.write_text(pem.key)
    tls_port = free_port()
    args = ["--tls-port", str(tls_port), "--tls-cert-file", str(crt), "--tls-key-file", str(key)]
    args += ["--tls-ca-cert-file", str(crt), "--tls-auth-clients", "no"]
    src, dst = servers(password=PASSWORD, args=args), servers()
    populate_documents(src.client(), 2000)
    gw = GatewayProcess(
        range(tls_port, tls_port + 1), tls=(str(crt), str(key)), database_tls_ca=str(crt)
    )
    with gw:
        url = f"rediss://:{PASSWORD}@127.0.0.1:{tls_port}"
        source = SourceConfig(url, TlsOptions(ca=str(crt)), gateway=GatewayOptions(gw.port, 6))
        et = engines([source], DestinationConfig(dst.url))
        in_sync_and_caught_up(et, src)
        populate_documents(src.client(), 500, prefix="streamed", seed=3)
        in_sync_and_caught_up(et, src)
        assert assert_exact([src.client()], [dst.client()]) == 2500
        assert f"(TLS): database port {tls_port}, zlib 6" in gw.output()
        st = et.status().as_dict()
        assert st["ingress_bytes"] * 2 < st["ingress_bytes_decompressed"], st
        # A plain syncer still gets the same port without TLS (and a refusal here: this
        # gateway serves only the TLS port, which plain TCP cannot speak to).
        plain = SourceConfig(src.url, gateway=GatewayOptions(gw.port, 6))
        other = servers()
        refused = engines([plain], DestinationConfig(other.url))
        error = refused.wait_done()
        assert error is not None and "is not a database port here" in str(error)


# Socket timeouts here only keep a broken run from hanging (as tests/support/wait.py's deadline).


def hello_reply(port: int, hello: Hello, *, tls: ssl.SSLContext | None = None) -> bytes:
    """The gateway's answer to `hello` on a new connection (TLS when `tls`)."""
    with socket.create_connection(("127.0.0.1", port), timeout=120) as raw:
        conn = raw if tls is None else tls.wrap_socket(raw)
        conn.sendall(hello.pack())
        line = b""
        while not line.endswith(b"\n"):
            data = conn.recv(1)
            if not data:
                break
            line += data
        return line


def test_a_flood_meets_the_session_limit_and_a_syncer_gets_in_once_a_session_ends(
    servers: Callable[..., RedisServer], engines: Callable[..., EngineThread]
) -> None:
    src, dst = servers(password=PASSWORD), servers()
    populate_documents(src.client(), 500)
    with GatewayProcess(range(src.port, src.port + 1), max_sessions=2) as gw:
        hello = Hello(src.port, 6, "", PASSWORD)
        idle: list[socket.socket] = []  # two sessions served, relaying, sending nothing

        def one_more() -> bool:
            conn = socket.create_connection(("127.0.0.1", gw.port), timeout=120)
            conn.sendall(hello.pack())
            if conn.recv(100) == b"+OK zlib 6\r\n":
                idle.append(conn)
            else:  # refused while the start's port probe still counted as a session
                conn.close()
            return len(idle) == 2

        try:
            wait_for(one_more, what="two sessions served")
            for _ in range(5):  # a flood: each refused, none served
                reply = hello_reply(gw.port, hello)
                assert reply.startswith(b"-UNAVAILABLE the sync gateway serves 2 sessions"), reply
            et = engines(
                [SourceConfig(src.url, gateway=GatewayOptions(gw.port, 6))],
                DestinationConfig(dst.url),
            )
            wait_for(
                lambda: "its limit; retry later" in (et.status().as_dict()["last_error"] or ""),
                what="the syncer told to retry later",
            )
            assert user_keys(dst) == []
        finally:
            for conn in idle:
                conn.close()
        in_sync_and_caught_up(et, src)  # retried with backoff, in once the idle ones were gone
        assert assert_exact([src.client()], [dst.client()]) == 500
        assert hello_reply(gw.port, Hello(src.port, 6, "", "wrong")).startswith(b"-WRONGPASS")


def test_a_replaced_proxy_certificate_reaches_new_sessions_without_a_restart(
    servers: Callable[..., RedisServer], tmp_path: Path
) -> None:
    src = servers(password=PASSWORD)
    crt, key = tmp_path / "proxy.crt", tmp_path / "proxy.key"
    first = make_certificate(common_name="localhost")
    crt.write_text(first.certificate)
    key.write_text(first.key)
    client = ssl.create_default_context()
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE

    def served() -> bytes:
        with (
            socket.create_connection(("127.0.0.1", gw.port), timeout=120) as raw,
            client.wrap_socket(raw) as conn,
        ):
            der = conn.getpeercert(binary_form=True)
            assert der is not None
            return der

    with GatewayProcess(range(src.port, src.port + 1), tls=(str(crt), str(key))) as gw:
        pid = gw.pid
        assert served() == ssl.PEM_cert_to_DER_cert(first.certificate)
        second = make_certificate(common_name="localhost")
        # Replaced as an operator's tooling does: new files renamed over the old ones.
        (tmp_path / "new.key").write_text(second.key)
        (tmp_path / "new.crt").write_text(second.certificate)
        os.replace(tmp_path / "new.key", key)
        os.replace(tmp_path / "new.crt", crt)
        wait_for(
            lambda: served() == ssl.PEM_cert_to_DER_cert(second.certificate),
            what="the gateway presenting the new certificate",
        )
        assert gw.pid == pid and gw.proc is not None and gw.proc.poll() is None
        assert "TLS material reloaded" in gw.output()
        verify = ssl.create_default_context(cadata=second.certificate)
        verify.check_hostname = False
        # The new certificate verifies (this gateway has no TLS material for databases: says so).
        reply = hello_reply(gw.port, Hello(src.port, 6, "", PASSWORD), tls=verify)
        assert reply == b"-GATEWAY no TLS material for this host's databases\r\n"


def snapshot_in(stream: bytes) -> tuple[bytes, bytes] | None:
    """The RDB bulk's header and the RDB after `+FULLRESYNC`, once all of it arrived."""
    at = stream.find(b"+FULLRESYNC")
    if at < 0 or (end := stream.find(b"\r\n", at)) < 0:
        return None
    rest = stream[end + 2 :].lstrip(b"\n")
    if (nl := rest.find(b"\r\n")) < 0:
        return None
    header, body = rest[:nl], rest[nl + 2 :]
    if header.startswith(b"$EOF:"):
        j = body.find(header[5:])
        return (header, body[:j]) if j >= 0 else None
    n = int(header[1:])
    return (header, body[:n]) if len(body) >= n else None


@pytest.mark.parametrize("version", [1, 2])
def test_protocol_1_relays_the_snapshot_unchanged_and_2_rewrites_it(
    servers: Callable[..., RedisServer], version: int
) -> None:
    """A syncer of an older cluster (protocol 1) still gets the database's bytes as they are."""
    src = servers(password=PASSWORD, args=["--repl-diskless-sync", "no"])
    populate_documents(src.client(), 50)
    with (
        GatewayProcess(range(src.port, src.port + 1)) as gw,
        socket.create_connection(("127.0.0.1", gw.port), timeout=120) as conn,
    ):
        conn.sendall(Hello(src.port, 6, "", PASSWORD, version=version).pack())
        assert conn.recv(100) == b"+OK zlib 6\r\n"
        conn.sendall(pack(b"REPLCONF", b"capa", b"eof", b"capa", b"psync2"))
        conn.sendall(pack(b"PSYNC", b"?", b"-1"))
        inflater = zlib.decompressobj()
        stream = b""
        while (got := snapshot_in(stream)) is None:
            data = conn.recv(1 << 16)
            assert data, stream[:200]
            stream += inflater.decompress(data)
            if inflater.eof:  # protocol 2 ends a zlib stream after the RDB
                rest = inflater.unused_data
                inflater = zlib.decompressobj()
                stream += inflater.decompress(rest)
    header, rdb = got
    parser = RdbParser()
    keys = [k for k in parser.feed(rdb) if isinstance(k, RdbKey)]
    assert parser.done and len(keys) == 50
    lzf = sum(inflate_lzf_strings(k.type, k.payload) is not k.payload for k in keys)
    if version == 1:
        assert header[1:].isdigit()  # the database's `$<length>` form
        assert lzf == 50  # its LZF strings as it wrote them
    else:
        assert header.startswith(b"$EOF:")
        assert lzf == 0
