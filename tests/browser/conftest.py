"""Browser tests: a real ASGI server (daphne) on the test database, Debian's Chromium headless.

The server is a subprocess that shares the pytest-django test database (an SQLite file, or the
PostgreSQL test database) and the control Redis of tests/plugin.py; tests that use it need
committed rows, hence `transactional_db` (the `admin`/`viewer` fixtures below bring it).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from tests.support.browser import SCREENSHOTS, WIDE, LiveServer, chromium_browser, sign_in
from tests.support.personas import ADMIN_PASSWORD, VIEWER_PASSWORD


@pytest.fixture(scope="session")
def console_server(live_server_env: dict[str, str]) -> Iterator[LiveServer]:
    """The console over HTTP and WebSocket for the whole session (the test DB is per test)."""
    server = LiveServer(live_server_env, Path(settings.VAR_DIR) / "test-daphne.log").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _orm_beside_playwright(monkeypatch: pytest.MonkeyPatch) -> None:
    """Playwright's sync API leaves its event loop marked as running in this thread; the ORM
    calls of the tests and their fixtures are still plain synchronous code, so Django's
    async-safety guard is lifted for them (only in this process, only during browser tests)."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    with chromium_browser() as chromium:
        yield chromium


@pytest.fixture
def new_page(browser: Any, console_server: LiveServer) -> Iterator[Callable[..., Any]]:
    """Open a page in a fresh browser context (own cookies) against the live server."""
    contexts: list[Any] = []
    script_errors: list[str] = []

    def open_page(viewport: dict[str, int] | None = None, server: LiveServer | None = None) -> Any:
        context = browser.new_context(
            base_url=(server or console_server).url,
            viewport=viewport or WIDE,
            permissions=["clipboard-read", "clipboard-write"],
            accept_downloads=True,
            # Not the server's zone (UTC): times must show in the browser's own.
            timezone_id="Europe/Berlin",
        )
        context.set_default_timeout(30_000)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: script_errors.append(f"{page.url}: {exc}"))
        return page

    try:
        yield open_page
    finally:
        for context in contexts:
            context.close()
    # A script error is a failure even when the page still looked right.
    assert script_errors == [], script_errors


@pytest.fixture
def page(new_page: Callable[..., Any]) -> Any:
    return new_page()


@pytest.fixture
def shot(request: pytest.FixtureRequest) -> Callable[[Any, str], Path]:
    """shot(page, "step") saves var/screenshots/<test>-<step>.png (full page) and returns it."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    test = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)

    def take(page: Any, step: str) -> Path:
        path = SCREENSHOTS / f"{test}-{step}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture
def admin(transactional_db: None, admin_user: Any) -> Any:
    return admin_user


@pytest.fixture
def viewer(transactional_db: None, viewer_user: Any) -> Any:
    return viewer_user


@pytest.fixture
def admin_page(page: Any, admin: Any) -> Any:
    sign_in(page, "admin", ADMIN_PASSWORD)
    return page


@pytest.fixture
def viewer_page(page: Any, viewer: Any) -> Any:
    sign_in(page, "viewer", VIEWER_PASSWORD)
    return page
