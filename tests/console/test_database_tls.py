"""TLS of the databases the cluster runs, through the REST API with a real worker and real
redis-servers: TLS between databases only (`replica_ssl`: the plain port for applications and a
TLS port for Replica Of), client authentication against the trusted list, and live changes of
the list and of the cluster's certificates (no restart: the process id stays)."""

from __future__ import annotations

import hashlib
import socket
import ssl
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings

from console.models import Certificate, Database
from tests.support.compare import assert_same_data
from tests.support.databases import create_active, database_status, tls_replica_pair
from tests.support.pki import Pem, make_certificate
from tests.support.wait import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MB = 1024 * 1024


def pid_of(db: Database) -> int:
    return int((settings.DATA_DIR / f"bdb-{db.pk}" / "shard-0" / "redis.pid").read_text())


def files(tmp_path: Path, name: str, pem: Pem) -> tuple[str, str]:
    cert, key = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    cert.write_text(pem.certificate)
    key.write_text(pem.key)
    return str(cert), str(key)


def tls_admin(db: Database, client: tuple[str, str] | None) -> redis.Redis:
    """A TLS client of the database's TLS port as `admin`, trusting the proxy certificate."""
    db.refresh_from_db()
    assert db.tls_port is not None
    extra: dict[str, Any] = {}
    if client is not None:
        extra = {"ssl_certfile": client[0], "ssl_keyfile": client[1]}
    return redis.Redis(
        port=db.tls_port,
        username="admin",
        password=db.internal_password,
        ssl=True,
        ssl_ca_data=Certificate.objects.get(kind="proxy").certificate_pem,
        ssl_check_hostname=False,
        socket_timeout=5,
        **extra,
    )


def served_fingerprint(port: int, client: tuple[str, str]) -> str:
    """The SHA-256 fingerprint of the certificate a TLS port serves (in the console's format)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.load_cert_chain(*client)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return hashlib.sha256(der).digest().hex(":").upper()


def put_and_wait(api: Any, db: Database, body: dict[str, Any]) -> dict[str, Any]:
    resp = api.put(f"/v1/bdbs/{db.pk}", body, format="json")
    assert resp.status_code == 200, resp.content
    wait_for(lambda: database_status(db.pk) == "active", what=f"{db.name} to apply the change")
    answer: dict[str, Any] = api.get(f"/v1/bdbs/{db.pk}").json()
    return answer


def replace_proxy(api: Any, certificate: str, key: str) -> Any:
    body = {"name": "proxy", "certificate": certificate, "key": key}
    return api.put("/v1/cluster/certificates", body, format="json")


def refused(client: redis.Redis) -> bool:
    try:
        client.ping()
    except (redis.ConnectionError, ssl.SSLError, OSError):
        return True
    finally:
        client.close()
    return False


def test_between_databases_only_keeps_the_plain_port_and_adds_a_tls_port_with_client_auth(
    admin_api: Any, live_worker: Any, tmp_path: Path
) -> None:
    west = make_certificate(common_name="syncer.west.local")
    other = make_certificate(common_name="syncer.south.local")
    west_files, other_files = files(tmp_path, "west", west), files(tmp_path, "other", other)
    a = create_active(
        admin_api,
        name="a",
        tls_mode="replica_ssl",
        enforce_client_authentication="enabled",
        authentication_ssl_client_certs=[{"client_cert": west.certificate}],
        authentication_redis_pass="app-pw",
    )
    assert a.tls_port is not None and a.tls_port != a.port
    assert settings.DB_PORT_MIN <= a.tls_port <= settings.DB_PORT_MAX
    body = admin_api.get(f"/v1/bdbs/{a.pk}").json()
    assert (body["tls_mode"], body["tls_port"]) == ("replica_ssl", a.tls_port)
    assert [c["client_cert"].strip() for c in body["authentication_ssl_client_certs"]] == [
        west.certificate.strip()
    ]
    # Applications: the plain port, as before.
    assert redis.Redis(port=a.port, password="app-pw", socket_timeout=5).ping()
    # Replica Of: the TLS port, with a trusted client certificate only.
    assert tls_admin(a, west_files).ping()
    assert refused(tls_admin(a, None))
    assert refused(tls_admin(a, other_files))
    url = admin_api.post(f"/v1/bdbs/{a.pk}/actions/replica_source_url").json()["uri"]
    assert url.startswith("rediss://admin:") and url.endswith(f"@127.0.0.1:{a.tls_port}")

    # The trusted list changes without a restart.
    pid = pid_of(a)
    put_and_wait(
        admin_api, a, {"authentication_ssl_client_certs": [{"client_cert": other.certificate}]}
    )
    assert tls_admin(a, other_files).ping()
    assert refused(tls_admin(a, west_files))
    assert pid_of(a) == pid

    # A proxy certificate whose key does not match is refused and changes nothing.
    tls_port = a.tls_port
    old = Certificate.objects.get(kind="proxy").fingerprint_sha256
    assert served_fingerprint(tls_port, other_files) == old
    stranger = make_certificate(common_name="proxy.elsewhere")
    resp = replace_proxy(admin_api, stranger.certificate, west.key)
    assert resp.status_code == 400 and "key" in resp.json(), resp.content
    assert Certificate.objects.get(kind="proxy").fingerprint_sha256 == old
    assert served_fingerprint(tls_port, other_files) == old
    # A valid one is what the TLS port serves at once, by the same process.
    new = make_certificate(common_name="proxy.east.local")
    resp = replace_proxy(admin_api, new.certificate, new.key)
    assert resp.status_code == 200, resp.content
    fingerprint = Certificate.objects.get(kind="proxy").fingerprint_sha256
    assert fingerprint != old
    wait_for(
        lambda: served_fingerprint(tls_port, other_files) == fingerprint,
        what="the TLS port to serve the new proxy certificate",
    )
    assert pid_of(a) == pid
    assert redis.Redis(port=a.port, password="app-pw", socket_timeout=5).ping()

    # TLS between databases only goes off live: the TLS port closes, the plain one stays.
    body = put_and_wait(
        admin_api, a, {"tls_mode": "disabled", "enforce_client_authentication": "disabled"}
    )
    assert (body["tls_mode"], body["tls_port"]) == ("disabled", None)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", tls_port), timeout=2).close()
    assert redis.Redis(port=a.port, password="app-pw", socket_timeout=5).ping()
    assert pid_of(a) == pid


def test_between_databases_only_refusals(admin_api: Any, live_worker: Any) -> None:
    resp = admin_api.post(
        "/v1/bdbs",
        {"name": "x", "memory_size": 8 * MB, "tls_mode": "replica_ssl", "shards_count": 2},
        format="json",
    )
    assert resp.status_code == 400 and "tls_mode" in resp.json()
    a = create_active(admin_api, name="a", tls_mode="enabled")
    resp = admin_api.put(f"/v1/bdbs/{a.pk}", {"tls_mode": "replica_ssl"}, format="json")
    assert resp.status_code == 400 and "tls_mode" in resp.json()
    resp = admin_api.put(
        f"/v1/bdbs/{a.pk}",
        {"authentication_ssl_client_certs": [{"client_cert": "not a certificate"}]},
        format="json",
    )
    assert resp.status_code == 400, resp.content
    a.refresh_from_db()
    assert (a.tls_mode, a.client_certificates) == ("enabled", "")


def test_a_destination_replicates_a_between_databases_only_source_over_its_tls_port(
    admin_api: Any, live_worker: Any
) -> None:
    a, b, src = tls_replica_pair(admin_api, keys=3000)
    b.refresh_from_db()
    dst = redis.Redis(port=b.port, username="admin", password=b.internal_password)
    src.set("last", "1")
    wait_for(lambda: dst.get("last") == b"1", what="the last write on b")
    assert assert_same_data([src], [dst]) == 3001
    # The syncer is attached to the TLS port, not to the applications' one.
    replicas = [c for c in src.client_list() if "S" in c["flags"]]
    assert [int(c["laddr"].rsplit(":", 1)[1]) for c in replicas] == [a.tls_port]


def test_a_tls_only_database_takes_a_replaced_proxy_certificate_without_a_restart(
    admin_api: Any, live_worker: Any, tmp_path: Path
) -> None:
    """The console manages a TLS-only database over TLS: it must still reach the process that
    serves the old certificate while the new one is being applied."""
    a = create_active(admin_api, name="a", tls_mode="enabled")
    client = files(tmp_path, "client", make_certificate(common_name="client.test"))
    pid = pid_of(a)
    new = make_certificate(common_name="proxy.next.local")
    resp = replace_proxy(admin_api, new.certificate, new.key)
    assert resp.status_code == 200, resp.content
    wait_for(
        lambda: database_status(a.pk) not in {"active-change-pending", "pending"},
        what="a to apply the new certificate",
    )
    a.refresh_from_db()
    assert (a.status, a.status_reason) == ("active", "")
    fingerprint = Certificate.objects.get(kind="proxy").fingerprint_sha256
    assert served_fingerprint(a.port, client) == fingerprint
    assert pid_of(a) == pid
