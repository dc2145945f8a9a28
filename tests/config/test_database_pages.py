"""A database's page, Database → Edit (memory, password) and deletion (config.views)."""

from __future__ import annotations

from django.test import Client
from django.urls import reverse

from console import services
from console.models import AuditEntry, Database, DatabaseStatus, User
from tests.support.pages import DEFAULT_PASSWORD, MB, activate


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
    activate(database)
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
    activate(database)
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
    activate(database)
    url = reverse("database-edit", kwargs={"uid": database.pk})
    response = admin_client.post(url, {"memory_mb": 150, "password": ""})
    assert response.status_code == 302
    database.refresh_from_db()
    assert database.password == DEFAULT_PASSWORD
    assert database.memory_size == 150 * MB


def test_edit_removes_the_password(admin_client: Client, database: Database) -> None:
    activate(database)
    url = reverse("database-edit", kwargs={"uid": database.pk})
    response = admin_client.post(url, {"memory_mb": 100, "remove_password": "on"})
    assert response.status_code == 302
    database.refresh_from_db()
    assert database.password == ""
    assert database.memory_size == 100 * MB


def test_edit_refuses_bad_input(admin_client: Client, database: Database) -> None:
    activate(database)
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
    activate(database)
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
