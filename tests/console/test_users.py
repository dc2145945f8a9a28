"""Users: the page, `/v1/users` (Redis Enterprise's paths and statuses) and `manage.py
console_user`. A viewer made through the page signs in and sees no secret; the last admin stays."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from console.models import AuditEntry, Database, User
from tests.support.pages import DEFAULT_PASSWORD
from tests.support.personas import basic_auth

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "operator-viewer-pass-7"


def _sign_in(name: str, password: str, remote_addr: str) -> Client:
    client = Client(REMOTE_ADDR=remote_addr)
    response = client.post("/login/", {"username": name, "password": password, "next": "/nodes/"})
    assert response.status_code == 302, response.content
    return client


def _cannot_sign_in(name: str, password: str, remote_addr: str) -> None:
    response = Client(REMOTE_ADDR=remote_addr).post(
        "/login/", {"username": name, "password": password}
    )
    assert response.status_code == 200  # the form again, with its error
    assert "_auth_user_id" not in response.client.session


def test_a_viewer_made_on_the_page_signs_in_and_sees_no_secrets(
    admin_client: Client, database: Database, remote_addr: str
) -> None:
    response = admin_client.post(
        reverse("user-list"),
        {
            "name": "ops-viewer",
            "role": "viewer",
            "password": NEW_PASSWORD,
            "email": "v@example.org",
        },
    )
    assert response.status_code == 302, response.content
    user = User.objects.get(username="ops-viewer")
    assert user.role == User.Role.VIEWER and user.email == "v@example.org"
    assert AuditEntry.objects.filter(action="user.create", object_name="ops-viewer").exists()

    viewer = _sign_in("ops-viewer", NEW_PASSWORD, remote_addr)
    page = viewer.get(reverse("database-detail", kwargs={"uid": database.pk})).content.decode()
    assert database.name in page
    for secret in (database.internal_password, DEFAULT_PASSWORD):
        assert secret not in page
    assert viewer.get(reverse("replica-source-url", kwargs={"uid": database.pk})).status_code in {
        403,
        405,
    }
    assert viewer.get(reverse("user-list")).status_code == 403
    assert "Users</a>" not in viewer.get("/nodes/").content.decode()  # no nav entry either

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=basic_auth("ops-viewer", NEW_PASSWORD))
    bdb = api.get(f"/v1/bdbs/{database.pk}")
    assert bdb.status_code == 200
    assert database.internal_password not in bdb.content.decode()
    assert DEFAULT_PASSWORD not in bdb.content.decode()
    url = api.post(f"/v1/bdbs/{database.pk}/actions/replica_source_url")
    assert url.status_code == 403 and url.json()["error_code"] == "permission_denied"
    assert api.get("/v1/users").status_code == 403


def test_change_password_disable_enable_delete_on_the_page(
    admin_client: Client, viewer_user: User, remote_addr: str
) -> None:
    def change(action: str, **data: str) -> Any:
        return admin_client.post(
            reverse("user-change", kwargs={"uid": viewer_user.pk, "action": action}), data
        )

    weak = change("password", password="short")
    assert weak.status_code == 200 and "too short" in weak.content.decode()
    assert change("password", password=NEW_PASSWORD).status_code == 302
    _sign_in("viewer", NEW_PASSWORD, remote_addr)
    assert change("disable").status_code == 302
    _cannot_sign_in("viewer", NEW_PASSWORD, remote_addr)
    assert change("enable").status_code == 302
    _sign_in("viewer", NEW_PASSWORD, remote_addr)
    assert change("make-admin").status_code == 302
    assert User.objects.get(pk=viewer_user.pk).role == User.Role.ADMIN
    assert change("delete").status_code == 302
    assert not User.objects.filter(pk=viewer_user.pk).exists()
    details = list(
        AuditEntry.objects.filter(action="user.update", object_name="viewer")
        .order_by("id")
        .values_list("detail", flat=True)
    )
    assert details == ["password changed", "disabled", "enabled", "role admin"]
    assert AuditEntry.objects.filter(action="user.delete", object_name="viewer").exists()
    assert "operator-viewer-pass" not in str(
        list(AuditEntry.objects.values_list("detail", flat=True))
    )


def test_the_last_admin_stays_on_the_page(admin_client: Client, admin_user: User) -> None:
    for action in ("delete", "disable", "make-viewer"):
        response = admin_client.post(
            reverse("user-change", kwargs={"uid": admin_user.pk, "action": action}), follow=True
        )
        assert "is the last admin" in response.content.decode(), action
    admin = User.objects.get(pk=admin_user.pk)
    assert admin.is_active and admin.role == User.Role.ADMIN


def test_viewers_cannot_use_the_page(viewer_client: Client, admin_user: User) -> None:
    assert viewer_client.get(reverse("user-list")).status_code == 403
    response = viewer_client.post(
        reverse("user-change", kwargs={"uid": admin_user.pk, "action": "delete"})
    )
    assert response.status_code == 403
    assert User.objects.filter(pk=admin_user.pk).exists()


# ---------------------------------------------------------------- /v1/users


def test_users_api_create_read_update_delete(admin_api: APIClient, remote_addr: str) -> None:
    body = {"name": "robot", "password": NEW_PASSWORD, "role": "db_viewer", "email": "r@x.org"}
    created = admin_api.post("/v1/users", body, format="json")
    assert created.status_code == 200, created.content
    user = created.json()
    assert user["name"] == "robot" and user["role"] == "cluster_viewer"
    assert user["status"] == "active" and "password" not in user
    uid = user["uid"]
    assert admin_api.get(f"/v1/users/{uid}").json() == user

    again = admin_api.post("/v1/users", body, format="json")
    assert again.status_code == 409 and again.json()["error_code"] == "email_already_exists"
    same_name = admin_api.post("/v1/users", {**body, "email": ""}, format="json")
    assert same_name.status_code == 409 and same_name.json()["error_code"] == "name_already_exists"
    weak = admin_api.post(
        "/v1/users", {**body, "name": "r2", "email": "", "password": "password"}, format="json"
    )
    assert weak.status_code == 400 and weak.json()["error_code"] == "password_not_complex"
    assert "password" in weak.json()
    assert (
        admin_api.post(
            "/v1/users", {**body, "name": "r3", "role": "root"}, format="json"
        ).status_code
        == 400
    )
    assert User.objects.filter(username__in=["r2", "r3"]).count() == 0

    locked = admin_api.put(f"/v1/users/{uid}", {"status": "locked", "role": "admin"}, format="json")
    assert locked.status_code == 200, locked.content
    assert locked.json()["status"] == "locked" and locked.json()["role"] == "admin"
    _cannot_sign_in("robot", NEW_PASSWORD, remote_addr)
    renamed = admin_api.put(f"/v1/users/{uid}", {"name": "other"}, format="json")
    assert renamed.status_code == 400 and "name" in renamed.json()

    assert admin_api.delete(f"/v1/users/{uid}").status_code == 200
    assert admin_api.get(f"/v1/users/{uid}").status_code == 404


def test_users_api_never_removes_the_last_admin(admin_api: APIClient, admin_user: User) -> None:
    for method, body in (
        ("delete", None),
        ("put", {"role": "cluster_viewer"}),
        ("put", {"status": "locked"}),
    ):
        response = getattr(admin_api, method)(f"/v1/users/{admin_user.pk}", body, format="json")
        assert response.status_code == 406, (method, body, response.content)
        assert response.json()["error_code"] == "change_last_admin_role_not_allowed"
    admin = User.objects.get(pk=admin_user.pk)
    assert admin.is_active and admin.role == User.Role.ADMIN
    assert not AuditEntry.objects.filter(action__in=["user.update", "user.delete"]).exists()


# ---------------------------------------------------------------- manage.py console_user


def test_the_command_creates_the_first_admin(
    bootstrapped: None, monkeypatch: pytest.MonkeyPatch, remote_addr: str
) -> None:
    monkeypatch.setenv("CONSOLE_USER_PASSWORD", NEW_PASSWORD)
    out = StringIO()
    call_command("console_user", "ops-admin", "--role", "admin", stdout=out)
    assert "created" in out.getvalue() and NEW_PASSWORD not in out.getvalue()
    assert User.objects.get(username="ops-admin").role == User.Role.ADMIN
    client = _sign_in("ops-admin", NEW_PASSWORD, remote_addr)
    assert client.get(reverse("user-list")).status_code == 200
    again = StringIO()
    call_command("console_user", "ops-admin", "--if-missing", stdout=again)
    assert "nothing to do" in again.getvalue()
    with pytest.raises(CommandError, match="exists"):
        call_command("console_user", "ops-admin", stdout=StringIO())
    assert User.objects.filter(username="ops-admin").count() == 1


def test_the_command_generates_a_password_when_none_is_given(
    bootstrapped: None, monkeypatch: pytest.MonkeyPatch, remote_addr: str
) -> None:
    monkeypatch.delenv("CONSOLE_USER_PASSWORD", raising=False)
    out = StringIO()
    call_command("console_user", "gen-viewer", "--role", "viewer", stdout=out)
    line = next(ln for ln in out.getvalue().splitlines() if ln.startswith("LOGIN"))
    password = line.split("password: ")[1]
    _sign_in("gen-viewer", password, remote_addr)
