"""Sign-in and sign-out pages: redirects, throttling, CSRF (Django test client)."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client, override_settings
from django.urls import reverse
from rest_framework.test import APIClient

from console.models import AuditEntry, Database, User
from tests.support.pages import create_data
from tests.support.personas import ADMIN_PASSWORD, VIEWER_PASSWORD, basic_auth


@pytest.mark.parametrize(
    "url", ["/", "/databases/", "/databases/new/", "/nodes/", "/cluster/", "/audit/"]
)
def test_anonymous_is_sent_to_sign_in(bootstrapped: None, url: str) -> None:
    response = Client().get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


def test_sign_in_and_out(admin_user: User, remote_addr: str) -> None:
    client = Client(REMOTE_ADDR=remote_addr)
    page = client.get("/login/")
    assert page.status_code == 200
    assert b'name="csrfmiddlewaretoken"' in page.content or b"csrf" in page.content.lower()
    response = client.post(
        "/login/", {"username": "admin", "password": ADMIN_PASSWORD, "next": "/nodes/"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/nodes/"
    home = client.get("/databases/")
    assert home.status_code == 200
    assert b'<span class="user-name">admin</span>' in home.content
    assert b"cluster.local" in home.content

    assert client.get(reverse("logout")).status_code == 405  # sign out is POST only
    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert client.get("/databases/").status_code == 302


def test_sign_in_never_redirects_off_site(admin_user: User, remote_addr: str) -> None:
    client = Client(REMOTE_ADDR=remote_addr)
    response = client.post(
        "/login/",
        {"username": "admin", "password": ADMIN_PASSWORD, "next": "https://evil.example/"},
    )
    assert response.status_code == 302
    assert response["Location"] == "/"


def test_sign_in_with_a_wrong_password_is_refused(admin_user: User, remote_addr: str) -> None:
    client = Client(REMOTE_ADDR=remote_addr)
    response = client.post("/login/", {"username": "admin", "password": "nope"})
    assert response.status_code == 200
    assert b"correct username and password" in response.content
    assert client.get("/databases/").status_code == 302


def _sign_in(client: Client, username: str, password: str) -> int:
    return client.post("/login/", {"username": username, "password": password}).status_code


def test_wrong_admin_passwords_interleaved_with_a_viewers_sign_ins_stay_throttled(
    admin_user: User, viewer_user: User, remote_addr: str
) -> None:
    """The audit's scenario: from one address, wrong admin passwords with a successful viewer
    sign-in every few tries. The viewer's successes never clear the admin's failures."""
    client = Client(REMOTE_ADDR=remote_addr)
    limit = settings.LOGIN_FAILURE_LIMIT
    for attempt in range(1, 28):
        expected = 200 if attempt <= limit else 429  # refused before the password is checked
        assert _sign_in(client, "admin", "guess") == expected, attempt
        if attempt % 3 == 0:
            viewer = Client(REMOTE_ADDR=remote_addr)
            assert _sign_in(viewer, "viewer", VIEWER_PASSWORD) == 302, attempt
    response = client.post("/login/", {"username": "admin", "password": ADMIN_PASSWORD})
    assert response.status_code == 429
    assert b"Too many failed sign-ins" in response.content
    assert int(response["Retry-After"]) > 0
    assert client.get("/databases/").status_code == 302
    locks = AuditEntry.objects.filter(action="user.sign_in_locked", object_name="admin")
    assert locks.count() == 1
    assert f"from {remote_addr}" in locks.get().detail


def test_a_lockout_from_one_address_stops_no_one_else(
    admin_user: User, viewer_user: User, remote_addr: str
) -> None:
    attacker = Client(REMOTE_ADDR=remote_addr)
    for _ in range(settings.LOGIN_FAILURE_LIMIT):
        assert _sign_in(attacker, "admin", "guess") == 200
    assert _sign_in(attacker, "admin", ADMIN_PASSWORD) == 429
    # Another user from the same address, and the admin from elsewhere, sign in.
    assert _sign_in(Client(REMOTE_ADDR=remote_addr), "viewer", VIEWER_PASSWORD) == 302
    assert _sign_in(Client(REMOTE_ADDR=remote_addr + "1"), "admin", ADMIN_PASSWORD) == 302


def test_guessing_one_account_from_many_addresses_locks_that_account_only(
    admin_user: User, viewer_user: User, remote_addr: str
) -> None:
    per_address = settings.LOGIN_FAILURE_LIMIT - 1  # never the per-address limit
    tried = 0
    n = 0
    while tried < settings.LOGIN_ACCOUNT_FAILURE_LIMIT:
        client = Client(REMOTE_ADDR=f"{remote_addr}{n}")
        n += 1
        for _ in range(min(per_address, settings.LOGIN_ACCOUNT_FAILURE_LIMIT - tried)):
            assert _sign_in(client, "admin", "guess") == 200
            tried += 1
    # Now the admin account is locked from everywhere (for a short while); the viewer is not.
    assert _sign_in(Client(REMOTE_ADDR="192.0.2.99"), "admin", ADMIN_PASSWORD) == 429
    assert _sign_in(Client(REMOTE_ADDR="192.0.2.99"), "viewer", VIEWER_PASSWORD) == 302
    lock = AuditEntry.objects.get(action="user.sign_in_locked", object_name="admin")
    assert "from any address" in lock.detail


def test_basic_auth_is_throttled_per_account_like_the_sign_in_page(
    admin_user: User, viewer_user: User, remote_addr: str
) -> None:
    def api(username: str, password: str) -> int:
        client = APIClient(REMOTE_ADDR=remote_addr)
        client.credentials(HTTP_AUTHORIZATION=basic_auth(username, password))
        return int(client.get("/v1/bdbs").status_code)

    for attempt in range(1, 13):
        expected = 401 if attempt <= settings.LOGIN_FAILURE_LIMIT else 429
        assert api("admin", "guess") == expected, attempt
        assert api("viewer", VIEWER_PASSWORD) == 200, attempt
    assert api("admin", ADMIN_PASSWORD) == 429
    # The page and the API count together.
    assert _sign_in(Client(REMOTE_ADDR=remote_addr), "admin", ADMIN_PASSWORD) == 429


@override_settings(TRUSTED_PROXIES=1)
def test_behind_a_proxy_the_client_address_is_the_forwarded_one(
    admin_user: User, viewer_user: User
) -> None:
    def through_proxy(client_address: str) -> Client:
        # The proxy appends the address it saw; what the client sent itself stays on the left.
        return Client(REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=f"6.6.6.6, {client_address}")

    for _ in range(settings.LOGIN_FAILURE_LIMIT):
        assert _sign_in(through_proxy("198.51.100.7"), "admin", "guess") == 200
    assert _sign_in(through_proxy("198.51.100.7"), "admin", ADMIN_PASSWORD) == 429
    assert _sign_in(through_proxy("198.51.100.8"), "admin", ADMIN_PASSWORD) == 302


def test_a_successful_sign_in_clears_only_its_own_failures(
    admin_user: User, remote_addr: str
) -> None:
    client = Client(REMOTE_ADDR=remote_addr)
    for _ in range(settings.LOGIN_FAILURE_LIMIT - 1):
        assert _sign_in(client, "admin", "x") == 200
    assert _sign_in(client, "admin", ADMIN_PASSWORD) == 302
    client.post(reverse("logout"))
    for _ in range(settings.LOGIN_FAILURE_LIMIT - 1):
        assert _sign_in(client, "admin", "x") == 200
    assert _sign_in(client, "admin", ADMIN_PASSWORD) == 302


def test_forms_require_csrf(admin_user: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    response = client.post(reverse("database-create"), create_data())
    assert response.status_code == 403
    assert not Database.objects.exists()
