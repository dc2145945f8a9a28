"""Nodes, cluster and certificate pages."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from console import certificates
from console.models import Database


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
    from console.models import Certificate
    from tests.support.pki import make_certificate

    expired = make_certificate(valid_from_days=-30, valid_until_days=-1)
    before = Certificate.objects.get(kind="proxy").fingerprint_sha256
    response = admin_client.post(
        reverse("certificate-replace", kwargs={"kind": "proxy"}),
        {"certificate_pem": expired.certificate, "private_key_pem": expired.key},
    )
    assert response.status_code == 200
    assert "the certificate expired on" in response.context["form"].errors["certificate_pem"][0]
    assert Certificate.objects.get(kind="proxy").fingerprint_sha256 == before
