"""Redis Enterprise's own paths beside ours, with its documented statuses, and its JSON error
shape under /v1/ (`{"error_code", "description"}` plus the fields at fault), never HTML."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from console.models import AuditEntry, Certificate, Database, User
from replication import services as replica_services
from replication.sources import SourceInput
from tests.support.pki import make_certificate

pytestmark = pytest.mark.django_db


def _fingerprints() -> dict[str, str]:
    return dict(Certificate.objects.values_list("kind", "fingerprint_sha256"))


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert body["error_code"] == code, body
    assert isinstance(body["description"], str) and body["description"], body
    return body


def test_unknown_paths_and_refusals_are_json(admin_api: Any, viewer_api: Any, bootstrapped) -> None:
    _error(admin_api.get("/v1/unknown"), 404, "not_found")
    _error(admin_api.get("/v1/bdbs/424242"), 404, "not_found")
    _error(admin_api.get("/v1/users/424242"), 404, "not_found")
    _error(viewer_api.get("/v1/users"), 403, "permission_denied")
    _error(APIClient().get("/v1/users"), 401, "not_authenticated")
    _error(admin_api.delete("/v1/cluster"), 405, "method_not_allowed")


def test_field_errors_keep_their_fields(admin_api: Any, bootstrapped) -> None:
    body = _error(
        admin_api.post("/v1/bdbs", {"name": "x", "memory_size": "big"}, format="json"),
        400,
        "invalid_request",
    )
    assert "memory_size" in body and body["description"].startswith("memory_size: ")
    assert not Database.objects.exists()


# ---------------------------------------------------------------- certificates


def test_put_certificates_replaces_all_given(admin_api: Any, bootstrapped) -> None:
    proxy, syncer = make_certificate(), make_certificate(common_name="syncer.example")
    body = {
        "certificates": [
            {"name": "proxy", "certificate": proxy.certificate, "key": proxy.key},
            {"name": "syncer", "certificate": syncer.certificate, "key": syncer.key},
        ]
    }
    response = admin_api.put("/v1/cluster/certificates", body, format="json")
    assert response.status_code == 200, response.content
    served = response.json()
    assert served["proxy_cert"] == proxy.certificate
    assert served["syncer_cert"] == syncer.certificate
    assert "PRIVATE KEY" not in str(served)
    assert AuditEntry.objects.filter(action="certificate.replace").count() == 2


@pytest.mark.parametrize(
    ("second", "status", "code"),
    [
        ({"name": "syncer", "certificate": "junk", "key": "junk"}, 400, "invalid_request"),
        ("expired", 406, "certificate_expired"),
        ({"name": "api", "certificate": "x", "key": "y"}, 403, "unknown_certificate"),
    ],
)
def test_put_certificates_refuses_with_re_statuses_and_changes_nothing(
    admin_api: Any, bootstrapped, second: Any, status: int, code: str
) -> None:
    good = make_certificate()
    if second == "expired":
        old = make_certificate(valid_from_days=-30, valid_until_days=-1)
        second = {"name": "syncer", "certificate": old.certificate, "key": old.key}
    before = _fingerprints()
    body = {
        "certificates": [
            {"name": "proxy", "certificate": good.certificate, "key": good.key},
            second,
        ]
    }
    answer = _error(admin_api.put("/v1/cluster/certificates", body, format="json"), status, code)
    assert any(k.startswith("certificates[1].") for k in answer), answer
    assert _fingerprints() == before  # the good first one was not saved either


def test_update_cert_is_the_older_single_form(admin_api: Any, bootstrapped) -> None:
    pair = make_certificate()
    body = {"name": "proxy", "certificate": pair.certificate, "key": pair.key}
    response = admin_api.put("/v1/cluster/update_cert", body, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["name"] == "proxy"
    assert Certificate.objects.get(kind="proxy").certificate_pem == pair.certificate
    expired = make_certificate(valid_from_days=-30, valid_until_days=-1)
    before = _fingerprints()
    _error(
        admin_api.put(
            "/v1/cluster/update_cert",
            {"name": "syncer", "certificate": expired.certificate, "key": expired.key},
            format="json",
        ),
        406,
        "certificate_expired",
    )
    _error(
        admin_api.put("/v1/cluster/update_cert", {**body, "name": "cm"}, format="json"),
        403,
        "unknown_certificate",
    )
    assert _fingerprints() == before


def test_viewers_cannot_replace_certificates(viewer_api: Any) -> None:
    pair = make_certificate()
    before = _fingerprints()
    body = {"name": "proxy", "certificate": pair.certificate, "key": pair.key}
    _error(viewer_api.put("/v1/cluster/update_cert", body, format="json"), 403, "permission_denied")
    assert _fingerprints() == before


# ---------------------------------------------------------------- syncer state


def test_syncer_state_of_a_replica(
    admin_api: Any, viewer_api: Any, admin_user: User, database: Database
) -> None:
    _error(viewer_api.get(f"/v1/bdbs/{database.pk}/syncer_state/replica"), 404, "not_found")
    replica_services.replica_sources_set(
        actor=admin_user,
        destination=database,
        sources=[SourceInput(uri="redis://:secret-pw@192.0.2.10:6379")],
    )
    response = viewer_api.get(f"/v1/bdbs/{database.pk}/syncer_state/replica")
    assert response.status_code == 200, response.content
    state = response.json()
    assert state["DB"] == database.pk and state["replica_sync"] == "enabled"
    assert state["generation"] >= 1 and state["job_running"] is False
    assert [s["uid"] for s in state["sources"]] == [1]
    assert "secret-pw" not in response.content.decode()


def test_flush_and_reset_admin_pass_are_admin_only(viewer_api: Any, database: Database) -> None:
    for path in ("flush", "reset_admin_pass"):
        _error(viewer_api.put(f"/v1/bdbs/{database.pk}/{path}"), 403, "permission_denied")
    assert not AuditEntry.objects.filter(
        action__in=["database.flush", "database.regenerate_admin_password"]
    ).exists()


def test_flush_waits_for_an_active_database(admin_api: Any, database: Database) -> None:
    body = _error(admin_api.put(f"/v1/bdbs/{database.pk}/flush"), 400, "invalid_request")
    assert "pending" in body["description"]
