"""Certificates given to the console: exactly one PEM block per field, size-capped, strong keys,
valid now; refused with 400 and the field, and nothing changes. Cluster certificates, trusted
client certificates of a database, and a source's server certificate and server name."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from django.urls import reverse

from console.models import Certificate, Database
from tests.support.pki import make_certificate

GOOD = make_certificate()
OTHER = make_certificate(common_name="other.example")
JUNK = "A" * (1024 * 1024)

BAD_CERTIFICATES = {
    "a megabyte of junk after": (GOOD.certificate + JUNK, "no more than 16384 characters"),
    "junk after": (GOOD.certificate + "<script>alert(1)</script>\n", "before or after"),
    "junk before": ("hello\n" + GOOD.certificate, "before or after"),
    "two blocks": (GOOD.certificate + OTHER.certificate, "exactly one PEM block"),
    "a key instead": (GOOD.key, "of type 'PRIVATE KEY' where a certificate"),
    "garbage": ("not a certificate", "not a PEM-encoded X.509 certificate"),
    "corrupt body": (
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        "not a PEM-encoded X.509",
    ),
}
# (what is wrong, the pair, message): the key matches the certificate in each.
WEAK_OR_OUT_OF_TIME = {
    "not yet valid": (
        make_certificate(valid_from_days=1, valid_until_days=30),
        "not valid before",
    ),
    "expired": (make_certificate(valid_from_days=-30, valid_until_days=-1), "expired on"),
    "RSA-1024": (make_certificate(rsa_bits=1024), "1024 bits is too weak"),
    "secp256k1": (make_certificate(curve=ec.SECP256K1()), "curve secp256k1 is not accepted"),
}


def _put_certificate(api: Any, certificate: str, key: str) -> Any:
    body = {"name": "proxy", "certificate": certificate, "key": key}
    return api.put("/v1/cluster/certificates", body, format="json")


def _proxy() -> str:
    return Certificate.objects.get(kind="proxy").fingerprint_sha256


@pytest.mark.parametrize("case", BAD_CERTIFICATES)
def test_cluster_certificate_must_be_one_pem_block(admin_api: Any, case: str) -> None:
    certificate, message = BAD_CERTIFICATES[case]
    before = _proxy()
    response = _put_certificate(admin_api, certificate, GOOD.key)
    assert response.status_code == 400
    assert message in str(response.json()["certificate"]), response.json()
    assert _proxy() == before


@pytest.mark.parametrize("case", WEAK_OR_OUT_OF_TIME)
def test_cluster_certificate_must_be_strong_and_valid_now(admin_api: Any, case: str) -> None:
    pair, message = WEAK_OR_OUT_OF_TIME[case]
    before = _proxy()
    response = _put_certificate(admin_api, pair.certificate, pair.key)
    # Redis Enterprise's statuses: 406 for an expired certificate, 400 for any other refusal.
    assert response.status_code == (406 if case == "expired" else 400)
    assert message in response.json()["certificate"][0]
    assert _proxy() == before


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (GOOD.key + JUNK, "no more than 16384 characters"),
        (GOOD.key + "junk\n", "before or after"),
        (GOOD.key + GOOD.key, "exactly one PEM block"),
        (GOOD.certificate, "of type 'CERTIFICATE' where a private key"),
        (OTHER.key, "does not match"),
    ],
)
def test_cluster_certificate_key_must_be_one_matching_block(
    admin_api: Any, key: str, message: str
) -> None:
    before = _proxy()
    response = _put_certificate(admin_api, GOOD.certificate, key)
    assert response.status_code == 400
    assert message in str(response.json()["key"])
    assert _proxy() == before


def test_a_good_certificate_is_stored_as_its_one_block(admin_api: Any, viewer_api: Any) -> None:
    pair = make_certificate(rsa_bits=2048)
    response = _put_certificate(admin_api, "\n\n" + pair.certificate + "\n  \n", pair.key)
    assert response.status_code == 200, response.content
    served = [
        c
        for c in viewer_api.get("/v1/cluster/certificates").json()["certificates"]
        if c["name"] == "proxy"
    ]
    assert served[0]["certificate"] == pair.certificate


def test_the_replace_page_refuses_junk_after_the_certificate(admin_client: Any) -> None:
    before = _proxy()
    response = admin_client.post(
        reverse("certificate-replace", kwargs={"kind": "proxy"}),
        {"certificate_pem": GOOD.certificate + "junk", "private_key_pem": GOOD.key},
    )
    assert response.status_code == 200
    assert "before or after" in response.context["form"].errors["certificate_pem"][0]
    assert _proxy() == before


@pytest.mark.parametrize(
    ("certificate", "message"),
    [
        (GOOD.certificate + "junk", "before or after"),
        (WEAK_OR_OUT_OF_TIME["RSA-1024"][0].certificate, "too weak"),
        (WEAK_OR_OUT_OF_TIME["not yet valid"][0].certificate, "not valid before"),
    ],
)
def test_trusted_client_certificates_of_a_new_database_are_checked(
    admin_api: Any, certificate: str, message: str
) -> None:
    body = {
        "name": "tls-db",
        "memory_size": 16 * 1024 * 1024,
        "tls_mode": "enabled",
        "enforce_client_authentication": "enabled",
        "authentication_ssl_client_certs": [
            {"client_cert": GOOD.certificate},
            {"client_cert": certificate},
        ],
    }
    response = admin_api.post("/v1/bdbs", body, format="json")
    assert response.status_code == 400
    assert message in response.json()["authentication_ssl_client_certs[1]"][0]
    assert not Database.objects.exists()


def _put_sources(api: Any, database: Database, **source: Any) -> Any:
    body = {"replica_sources": [source], "check_connection": False}
    return api.put(f"/v1/bdbs/{database.pk}", body, format="json")


@pytest.mark.parametrize(
    ("source", "field", "message"),
    [
        (
            {"uri": "rediss://127.0.0.1:1", "server_cert": GOOD.certificate + JUNK + JUNK},
            None,
            "no more than 16384 characters",
        ),
        (
            {"uri": "rediss://127.0.0.1:1", "server_cert": "garbage"},
            "replica_sources[0].server_cert",
            "not a PEM-encoded X.509 certificate",
        ),
        (
            {"uri": "rediss://127.0.0.1:1", "server_cert": GOOD.certificate + "junk"},
            "replica_sources[0].server_cert",
            "before or after",
        ),
        (
            {"uri": "redis://127.0.0.1:1", "server_cert": GOOD.certificate},
            "replica_sources[0].server_cert",
            "needs TLS",
        ),
        (
            {"uri": "rediss://127.0.0.1:1", "client_cert": OTHER.certificate + OTHER.certificate},
            "replica_sources[0].client_cert",
            "exactly one PEM block",
        ),
        (
            {"uri": "rediss://127.0.0.1:1", "replication_tls_sni": "<b>x</b>"},
            "replica_sources[0].replication_tls_sni",
            "must be a host name",
        ),
        (
            {"uri": "redis://127.0.0.1:1", "replication_tls_sni": "db.example"},
            "replica_sources[0].replication_tls_sni",
            "needs TLS",
        ),
    ],
)
def test_source_tls_fields_are_checked(
    admin_api: Any,
    pair: tuple[Database, Database],
    source: dict[str, str],
    field: str | None,
    message: str,
) -> None:
    from replication.models import ReplicaSource

    _, b = pair
    response = _put_sources(admin_api, b, **source)
    assert response.status_code == 400
    errors = response.json()
    if field is None:  # the serializer's cap, reported in its nested shape
        errors = errors["replica_sources"]["0"]
        field = next(iter(errors))
    assert message in str(errors[field]), errors
    assert not ReplicaSource.objects.filter(destination=b).exists()


def test_a_source_with_good_tls_fields_is_saved_as_given(
    admin_api: Any, pair: tuple[Database, Database]
) -> None:
    from replication.models import ReplicaSource

    _, b = pair
    source = {
        "uri": "rediss://127.0.0.1:1",
        "server_cert": GOOD.certificate,
        "replication_tls_sni": "source.example",
    }
    assert _put_sources(admin_api, b, **source).status_code == 200
    saved = ReplicaSource.objects.get(destination=b)
    assert (saved.server_cert, saved.replication_tls_sni) == (GOOD.certificate, "source.example")


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"server_cert": GOOD.certificate + "<img src=x>"}, "server_cert", "before or after"),
        ({"server_cert": "x" * 20000}, "server_cert", "at most 16384 characters"),
        ({"replication_tls_sni": '"><script>'}, "replication_tls_sni", "must be a host name"),
    ],
)
def test_the_add_source_dialog_names_the_tls_field(
    admin_client: Any,
    pair: tuple[Database, Database],
    data: dict[str, str],
    field: str,
    message: str,
) -> None:
    _, b = pair
    body = {"kind": "external", "uri": "rediss://127.0.0.1:1", "encryption": "on", **data}
    response = admin_client.post(reverse("replica-source-check", kwargs={"uid": b.pk}), body)
    assert response.status_code == 400
    errors = response.json()["errors"][field]
    text = errors[0] if isinstance(errors[0], str) else errors[0]["message"]
    assert message in text
