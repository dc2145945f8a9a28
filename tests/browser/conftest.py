"""Browser tests: a real ASGI server (daphne) on the test database, Debian's Chromium headless.

The server is a subprocess that shares the pytest-django test database (an SQLite file, or the
PostgreSQL test database) and the control Redis of tests/plugin.py; tests that use it need
committed rows, hence `transactional_db` (the `admin`/`viewer` fixtures below bring it).
"""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
from django.conf import settings

from tests.conftest import ADMIN_PASSWORD, REPO, VIEWER_PASSWORD, _worker_env
from tests.support.wait import wait_for

T = TypeVar("T")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = REPO / "var" / "screenshots"
WIDE = {"width": 1280, "height": 800}
NARROW = {"width": 420, "height": 860}


class LiveServer:
    """`daphne console.asgi:application` on a port of its own; restartable on the same port."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LiveServer:
        # The listening socket is made here and handed over, so no other process can take the
        # port between choosing it and daphne binding it (also across a restart).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(128)
        self.port = sock.getsockname()[1]
        # The server keeps Django's async-safety guard (see _orm_beside_playwright).
        env = {k: v for k, v in self.env.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "daphne",
                    "--fd",
                    str(sock.fileno()),
                    "--access-log",
                    "-",
                    "console.asgi:application",
                ],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=[sock.fileno()],
            )
        sock.close()
        wait_for(self._answers, what=f"daphne to answer on {self.url} (see {self.log_path})")
        return self

    def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"daphne exited with {self.proc.returncode}; see {self.log_path}")
        try:
            with urllib.request.urlopen(f"{self.url}/login/", timeout=5) as response:  # noqa: S310
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        """SIGTERM by PID, SIGKILL if it does not go."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


@pytest.fixture(scope="session")
def live_server_env(django_db_setup: None, django_db_blocker: Any) -> dict[str, str]:
    with django_db_blocker.unblock():
        return _worker_env()


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


def off_loop(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run `fn` in a thread of its own: async_to_sync (channel layer sends, broadcasts) refuses
    to run in a thread whose event loop is marked running, as Playwright's is."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn, *args, **kwargs).result()


# Package scope: the Playwright loop must be gone before tests outside tests/browser run.
@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


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


def sign_in(page: Any, username: str, password: str) -> None:
    """Through the sign-in form, as a person would."""
    page.goto("/login/")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/databases/$"))


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
