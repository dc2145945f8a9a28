"""TLS for Replica Of between two clusters over the WAN, the way an operator does it: east's
database serves TLS between databases only and trusts west's syncer certificate (copied from
west's API); west replicates it with encryption and east's proxy certificate (copied from east's
API). The failures an operator meets on the way, each in plain words, and their fixes."""

from __future__ import annotations

import hashlib
import os
import ssl
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from tests.support.compare import assert_same_data
from tests.support.hosts import Bed, Host
from tests.support.load import caught_up, populate
from tests.support.pki import make_certificate
from tests.support.wait import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MB = 1024 * 1024


def certificate(host: Host, kind: str) -> dict[str, Any]:
    certs = host.api.get("/v1/cluster/certificates").expect()["certificates"]
    found: dict[str, Any] = next(c for c in certs if c["name"] == kind)
    return found


def wait_active(host: Host, uid: int) -> dict[str, Any]:
    def settled() -> dict[str, Any] | None:
        body: dict[str, Any] = host.api.get(f"/v1/bdbs/{uid}").expect()
        return None if body["status"] in {"pending", "active-change-pending"} else body

    db = wait_for(settled, what=f"database {uid} on {host.name} to be active")
    assert db["status"] == "active", (db["status_reason"], db)
    return db


def create(host: Host, name: str, **body: Any) -> dict[str, Any]:
    body = {"name": name, "memory_size": 128 * MB, **body}
    uid = host.api.post("/v1/bdbs", body).expect(201)["uid"]
    return wait_active(host, uid)


def source_url(host: Host, db: dict[str, Any]) -> str:
    url: str = host.api.post(f"/v1/bdbs/{db['uid']}/actions/replica_source_url").expect()["uri"]
    return url


def password_of(url: str) -> str:
    return urllib.parse.unquote(urllib.parse.urlsplit(url).password or "")


def bdb(host: Host, db: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = host.api.get(f"/v1/bdbs/{db['uid']}").expect()
    return body


def wait_source(host: Host, db: dict[str, Any], status: str) -> dict[str, Any]:
    return wait_for(
        lambda: (
            (s := bdb(host, db)["replica_sources"][0])["status"] == status
            and bdb(host, db)["replica_sync"] == "enabled"
            and s
        ),
        what=f"{db['name']} on {host.name} {status} (now {bdb(host, db)})",
        timeout=180,
    )


def wait_stopped(host: Host, db: dict[str, Any]) -> dict[str, Any]:
    return wait_for(
        lambda: (b := bdb(host, db))["replica_sync"] == "stopped" and b,
        what=f"{db['name']} on {host.name} stopped (now {bdb(host, db)})",
        timeout=180,
    )


def s_client(client: Host, server: Host, port: int, *args: str) -> str:
    """`openssl s_client` from `client` to `server`:`port` sending PING; its whole transcript."""
    result = client.run(
        [
            "bash",
            "-c",
            f"printf 'PING\\r\\n' | timeout 20 openssl s_client -connect {server.address}:{port} "
            f"-ign_eof {' '.join(args)} 2>&1",
        ],
        check=False,
    )
    return result.stdout


def served_fingerprint(client: Host, server: Host, port: int, cert: Path, key: Path) -> str:
    """The SHA-256 fingerprint of the certificate `server`:`port` presents to `client`."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.load_cert_chain(str(cert), str(key))
    with client.connect(port, server.address) as raw, ctx.wrap_socket(raw) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return hashlib.sha256(der).digest().hex(":").upper()


def test_east_between_databases_only_with_client_auth_replicated_by_west(
    wan: Bed, tmp_path: Path
) -> None:
    east, west = wan.east, wan.west
    wan.link.set(delay_ms=10, rate="50mbit")
    west_syncer = certificate(west, "syncer")["certificate"]
    east_proxy = certificate(east, "proxy")["certificate"]
    a = create(
        east,
        "a",
        authentication_redis_pass="app-a",
        tls_mode="replica_ssl",
        enforce_client_authentication="enabled",
        authentication_ssl_client_certs=[{"client_cert": west_syncer}],
    )
    tls_port = a["tls_port"]
    assert tls_port is not None and tls_port != a["port"]
    b = create(west, "b", authentication_redis_pass="app-b")
    url = source_url(east, a)
    assert url.startswith("rediss://admin:") and url.endswith(f"@{east.address}:{tls_port}")

    # Applications of east keep the plain port.
    app = east.redis(a["port"], password="app-a")
    populate(app, 5000)
    west.api.put(
        f"/v1/bdbs/{b['uid']}",
        {"replica_sources": [{"uri": url, "encryption": True, "server_cert": east_proxy}]},
    ).expect()
    wait_source(west, b, "in-sync")
    populate(app, 500, prefix="more", seed=3)
    dst = west.redis(b["port"], password="app-b")
    caught_up(app, dst)
    src_admin = east.redis(a["port"], username="admin", password=password_of(url))
    b_url = source_url(west, b)
    dst_admin = west.redis(b["port"], username="admin", password=password_of(b_url))
    assert assert_same_data([src_admin], [dst_admin]) == 5500
    # West's syncer is attached to the TLS port, across the WAN.
    replicas = [c for c in src_admin.client_list() if "S" in c["flags"]]
    assert [c["laddr"] for c in replicas] == [f"{east.address}:{tls_port}"]
    assert [c["addr"].rsplit(":", 1)[0] for c in replicas] == [west.address]

    # openssl s_client from west: TLS 1.2 or newer with a trusted certificate; refused without.
    proxy_file, cert_file, key_file = (
        tmp_path / "east-proxy.pem",
        tmp_path / "c.crt",
        tmp_path / "c.key",
    )
    proxy_file.write_text(east_proxy)
    trusted = make_certificate(common_name="operator.west.local")
    cert_file.write_text(trusted.certificate)
    key_file.write_text(trusted.key)
    east.api.put(
        f"/v1/bdbs/{a['uid']}",
        {
            "authentication_ssl_client_certs": [
                {"client_cert": west_syncer},
                {"client_cert": trusted.certificate},
            ]
        },
    ).expect()
    wait_active(east, a["uid"])
    ok = s_client(
        west,
        east,
        tls_port,
        "-CAfile",
        str(proxy_file),
        "-cert",
        str(cert_file),
        "-key",
        str(key_file),
    )
    protocol = next(ln.split(":", 1)[1].strip() for ln in ok.splitlines() if "Protocol" in ln)
    assert protocol in {"TLSv1.2", "TLSv1.3"}, ok
    assert "Verify return code: 0 (ok)" in ok, ok
    assert "NOAUTH" in ok, ok  # Redis answered the PING: a trusted client got through
    bare = s_client(west, east, tls_port, "-CAfile", str(proxy_file))
    assert "certificate required" in bare and "NOAUTH" not in bare, bare
    # Kept with the run's logs (docs/tls-s_client.txt is one of them, for people).
    (Path(os.environ["CONSOLE_VAR_DIR"]) / "tls-s_client.txt").write_text(
        f"# openssl s_client from west ({west.address}) to east's replica_ssl database "
        f"{east.address}:{tls_port} (plain port {a['port']} for applications)\n"
        f"# with a trusted client certificate:\n{ok}\n"
        f"# without a client certificate:\n{bare}\n"
    )
    print(f"\nopenssl s_client against {east.address}:{tls_port}: {protocol}")


def test_tls_failures_across_the_wan_say_what_to_fix(wan: Bed) -> None:
    east, west = wan.east, wan.west
    west_syncer = certificate(west, "syncer")["certificate"]
    east_proxy = certificate(east, "proxy")["certificate"]
    c = create(east, "c", tls_mode="replica_ssl", enforce_client_authentication="enabled")
    d = create(west, "d")
    url = source_url(east, c)
    address = f"{east.address}:{c['tls_port']}"
    populate(east.redis(c["port"], username="admin", password=password_of(url)), 1000)

    # A wrong server certificate: the check refuses it; saved anyway, the sync stops.
    wrong = certificate(west, "proxy")["certificate"]
    source = {"uri": url, "encryption": True, "server_cert": wrong}
    refused = west.api.put(f"/v1/bdbs/{d['uid']}", {"replica_sources": [source]})
    assert refused.status == 400, refused.body
    verify = f"TLS: the certificate of {address} does not match the certificate configured"
    assert verify in refused.body.decode()
    west.api.put(
        f"/v1/bdbs/{d['uid']}", {"replica_sources": [source], "check_connection": False}
    ).expect()
    stopped = wait_stopped(west, d)
    assert stopped["replica_sources"][0]["last_error"].startswith(verify), stopped
    assert stopped["replica_sources"][0]["last_error_kind"] == "tls"

    # The right certificate, but east does not trust west's syncer certificate yet.
    source = {"uri": url, "encryption": True, "server_cert": east_proxy}
    refused = west.api.put(f"/v1/bdbs/{d['uid']}", {"replica_sources": [source]})
    client_auth = (
        f"TLS: {address} refused this cluster's syncer certificate — add it to the source "
        "database's trusted certificates"
    )
    assert refused.status == 400 and client_auth in refused.body.decode(), refused.body
    west.api.put(
        f"/v1/bdbs/{d['uid']}", {"replica_sources": [source], "check_connection": False}
    ).expect()
    stopped = wait_stopped(west, d)
    assert stopped["replica_sources"][0]["last_error"] == client_auth, stopped
    assert stopped["replica_sources"][0]["last_error_kind"] == "tls_client"

    # The fix on east, then Start on west.
    east.api.put(
        f"/v1/bdbs/{c['uid']}", {"authentication_ssl_client_certs": [{"client_cert": west_syncer}]}
    ).expect()
    wait_active(east, c["uid"])
    west.api.put(f"/v1/bdbs/{d['uid']}", {"replica_sync": "enabled"}).expect()
    wait_source(west, d, "in-sync")

    # East regenerates the password: west stops, naming the source by host:port, not its URL.
    east.api.post(f"/v1/bdbs/{c['uid']}/actions/regenerate_admin_password").expect()
    stopped = wait_stopped(west, d)
    error = stopped["replica_sources"][0]["last_error"]
    assert error.startswith(f"{address}: authentication failed"), stopped
    assert "redis" not in error.split(":", 1)[0] and "***" not in error
    assert stopped["replica_sources"][0]["last_error_kind"] == "auth"
    # Edit the source: paste the new URL (same TLS material) -> in sync again.
    new_url = source_url(east, c)
    source = {"uri": new_url, "encryption": True, "server_cert": east_proxy}
    west.api.put(f"/v1/bdbs/{d['uid']}", {"replica_sources": [source]}).expect()
    wait_source(west, d, "in-sync")
    src = east.redis(c["port"], username="admin", password=password_of(new_url))
    src.set("after-edit", "1")
    d_url = source_url(west, d)
    dst = west.redis(d["port"], username="admin", password=password_of(d_url))
    wait_for(lambda: dst.get("after-edit") == b"1", what="the write after the edit on west")
    assert assert_same_data([src], [dst]) == 1001


def test_replacing_east_proxy_certificate_applies_to_its_tls_port_without_restart(
    wan: Bed, tmp_path: Path
) -> None:
    east, west = wan.east, wan.west
    e = create(east, "e", tls_mode="replica_ssl")
    tls_port = e["tls_port"]
    client = make_certificate(common_name="probe.west.local")
    cert, key = tmp_path / "probe.crt", tmp_path / "probe.key"
    cert.write_text(client.certificate)
    key.write_text(client.key)
    before = certificate(east, "proxy")["fingerprint_sha256"]
    assert served_fingerprint(west, east, tls_port, cert, key) == before
    pid = east.run(["cat", f"{_var(east)}/databases/bdb-{e['uid']}/shard-0/redis.pid"]).stdout

    other = make_certificate(common_name="proxy.elsewhere")
    refused = east.api.put(
        "/v1/cluster/certificates",
        {"name": "proxy", "certificate": other.certificate, "key": client.key},
    )
    assert refused.status == 400 and b"does not match" in refused.body, refused.body
    assert certificate(east, "proxy")["fingerprint_sha256"] == before
    assert served_fingerprint(west, east, tls_port, cert, key) == before

    new = make_certificate(common_name="proxy.east.local")
    east.api.put(
        "/v1/cluster/certificates",
        {"name": "proxy", "certificate": new.certificate, "key": new.key},
    ).expect()
    after = certificate(east, "proxy")["fingerprint_sha256"]
    assert after != before
    wait_for(
        lambda: served_fingerprint(west, east, tls_port, cert, key) == after,
        what="east's TLS port to serve the new proxy certificate",
    )
    assert (
        east.run(["cat", f"{_var(east)}/databases/bdb-{e['uid']}/shard-0/redis.pid"]).stdout == pid
    )


def _var(host: Host) -> Path:
    assert host.console is not None
    return host.console.var_dir
