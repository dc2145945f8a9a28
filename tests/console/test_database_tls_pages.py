"""The TLS section of Create and Edit database, the Connect hint, and the Security page's
warnings (rows only: no worker runs; what the processes do is tests/console/test_database_tls.py
and tests/wan/test_tls.py)."""

from __future__ import annotations

import datetime as dt

from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from console.models import Certificate, Database
from tests.support.pages import activate, create_data
from tests.support.pki import make_certificate


def test_create_with_tls_between_databases_only_pasted_and_uploaded_certificates(
    admin_client: Client,
) -> None:
    pasted, uploaded = (
        make_certificate(common_name="a.test"),
        make_certificate(common_name="b.test"),
    )
    page = admin_client.get(reverse("database-create")).content.decode()
    assert "Between databases only" in page and "Enforce client authentication" in page
    assert "+ Add certificate" in page
    response = admin_client.post(
        reverse("database-create"),
        {
            **create_data(tls_mode="replica_ssl", enforce_client_authentication="on"),
            "client_cert": [pasted.certificate.replace("\n", "\r\n"), ""],
            "client_cert_file": SimpleUploadedFile("b.pem", uploaded.certificate.encode()),
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    db = Database.objects.get(name="cache-1")
    assert (db.tls_mode, db.enforce_client_authentication) == ("replica_ssl", True)
    assert db.tls_port is not None and db.tls_port != db.port
    assert db.client_certificates == "\n".join(
        (pasted.certificate.strip(), uploaded.certificate.strip())
    )

    activate(db)
    detail = admin_client.get(reverse("database-detail", kwargs={"uid": db.pk})).content.decode()
    assert f"-p {db.tls_port} --tls --cacert proxy-certificate.pem --cert client.crt" in detail
    assert f"-h 127.0.0.1 -p {db.port}</code>" in detail  # applications: plain
    edit = admin_client.get(reverse("database-edit", kwargs={"uid": db.pk})).content.decode()
    assert pasted.certificate.strip().splitlines()[1] in edit
    assert uploaded.certificate.strip().splitlines()[1] in edit


def test_a_bad_trusted_certificate_is_a_field_error_and_nothing_is_created(
    admin_client: Client,
) -> None:
    response = admin_client.post(
        reverse("database-create"),
        {
            **create_data(tls_mode="replica_ssl", enforce_client_authentication="on"),
            "client_cert": ["-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----"],
        },
    )
    assert response.status_code == 200
    assert "Trusted certificate 1:" in response.content.decode()
    assert not Database.objects.filter(name="cache-1").exists()
    response = admin_client.post(
        reverse("database-create"),
        create_data(tls_mode="replica_ssl", shards_count=2),
    )
    assert "for databases of one shard" in response.content.decode()
    assert not Database.objects.filter(name="cache-1").exists()


def test_edit_turns_tls_between_databases_only_on_and_replaces_the_trusted_list(
    admin_client: Client, pair: tuple[Database, Database]
) -> None:
    a, _ = pair
    cert = make_certificate(common_name="west.syncer")
    response = admin_client.post(
        reverse("database-edit", kwargs={"uid": a.pk}),
        {
            "memory_mb": 100,
            "sources": "[]",
            "tls_mode": "replica_ssl",
            "enforce_client_authentication": "on",
            "client_cert": [cert.certificate],
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    a.refresh_from_db()
    assert (a.tls_mode, a.enforce_client_authentication) == ("replica_ssl", True)
    assert a.tls_port is not None and a.client_certificates == cert.certificate.strip()
    activate(a)  # the node applied it
    # To "all connections" is refused on edit, with the reason next to the field.
    response = admin_client.post(
        reverse("database-edit", kwargs={"uid": a.pk}),
        {"memory_mb": 100, "sources": "[]", "tls_mode": "enabled"},
    )
    assert "chosen when the database is created" in response.content.decode()
    a.refresh_from_db()
    assert a.tls_mode == "replica_ssl"


def test_security_page_warns_before_expiry_and_names_what_serves_the_proxy_certificate(
    admin_client: Client, pair: tuple[Database, Database]
) -> None:
    a, _ = pair
    Database.objects.filter(pk=a.pk).update(tls_mode="enabled")
    page = admin_client.get(reverse("cluster-security")).content.decode()
    assert "data-expiry-warning" not in page
    assert "Served by the TLS endpoints of" in page and ">a</a>" in page
    Certificate.objects.filter(kind="syncer").update(
        not_after=timezone.now() + dt.timedelta(days=10)
    )
    page = admin_client.get(reverse("cluster-security")).content.decode()
    assert page.count("data-expiry-warning") == 1 and "Expires in 1" in page
    replace = admin_client.get(reverse("certificate-replace", kwargs={"kind": "proxy"}))
    text = replace.content.decode()
    assert "will stop trusting them" in text and "<strong>a</strong>" in text
