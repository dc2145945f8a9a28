"""The Add source dialog's check endpoint: field errors as JSON, admins only."""

from __future__ import annotations

from django.test import Client
from django.urls import reverse

from console import services
from console.models import Database, DatabaseStatus, User
from tests.support.pages import MB, activate


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
    deleting = activate(
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
