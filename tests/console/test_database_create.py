"""The Create database page: form, field errors, ports (rows stay `pending`: no worker runs)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from console.models import AuditEntry, Database, DatabaseStatus
from tests.support.pages import DEFAULT_PASSWORD, MB, create_data, occupied_port


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
        create_data(shards_count=2, password=DEFAULT_PASSWORD, persistence="aof"),
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
    sock = occupied_port()
    port = sock.getsockname()[1]
    sock.close()
    response = admin_client.post(reverse("database-create"), create_data(port=port))
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
    response = admin_client.post(reverse("database-create"), create_data(**overrides))
    assert response.status_code == 200
    form = response.context["form"]
    assert field in form.errors, form.errors
    assert any(message in error for error in form.errors[field]), form.errors
    assert message.encode() in response.content
    assert not Database.objects.exists()


def test_create_refuses_a_duplicate_name(admin_client: Client, database: Database) -> None:
    response = admin_client.post(reverse("database-create"), create_data(name="db1"))
    assert response.status_code == 200
    assert "already exists" in response.context["form"].errors["name"][0]
    assert Database.objects.count() == 1


def test_create_refuses_a_port_in_use_on_the_host(admin_client: Client) -> None:
    sock = occupied_port()
    try:
        port = sock.getsockname()[1]
        response = admin_client.post(reverse("database-create"), create_data(port=port))
    finally:
        sock.close()
    assert response.status_code == 200
    assert "in use" in response.context["form"].errors["port"][0]
    assert not Database.objects.exists()


def test_create_refuses_a_port_of_another_database(
    admin_client: Client, database: Database
) -> None:
    response = admin_client.post(reverse("database-create"), create_data(port=database.port))
    assert response.status_code == 200
    assert "used by another database" in response.context["form"].errors["port"][0]
    assert Database.objects.count() == 1
