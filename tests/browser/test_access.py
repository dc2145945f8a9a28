"""Sign-in by keyboard, labels and focus, narrow windows, and what the viewer role may see."""

from __future__ import annotations

import re
from typing import Any

import pytest

from console import services
from console.models import Database, DatabaseStatus
from tests.support.browser import NARROW, WIDE, off_loop, sign_in
from tests.support.personas import ADMIN_PASSWORD, VIEWER_PASSWORD
from tests.support.wait import wait_for

pytestmark = pytest.mark.slow

MB = 1024 * 1024
DEFAULT_PASSWORD = "viewer-must-not-see-this-7"
# Names of controls that change something: a viewer must find none of them on any page.
MUTATING = re.compile(
    r"^\s*(\+\s*)?(edit|delete|create|replace|regenerate|stop|start|restart|pause|resume|save|"
    r"add source|get replica of source url|create database|delete database)",
    re.IGNORECASE,
)


def unlabelled_inputs(page: Any) -> list[str]:
    """Visible form controls without a label (or aria-label) on the page."""
    return list(
        page.evaluate(
            """() => [...document.querySelectorAll("input, select, textarea")]
                .filter((el) => el.type !== "hidden" && !el.closest("[hidden]"))
                .filter((el) => el.labels.length === 0 && !el.getAttribute("aria-label"))
                .map((el) => el.name || el.id || el.outerHTML)"""
        )
    )


def overflows_horizontally(page: Any) -> bool:
    return bool(page.evaluate("() => document.documentElement.scrollWidth > window.innerWidth + 1"))


def focus_outline(page: Any) -> tuple[str, float]:
    """The outline style and width of the focused element."""
    style, width = page.evaluate(
        """() => { const s = getComputedStyle(document.activeElement);
                   return [s.outlineStyle, parseFloat(s.outlineWidth)]; }"""
    )
    return str(style), float(width)


def mutating_controls(page: Any) -> list[str]:
    found = []
    for role in ("button", "link"):
        for name in page.get_by_role(role).all_inner_texts():
            if MUTATING.match(name):
                found.append(f"{role} {name.strip()!r}")
    return found


def test_sign_in_with_the_keyboard(page: Any, admin: Any, shot: Any) -> None:
    page.goto("/databases/")
    page.wait_for_url(re.compile(r"/login/\?next="))
    assert unlabelled_inputs(page) == []
    shot(page, "wide")

    # A wrong password first: the error is announced, the user name stays.
    username = page.get_by_label("User name")
    assert username.evaluate("(el) => el === document.activeElement")  # autofocus
    page.keyboard.type("admin")
    assert focus_outline(page)[0] != "none"
    page.keyboard.press("Tab")
    assert page.get_by_label("Password").evaluate("(el) => el === document.activeElement")
    style, width = focus_outline(page)
    assert style != "none" and width >= 2
    page.keyboard.type("wrong password")
    page.keyboard.press("Enter")
    page.get_by_role("alert").filter(has_text="correct username and password").wait_for()
    assert username.input_value() == "admin"
    shot(page, "wrong-password")

    # Then the right one, by keyboard only; the button shows where the focus is.
    page.get_by_label("Password").focus()
    page.keyboard.type(ADMIN_PASSWORD)
    page.keyboard.press("Tab")
    assert page.get_by_role("button", name="Sign in").evaluate(
        "(el) => el === document.activeElement"
    )
    style, width = focus_outline(page)
    assert style != "none" and width >= 2
    shot(page, "button-focused")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/databases/$"))
    page.get_by_role("heading", name="Databases").wait_for()

    # The skip link is the first stop of the keyboard and leads to the content.
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    assert skip.evaluate("(el) => el === document.activeElement")
    assert skip.is_visible()


def test_pages_are_readable_narrow_and_wide(new_page: Any, admin: Any, shot: Any) -> None:
    for size, viewport in (("wide", WIDE), ("narrow", NARROW)):
        page = new_page(viewport)
        page.goto("/login/")
        assert not overflows_horizontally(page), f"sign-in page overflows at {viewport}"
        shot(page, f"{size}-sign-in")
        page.get_by_label("User name").fill("admin")
        page.get_by_label("Password").fill(ADMIN_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(re.compile(r"/databases/$"))
        for name, url in (
            ("databases", "/databases/"),
            ("create", "/databases/new/"),
            ("security", "/cluster/security/"),
            ("replace", "/cluster/security/certificates/proxy/replace/"),
            ("audit", "/audit/"),
        ):
            page.goto(url)
            assert unlabelled_inputs(page) == [], url
            assert not overflows_horizontally(page), f"{url} overflows at {viewport}"
            shot(page, f"{size}-{name}")


def test_viewer_sees_every_page_but_no_secrets_and_no_mutating_controls(
    live_worker: Any, new_page: Any, admin: Any, viewer: Any, shot: Any
) -> None:
    database = off_loop(
        services.database_create,
        actor=admin,
        name="viewed",
        memory_size=64 * MB,
        password=DEFAULT_PASSWORD,
    )
    wait_for(
        lambda: Database.objects.get(pk=database.pk).status == DatabaseStatus.ACTIVE,
        what="the database to become active",
    )
    database.refresh_from_db()
    secrets = [DEFAULT_PASSWORD, database.internal_password, "PRIVATE KEY"]

    page = new_page()
    sign_in(page, "viewer", VIEWER_PASSWORD)
    assert page.locator(".role").inner_text() == "Viewer"
    pages = {
        "databases": "/databases/",
        "database": f"/databases/{database.pk}/",
        "nodes": "/nodes/",
        "cluster": "/cluster/",
        "security": "/cluster/security/",
        "audit": "/audit/",
    }
    for name, url in pages.items():
        response = page.goto(url)
        assert response.status == 200, url
        page.locator("main h1").wait_for()
        assert mutating_controls(page) == [], url
        html = page.content()
        for secret in secrets:
            assert secret not in html, f"{url} shows a secret"
        shot(page, name)
    # The database is listed and described; the certificates can still be copied and downloaded.
    page.goto("/databases/")
    page.get_by_role("link", name="viewed").click()
    page.get_by_text(f"127.0.0.1:{database.port}").first.wait_for()
    page.goto("/cluster/security/")
    assert page.get_by_role("button", name="Copy").count() == 2
    assert page.get_by_role("link", name="Download").count() == 2
    # Times are in the browser's zone (Europe/Berlin in these tests), not the server's UTC.
    expires = page.locator("[data-certificate=proxy] time").last
    assert "UTC" in str(expires.get_attribute("title"))
    assert re.search(r"GMT\+[12]|CES?T", expires.inner_text()), expires.inner_text()

    # Typing a mutating URL by hand is refused with a page that says why.
    for url in (
        "/databases/new/",
        f"/databases/{database.pk}/edit/",
        f"/databases/{database.pk}/delete/",
        "/cluster/security/certificates/proxy/replace/",
    ):
        response = page.goto(url)
        assert response.status == 403, url
        page.get_by_role("alert").filter(has_text="needs the admin role").wait_for()
    shot(page, "refused")

    # The admin, for contrast, has the buttons the viewer lacks.
    admin_page = new_page()
    sign_in(admin_page, "admin", ADMIN_PASSWORD)
    admin_page.goto(f"/databases/{database.pk}/")
    assert "link 'Edit'" in mutating_controls(admin_page)
