"""The audit log page: filters and pages."""

from __future__ import annotations

from django.test import Client
from django.urls import reverse

from console import services
from console.models import Database, User


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
