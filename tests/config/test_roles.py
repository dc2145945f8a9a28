"""What each role sees and may do on the database pages."""

from __future__ import annotations

from django.test import Client
from django.urls import reverse

from console.models import Database, DatabaseStatus
from tests.support.pages import MB, activate, create_data


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
    activate(database)
    uid = database.pk
    assert viewer_client.get(reverse("database-create")).status_code == 403
    assert viewer_client.post(reverse("database-create"), create_data()).status_code == 403
    edit = reverse("database-edit", kwargs={"uid": uid})
    assert viewer_client.get(edit).status_code == 403
    assert viewer_client.post(edit, {"memory_mb": 200, "password": "x"}).status_code == 403
    delete = reverse("database-delete", kwargs={"uid": uid})
    assert viewer_client.post(delete).status_code == 403
    database.refresh_from_db()
    assert database.status == DatabaseStatus.ACTIVE
    assert database.memory_size == 100 * MB
    assert Database.objects.count() == 1
