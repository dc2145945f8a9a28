"""Pages: sign-in, roles, the database forms and the read-only pages (Django test client).

Creating a database through a page enqueues its Celery task on commit; with the default
(non-transactional) `django_db` that never runs, so rows stay `pending` and no process starts.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from console import certificates, services
from console.models import AuditEntry, Database, DatabaseStatus, User
from tests.conftest import ADMIN_PASSWORD

MB = 1024 * 1024
DEFAULT_PASSWORD = "default-user-secret-7f3a"


@pytest.fixture
def admin_client(admin_user: User) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


@pytest.fixture
def viewer_client(viewer_user: User) -> Client:
    client = Client()
    client.force_login(viewer_user)
    return client


@pytest.fixture
def remote_addr() -> Iterator[str]:
    """A client address of its own, so that sign-in failures of one test never throttle another."""
    addr = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    yield addr
    cache.delete(f"login-failures:{addr}")


@pytest.fixture
def database(admin_user: User) -> Database:
    return services.database_create(
        actor=admin_user, name="db1", memory_size=100 * MB, password=DEFAULT_PASSWORD
    )


def _activate(database: Database) -> Database:
    # What the node worker does when the processes answer.
    services.database_status_set(database=database, status=DatabaseStatus.ACTIVE)
    return database


def _create_data(**overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "name": "cache-1",
        "memory_mb": 64,
        "shards_count": 1,
        "port": "",
        "password": "",
        "persistence": "disabled",
    }
    data.update(overrides)
    return data


def _occupied_port() -> socket.socket:
    """A listening socket on a port inside the database range (the test closes it)."""
    for port in range(settings.DB_PORT_MAX, settings.DB_PORT_MIN - 1, -1):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            sock.close()
            continue
        sock.listen(1)
        return sock
    raise RuntimeError("no free port in the database range")


# ---------------------------------------------------------------- sign in


@pytest.mark.parametrize(
    "url", ["/", "/databases/", "/databases/new/", "/nodes/", "/cluster/", "/audit/"]
)
def test_anonymous_is_sent_to_sign_in(bootstrapped: None, url: str) -> None:
    response = Client().get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


def test_sign_in_and_out(admin_user: User, remote_addr: str) -> None:
    client = Client(REMOTE_ADDR=remote_addr)
    page = client.get("/login/")
    assert page.status_code == 200
    assert b'name="csrfmiddlewaretoken"' in page.content or b"csrf" in page.content.lower()
    response = client.post(
        "/login/", {"username": "admin", "password": ADMIN_PASSWORD, "next": "/nodes/"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/nodes/"
    home = client.get("/databases/")
    assert home.status_code == 200
    assert b'<span class="user-name">admin</span>' in home.content
    assert b"cluster.local" in home.content

    assert client.get(reverse("logout")).status_code == 405  # sign out is POST only
    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert client.get("/databases/").status_code == 302


def test_sign_in_never_redirects_off_site(admin_user: User, remote_addr: str) -> None:
    client = Client(REMOTE_ADDR=remote_addr)
    response = client.post(
        "/login/",
        {"username": "admin", "password": ADMIN_PASSWORD, "next": "https://evil.example/"},
    )
    assert response.status_code == 302
    assert response["Location"] == "/"


def test_sign_in_with_a_wrong_password_is_refused(admin_user: User, remote_addr: str) -> None:
    client = Client(REMOTE_ADDR=remote_addr)
    response = client.post("/login/", {"username": "admin", "password": "nope"})
    assert response.status_code == 200
    assert b"correct username and password" in response.content
    assert client.get("/databases/").status_code == 302


def test_sign_in_is_throttled_after_repeated_failures(admin_user: User, remote_addr: str) -> None:
    client = Client(REMOTE_ADDR=remote_addr)
    for _ in range(settings.LOGIN_FAILURE_LIMIT):
        assert client.post("/login/", {"username": "admin", "password": "x"}).status_code == 200
    # Even the right password is refused now, before it is checked.
    response = client.post("/login/", {"username": "admin", "password": ADMIN_PASSWORD})
    assert response.status_code == 429
    assert b"Too many failed sign-ins" in response.content
    assert client.get("/databases/").status_code == 302
    # Another address is not affected.
    other = Client(REMOTE_ADDR=remote_addr + "1")
    try:
        response = other.post("/login/", {"username": "admin", "password": ADMIN_PASSWORD})
        assert response.status_code == 302
    finally:
        cache.delete(f"login-failures:{remote_addr}1")


def test_successful_sign_in_resets_the_failure_count(admin_user: User, remote_addr: str) -> None:
    client = Client(REMOTE_ADDR=remote_addr)
    for _ in range(settings.LOGIN_FAILURE_LIMIT - 1):
        client.post("/login/", {"username": "admin", "password": "x"})
    assert (
        client.post("/login/", {"username": "admin", "password": ADMIN_PASSWORD}).status_code == 302
    )
    client.post(reverse("logout"))
    client.post("/login/", {"username": "admin", "password": "x"})
    assert (
        client.post("/login/", {"username": "admin", "password": ADMIN_PASSWORD}).status_code == 302
    )


def test_forms_require_csrf(admin_user: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    response = client.post(reverse("database-create"), _create_data())
    assert response.status_code == 403
    assert not Database.objects.exists()


# ---------------------------------------------------------------- roles


def test_admin_sees_the_create_button(admin_client: Client) -> None:
    response = admin_client.get(reverse("database-list"))
    assert response.status_code == 200
    assert b"Create database" in response.content
    assert reverse("database-create").encode() in response.content


def test_viewer_sees_no_mutating_buttons(viewer_client: Client, database: Database) -> None:
    listing = viewer_client.get(reverse("database-list"))
    assert listing.status_code == 200
    assert b"db1" in listing.content
    assert b"Create database" not in listing.content
    page = viewer_client.get(reverse("database-detail", kwargs={"uid": database.pk}))
    assert page.status_code == 200
    assert reverse("database-edit", kwargs={"uid": database.pk}).encode() not in page.content
    assert reverse("database-delete", kwargs={"uid": database.pk}).encode() not in page.content
    assert b"Viewer" in page.content


def test_viewer_cannot_mutate(viewer_client: Client, database: Database) -> None:
    _activate(database)
    uid = database.pk
    assert viewer_client.get(reverse("database-create")).status_code == 403
    assert viewer_client.post(reverse("database-create"), _create_data()).status_code == 403
    edit = reverse("database-edit", kwargs={"uid": uid})
    assert viewer_client.get(edit).status_code == 403
    assert viewer_client.post(edit, {"memory_mb": 200, "password": "x"}).status_code == 403
    delete = reverse("database-delete", kwargs={"uid": uid})
    assert viewer_client.post(delete).status_code == 403
    database.refresh_from_db()
    assert database.status == DatabaseStatus.ACTIVE
    assert database.memory_size == 100 * MB
    assert Database.objects.count() == 1


# ---------------------------------------------------------------- create


def test_create_form_renders_with_labels(admin_client: Client) -> None:
    response = admin_client.get(reverse("database-create"))
    assert response.status_code == 200
    body = response.content.decode()
    for field in ("name", "memory_mb", "shards_count", "port", "password"):
        assert f'<label for="id_{field}"' in body
    assert "Append-only file (every second)" in body
    assert "csrfmiddlewaretoken" in body


def test_create_makes_a_pending_database(admin_client: Client) -> None:
    response = admin_client.post(
        reverse("database-create"),
        _create_data(shards_count=2, password=DEFAULT_PASSWORD, persistence="aof"),
    )
    database = Database.objects.get(name="cache-1")
    assert response.status_code == 302
    assert response["Location"] == reverse("database-detail", kwargs={"uid": database.pk})
    assert database.status == DatabaseStatus.PENDING
    assert database.memory_size == 64 * MB
    assert database.shards_count == 2
    assert database.persistence == "aof"
    assert database.password == DEFAULT_PASSWORD
    assert database.shards.count() == 2
    assert AuditEntry.objects.filter(action="database.create", object_name="cache-1").exists()

    page = admin_client.get(response["Location"])
    assert b"being created" in page.content
    assert b'http-equiv="refresh"' in page.content
    # The node has not answered yet: no Edit (the service would refuse it), Delete is possible.
    assert reverse("database-edit", kwargs={"uid": database.pk}).encode() not in page.content
    assert reverse("database-delete", kwargs={"uid": database.pk}).encode() in page.content


def test_create_with_a_chosen_free_port(admin_client: Client) -> None:
    sock = _occupied_port()
    port = sock.getsockname()[1]
    sock.close()
    response = admin_client.post(reverse("database-create"), _create_data(port=port))
    assert response.status_code == 302
    assert Database.objects.get(name="cache-1").port == port


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"name": "1-starts-with-digit"}, "name", "must start with a letter"),
        ({"name": "has space"}, "name", "must start with a letter"),
        ({"name": ""}, "name", "This field is required"),
        ({"memory_mb": 0}, "memory_mb", "at least 1 MB"),
        ({"memory_mb": -5}, "memory_mb", "at least 1 MB"),
        ({"memory_mb": 10**9}, "memory_mb", "exceeds the node"),
        ({"memory_mb": "lots"}, "memory_mb", "Enter a whole number"),
        ({"shards_count": 0}, "shards_count", "between 1 and 64"),
        ({"shards_count": 65}, "shards_count", "between 1 and 64"),
        ({"port": 80}, "port", "must be in the range"),
        ({"port": 70000}, "port", "must be in the range"),
        ({"password": "has space"}, "password", "must not contain spaces"),
        ({"persistence": "always"}, "persistence", "Select a valid choice"),
    ],
)
def test_create_refuses_bad_input(
    admin_client: Client, overrides: dict[str, object], field: str, message: str
) -> None:
    response = admin_client.post(reverse("database-create"), _create_data(**overrides))
    assert response.status_code == 200
    form = response.context["form"]
    assert field in form.errors, form.errors
    assert any(message in error for error in form.errors[field]), form.errors
    assert message.encode() in response.content
    assert not Database.objects.exists()


def test_create_refuses_a_duplicate_name(admin_client: Client, database: Database) -> None:
    response = admin_client.post(reverse("database-create"), _create_data(name="db1"))
    assert response.status_code == 200
    assert "already exists" in response.context["form"].errors["name"][0]
    assert Database.objects.count() == 1


def test_create_refuses_a_port_in_use_on_the_host(admin_client: Client) -> None:
    sock = _occupied_port()
    try:
        port = sock.getsockname()[1]
        response = admin_client.post(reverse("database-create"), _create_data(port=port))
    finally:
        sock.close()
    assert response.status_code == 200
    assert "in use" in response.context["form"].errors["port"][0]
    assert not Database.objects.exists()


def test_create_refuses_a_port_of_another_database(
    admin_client: Client, database: Database
) -> None:
    response = admin_client.post(reverse("database-create"), _create_data(port=database.port))
    assert response.status_code == 200
    assert "used by another database" in response.context["form"].errors["port"][0]
    assert Database.objects.count() == 1


# ---------------------------------------------------------------- database page, edit, delete


def test_database_page_shows_configuration_and_no_secrets(
    admin_client: Client, viewer_client: Client, admin_user: User
) -> None:
    database = services.database_create(
        actor=admin_user,
        name="sharded",
        memory_size=256 * MB,
        shards_count=4,
        password=DEFAULT_PASSWORD,
        persistence="snapshot",
    )
    _activate(database)
    url = reverse("database-detail", kwargs={"uid": database.pk})
    for client in (admin_client, viewer_client):
        response = client.get(url)
        assert response.status_code == 200
        body = response.content.decode()
        assert DEFAULT_PASSWORD not in body
        assert database.internal_password not in body
        assert f"127.0.0.1:{database.port}" in body
        assert "256.0\xa0MB" in body
        assert "Snapshot" in body
        assert (
            f"redis-cli -c -h 127.0.0.1 -p {database.port} --user default --pass &lt;password&gt;"
            in body
        )
        assert "0\u20134095" in body and "12288\u201316383" in body
        assert 'http-equiv="refresh"' not in body
    edit = admin_client.get(reverse("database-edit", kwargs={"uid": database.pk}))
    assert DEFAULT_PASSWORD not in edit.content.decode()
    assert database.internal_password not in edit.content.decode()


def test_database_page_shows_the_error_reason(admin_client: Client, database: Database) -> None:
    services.database_status_set(
        database=database, status=DatabaseStatus.ERROR, reason="port 12000 bind: in use"
    )
    response = admin_client.get(reverse("database-detail", kwargs={"uid": database.pk}))
    assert b"port 12000 bind: in use" in response.content
    assert b"status-error" in response.content


def test_unknown_database_is_404(admin_client: Client) -> None:
    assert admin_client.get("/databases/999999/").status_code == 404


def test_edit_memory_and_password(admin_client: Client, database: Database) -> None:
    _activate(database)
    url = reverse("database-edit", kwargs={"uid": database.pk})
    page = admin_client.get(url)
    assert page.status_code == 200
    assert b'value="100"' in page.content
    response = admin_client.post(url, {"memory_mb": 200, "password": "new-secret-pw"})
    assert response.status_code == 302
    database.refresh_from_db()
    assert database.memory_size == 200 * MB
    assert database.password == "new-secret-pw"
    assert database.status == DatabaseStatus.CHANGE_PENDING
    assert AuditEntry.objects.filter(action="database.update").exists()


def test_edit_with_empty_password_keeps_it(admin_client: Client, database: Database) -> None:
    _activate(database)
    url = reverse("database-edit", kwargs={"uid": database.pk})
    response = admin_client.post(url, {"memory_mb": 150, "password": ""})
    assert response.status_code == 302
    database.refresh_from_db()
    assert database.password == DEFAULT_PASSWORD
    assert database.memory_size == 150 * MB


def test_edit_removes_the_password(admin_client: Client, database: Database) -> None:
    _activate(database)
    url = reverse("database-edit", kwargs={"uid": database.pk})
    response = admin_client.post(url, {"memory_mb": 100, "remove_password": "on"})
    assert response.status_code == 302
    database.refresh_from_db()
    assert database.password == ""
    assert database.memory_size == 100 * MB


def test_edit_refuses_bad_input(admin_client: Client, database: Database) -> None:
    _activate(database)
    url = reverse("database-edit", kwargs={"uid": database.pk})
    response = admin_client.post(url, {"memory_mb": 0})
    assert response.status_code == 200
    assert "at least 1 MB" in response.context["form"].errors["memory_mb"][0]
    response = admin_client.post(url, {"memory_mb": 100, "password": "a b"})
    assert "must not contain spaces" in response.context["form"].errors["password"][0]
    response = admin_client.post(url, {"memory_mb": 100, "password": "x", "remove_password": "on"})
    assert "remove_password" in response.context["form"].errors
    database.refresh_from_db()
    assert database.memory_size == 100 * MB
    assert database.password == DEFAULT_PASSWORD
    assert database.status == DatabaseStatus.ACTIVE


def test_edit_while_pending_is_refused_on_the_form(
    admin_client: Client, database: Database
) -> None:
    url = reverse("database-edit", kwargs={"uid": database.pk})
    response = admin_client.post(url, {"memory_mb": 200})
    assert response.status_code == 200
    assert "wait until it is active" in response.content.decode()
    database.refresh_from_db()
    assert database.memory_size == 100 * MB


def test_delete_asks_for_confirmation_then_deletes(
    admin_client: Client, database: Database
) -> None:
    _activate(database)
    url = reverse("database-delete", kwargs={"uid": database.pk})
    confirm = admin_client.get(url)
    assert confirm.status_code == 200
    assert b"Delete db1?" in confirm.content
    database.refresh_from_db()
    assert database.status == DatabaseStatus.ACTIVE  # GET changes nothing
    response = admin_client.post(url)
    assert response.status_code == 302
    assert response["Location"] == reverse("database-list")
    database.refresh_from_db()
    assert database.status == DatabaseStatus.DELETE_PENDING
    page = admin_client.get(reverse("database-detail", kwargs={"uid": database.pk}))
    assert b"being deleted" in page.content
    # A second delete (another tab, a double click) is refused with a message; nothing changes.
    again = admin_client.post(url)
    assert again.status_code == 400 and b"already being deleted" in again.content
    database.refresh_from_db()
    assert database.status == DatabaseStatus.DELETE_PENDING


# ---------------------------------------------------------------- nodes, cluster, audit log


def test_nodes_page(viewer_client: Client, database: Database) -> None:
    response = viewer_client.get(reverse("node-list"))
    assert response.status_code == 200
    body = response.content.decode()
    assert settings.NODE_NAME in body
    assert "127.0.0.1" in body
    assert "100.0\xa0MB" in body


def test_cluster_page_lists_certificates_without_private_keys(viewer_client: Client) -> None:
    from console.models import Certificate

    assert "cluster.local" in viewer_client.get(reverse("cluster")).content.decode()
    response = viewer_client.get(reverse("cluster-security"))
    assert response.status_code == 200
    body = response.content.decode()
    for cert in Certificate.objects.all():
        assert cert.fingerprint_sha256 in body
        assert cert.private_key_pem.strip().splitlines()[1] not in body
    assert "PRIVATE KEY" not in body
    assert "Proxy certificate" in body and "Syncer certificate" in body


def test_viewer_downloads_certificates_but_cannot_replace_them(viewer_client: Client) -> None:
    from console.models import Certificate

    proxy = Certificate.objects.get(kind="proxy")
    page = viewer_client.get(reverse("cluster-security")).content.decode()
    assert "Copy" in page and "Download" in page
    replace = reverse("certificate-replace", kwargs={"kind": "proxy"})
    assert replace not in page
    download = viewer_client.get(reverse("certificate-download", kwargs={"kind": "proxy"}))
    assert download.status_code == 200
    assert download["Content-Disposition"] == 'attachment; filename="proxy-certificate.pem"'
    assert download.content.decode() == proxy.certificate_pem
    assert viewer_client.get(replace).status_code == 403
    info = certificates.generate(common_name="x", fqdn="x.example", client=False)
    response = viewer_client.post(
        replace, {"certificate_pem": info.certificate_pem, "private_key_pem": info.private_key_pem}
    )
    assert response.status_code == 403
    proxy.refresh_from_db()
    assert proxy.fingerprint_sha256 != info.fingerprint_sha256


def test_unknown_certificate_is_404(admin_client: Client) -> None:
    assert admin_client.get("/cluster/security/certificates/nope.pem").status_code == 404
    assert admin_client.get("/cluster/security/certificates/nope/replace/").status_code == 404


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("certificate_pem", "Paste the certificate or upload its file."),
        ("private_key_pem", "Paste the private key or upload its file."),
    ],
)
def test_certificate_replace_needs_both_parts(
    admin_client: Client, field: str, message: str
) -> None:
    from console.models import Certificate

    before = Certificate.objects.get(kind="syncer").fingerprint_sha256
    info = certificates.generate(common_name="x", fqdn="x.example", client=True)
    data = {"certificate_pem": info.certificate_pem, "private_key_pem": info.private_key_pem}
    data[field] = "  "
    url = reverse("certificate-replace", kwargs={"kind": "syncer"})
    response = admin_client.post(url, data)
    assert response.status_code == 200
    assert response.context["form"].errors[field] == [message]
    assert info.private_key_pem.splitlines()[1] not in response.content.decode()
    assert Certificate.objects.get(kind="syncer").fingerprint_sha256 == before


def test_certificate_replace_refuses_an_expired_certificate(admin_client: Client) -> None:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from console.models import Certificate

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=30))
        .not_valid_after(now - dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    before = Certificate.objects.get(kind="proxy").fingerprint_sha256
    response = admin_client.post(
        reverse("certificate-replace", kwargs={"kind": "proxy"}),
        {
            "certificate_pem": cert.public_bytes(serialization.Encoding.PEM).decode(),
            "private_key_pem": key_pem,
        },
    )
    assert response.status_code == 200
    assert "the certificate expired on" in response.context["form"].errors["certificate_pem"][0]
    assert Certificate.objects.get(kind="proxy").fingerprint_sha256 == before


def test_audit_log_lists_and_filters_entries(viewer_client: Client, database: Database) -> None:
    response = viewer_client.get(reverse("audit-log"))
    assert response.status_code == 200
    body = response.content.decode()
    assert "database.create" in body
    assert "cluster.create" in body
    # newest first
    assert body.index("database.create") < body.index("cluster.create")

    filtered = viewer_client.get(reverse("audit-log"), {"action": "database"}).content.decode()
    assert "database.create" in filtered and "cluster.create" not in filtered
    by_type = viewer_client.get(reverse("audit-log"), {"object_type": "node"}).content.decode()
    assert "node.add" in by_type and "database.create" not in by_type
    by_actor = viewer_client.get(reverse("audit-log"), {"actor": "admin"}).content.decode()
    assert "database.create" in by_actor and "node.add" not in by_actor


def test_audit_log_is_paginated(viewer_client: Client, admin_user: User) -> None:
    for i in range(120):
        services.audit_record(actor=admin_user, action=f"test.event{i:03d}", object_type="test")
    first = viewer_client.get(reverse("audit-log"), {"object_type": "test"}).content.decode()
    assert "test.event119" in first and "test.event069" not in first
    assert "Page 1 of 3" in first
    query: dict[str, str | int] = {"object_type": "test", "page": 3}
    third = viewer_client.get(reverse("audit-log"), query).content.decode()
    assert "test.event000" in third and "test.event119" not in third
    # Bad page numbers fall back to a real page instead of failing.
    assert viewer_client.get(reverse("audit-log"), {"page": "zzz"}).status_code == 200


# ---------------------------------------------------------------- Replica Of pages (no worker)


def _edit_data(sources: object, **extra: object) -> dict[str, object]:
    import json

    return {"memory_mb": 100, "sources": json.dumps(sources), **extra}


@pytest.fixture
def pair(admin_user: User) -> tuple[Database, Database]:
    a = _activate(services.database_create(actor=admin_user, name="a", memory_size=100 * MB))
    b = _activate(services.database_create(actor=admin_user, name="b", memory_size=100 * MB))
    return a, b


@pytest.mark.parametrize(
    ("sources", "message"),
    [
        ("not json", "not valid JSON"),
        ({"keep": 1}, "must be a list"),
        ([{"keep": 7}], "changed meanwhile"),
        ([{"database": "a"}], "not a number"),
        ([{"uri": "http://x:1"}], "use redis:// or rediss://"),
        ([{"uri": ""}], "This field is required"),
    ],
)
def test_edit_refuses_a_malformed_source_list(
    admin_client: Client, pair: tuple[Database, Database], sources: object, message: str
) -> None:
    from replication.models import ReplicaSource

    _, b = pair
    url = reverse("database-edit", kwargs={"uid": b.pk})
    raw = sources if isinstance(sources, str) else None
    data = _edit_data(sources, confirm_flush="on")
    if raw is not None:
        data["sources"] = raw
    response = admin_client.post(url, data)
    assert response.status_code == 200
    form = response.context["replica_form"]
    # Shape errors belong to the list; a refused row (the service's) is shown under that row.
    errors = [*form.errors.get("sources", []), *(r.get("error", "") for r in form.rows)]
    assert any(message in e for e in errors), errors
    assert form.errors
    assert not ReplicaSource.objects.filter(destination=b).exists()


def test_edit_needs_the_flush_confirmation_and_refuses_a_cycle(
    admin_client: Client, pair: tuple[Database, Database], admin_user: User
) -> None:
    from replication.models import ReplicaSource
    from replication.services import replica_sources_set
    from replication.sources import SourceInput

    a, b = pair
    url = reverse("database-edit", kwargs={"uid": b.pk})
    response = admin_client.post(url, _edit_data([{"database": a.pk, "name": "a"}]))
    assert "flushes b: confirm" in response.context["replica_form"].errors["sources"][0]
    assert not ReplicaSource.objects.filter(destination=b).exists()

    # a copies from b already: b copying from a would close a loop (refused before connecting).
    replica_sources_set(
        actor=admin_user,
        destination=a,
        sources=[SourceInput(source_database_uid=b.pk)],
        check_connection=False,
    )
    response = admin_client.post(
        url, _edit_data([{"database": a.pk, "name": "a"}], confirm_flush="on")
    )
    assert response.status_code == 200
    assert "cycle" in response.context["replica_form"].errors["sources"][0]
    assert not ReplicaSource.objects.filter(destination=b).exists()
    # And the picker of b shows a disabled, with the reason.
    page = admin_client.get(url)
    candidates = {c["name"]: c["reason"] for c in page.context["replica_candidates"]}
    assert "cycle" in candidates["a"] and "itself" in candidates["b"]


def test_edit_of_memory_alone_keeps_the_sources(
    admin_client: Client, pair: tuple[Database, Database], admin_user: User
) -> None:
    from replication.models import ReplicaOf, ReplicaSource
    from replication.services import replica_sources_set
    from replication.sources import SourceInput

    a, b = pair
    replica_sources_set(
        actor=admin_user,
        destination=b,
        sources=[SourceInput(source_database_uid=a.pk)],
        check_connection=False,
    )
    _activate(b)  # what the node does after applying the read-only ACL
    generation = ReplicaOf.objects.get(destination=b).generation
    saved = ReplicaSource.objects.get(destination=b)
    page = admin_client.get(reverse("database-edit", kwargs={"uid": b.pk}))
    assert page.context["replica_rows"] == [
        {"keep": saved.uid, "name": "a", "kind": "internal", "encryption": False, "compression": 0}
    ]
    assert a.internal_password not in page.content.decode()
    response = admin_client.post(
        reverse("database-edit", kwargs={"uid": b.pk}),
        _edit_data([{"keep": saved.uid, "name": "a"}], memory_mb=120),
    )
    assert response.status_code == 302
    b.refresh_from_db()
    assert b.memory_size == 120 * MB
    assert ReplicaOf.objects.get(destination=b).generation == generation  # no flush


def test_source_check_answers_field_errors_as_json(
    admin_client: Client, viewer_client: Client, pair: tuple[Database, Database]
) -> None:
    a, b = pair
    url = reverse("replica-source-check", kwargs={"uid": b.pk})
    assert viewer_client.post(url, {"kind": "internal", "database": a.pk}).status_code == 403
    cases: list[tuple[dict[str, object], str, str]] = [
        ({"kind": "internal", "database": "x"}, "database", "Choose a database"),
        ({"kind": "internal", "database": b.pk}, "database", "source of itself"),
        ({"kind": "external", "uri": ""}, "uri", "required"),
        ({"kind": "external", "uri": "redis://h:99999"}, "uri", "port"),
        ({"kind": "external", "uri": "redis://127.0.0.1:1"}, "uri", "cannot connect"),
    ]
    deleting = _activate(
        services.database_create(
            actor=User.objects.get(username="admin"), name="gone", memory_size=MB
        )
    )
    services.database_status_set(database=deleting, status=DatabaseStatus.DELETE_PENDING)
    cases.append(({"kind": "internal", "database": deleting.pk}, "database", "being deleted"))
    for body, field, message in cases:
        response = admin_client.post(url, body)
        assert response.status_code == 400, body
        errors = response.json()["errors"][field]
        text = errors[0] if isinstance(errors[0], str) else errors[0]["message"]
        assert message in text, (body, text)


def test_sync_actions_refuse_with_a_message(
    admin_client: Client, viewer_client: Client, pair: tuple[Database, Database]
) -> None:
    _, b = pair
    url = reverse("replica-sync", kwargs={"uid": b.pk})
    assert viewer_client.post(url, {"action": "stop"}).status_code == 403
    for action in ("bogus", "restart", "pause", "credentials"):
        response = admin_client.post(url, {"action": action, "source": "x"}, follow=True)
        assert response.status_code == 200
        assert b"Not done:" in response.content, action


def test_source_url_is_for_admins_and_audited(
    admin_client: Client, viewer_client: Client, pair: tuple[Database, Database]
) -> None:
    a, _ = pair
    url = reverse("replica-source-url", kwargs={"uid": a.pk})
    refused = viewer_client.post(url)
    assert refused.status_code == 403 and a.internal_password not in refused.content.decode()
    response = admin_client.post(url)
    assert response.json() == {"url": f"redis://admin:{a.internal_password}@127.0.0.1:{a.port}"}
    assert AuditEntry.objects.filter(action="database.replica_source_url").count() == 1
    assert (
        viewer_client.post(reverse("replica-password-regenerate", kwargs={"uid": a.pk})).status_code
        == 403
    )


def test_edit_with_a_bad_memory_value_keeps_the_new_sources_on_the_page(
    admin_client: Client, pair: tuple[Database, Database]
) -> None:
    from replication.models import ReplicaSource

    a, b = pair
    response = admin_client.post(
        reverse("database-edit", kwargs={"uid": b.pk}),
        _edit_data([{"database": a.pk, "name": "a"}], memory_mb="lots", confirm_flush="on"),
    )
    assert response.status_code == 200
    assert "whole number" in response.context["form"].errors["memory_mb"][0]
    assert response.context["replica_rows"] == [{"database": a.pk, "name": "a", "kind": "internal"}]
    assert not ReplicaSource.objects.filter(destination=b).exists()
