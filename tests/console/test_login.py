"""Sign-in and sign-out pages: redirects, throttling, CSRF (Django test client)."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from console.models import Database, User
from tests.support.pages import create_data
from tests.support.personas import ADMIN_PASSWORD


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


def test_sign_in_is_throttled_after_repeated_failures(admin_user: User, remote_addr: str) -> None:
    client = Client(REMOTE_ADDR=remote_addr)
    for _ in range(settings.LOGIN_FAILURE_LIMIT):
        assert client.post("/login/", {"username": "admin", "password": "x"}).status_code == 200
    # Even the right password is refused now, before it is checked.
    response = client.post("/login/", {"username": "admin", "password": ADMIN_PASSWORD})
    assert response.status_code == 429
    assert b"Too many failed sign-ins" in response.content
    assert client.get("/databases/").status_code == 302
    # Another address is not affected.
    other = Client(REMOTE_ADDR=remote_addr + "1")
    try:
        response = other.post("/login/", {"username": "admin", "password": ADMIN_PASSWORD})
        assert response.status_code == 302
    finally:
        cache.delete(f"login-failures:{remote_addr}1")


def test_successful_sign_in_resets_the_failure_count(admin_user: User, remote_addr: str) -> None:
    client = Client(REMOTE_ADDR=remote_addr)
    for _ in range(settings.LOGIN_FAILURE_LIMIT - 1):
        client.post("/login/", {"username": "admin", "password": "x"})
    assert (
        client.post("/login/", {"username": "admin", "password": ADMIN_PASSWORD}).status_code == 302
    )
    client.post(reverse("logout"))
    client.post("/login/", {"username": "admin", "password": "x"})
    assert (
        client.post("/login/", {"username": "admin", "password": ADMIN_PASSWORD}).status_code == 302
    )


def test_forms_require_csrf(admin_user: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    response = client.post(reverse("database-create"), create_data())
    assert response.status_code == 403
    assert not Database.objects.exists()
