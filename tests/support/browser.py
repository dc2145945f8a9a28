"""What the browser tests share: the console's ASGI server as a child process, Chromium's
options, running ORM calls off Playwright's event loop, signing in."""

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

from tests.support.wait import wait_for
from tests.support.workers import REPO

T = TypeVar("T")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = REPO / "var" / "screenshots"
WIDE = {"width": 1280, "height": 800}
NARROW = {"width": 420, "height": 860}


class LiveServer:
    """`daphne config.asgi:application` on a port of its own; restartable on the same port."""

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
                    "config.asgi:application",
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
        return console_answers(self.url, self.proc, self.log_path)

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


def console_answers(url: str, proc: subprocess.Popen[bytes], log: Path) -> bool:
    """True once the console at `url` serves its sign-in page; raises if `proc` has exited."""
    if proc.poll() is not None:
        raise RuntimeError(f"the console exited with {proc.returncode}; see {log}")
    try:
        with urllib.request.urlopen(f"{url}/login/", timeout=5) as response:  # noqa: S310
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def off_loop(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run `fn` in a thread of its own: async_to_sync (channel layer sends, broadcasts) refuses
    to run in a thread whose event loop is marked running, as Playwright's is."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn, *args, **kwargs).result()


# Package scope: the Playwright loop must be gone before tests outside tests/browser run.


def sign_in(page: Any, username: str, password: str) -> None:
    """Through the sign-in form, as a person would."""
    page.goto("/login/")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/databases/$"))


@contextlib.contextmanager
def chromium_browser() -> Iterator[Any]:
    """Debian's Chromium, headless, through Playwright's sync API."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def add_external_source(page: Any, *, url: str, server_cert: str = "") -> None:
    """Database → Edit: + Add source database, External, the URL (with TLS and the source
    cluster's certificate when `server_cert` is given), Add source; the dialog closes."""
    page.get_by_role("button", name="+ Add source database").click()
    dialog = page.get_by_role("dialog", name="Connect a Replica Of source database")
    dialog.get_by_label("External").check()
    dialog.get_by_label("Source URL").fill(url)
    if server_cert:
        dialog.get_by_label("TLS").check()
        dialog.get_by_label("Source cluster's certificate (PEM)").fill(server_cert)
    dialog.get_by_role("button", name="Add source").click()
    dialog.wait_for(state="hidden")


def save_and_flush(page: Any) -> str:
    """Database → Edit: Save, and confirm the flush; returns what the confirmation said."""
    page.get_by_role("button", name="Save").click()
    confirm = page.get_by_role("dialog", name="Save and flush?")
    message = str(confirm.locator("p").inner_text())
    confirm.get_by_role("button", name="Save and flush").click()
    return message


def wait_source_synced(page: Any, *, timeout: float = 60.0) -> Any:
    """The database page's first source shows Synced; returns its row."""
    row = page.locator("[data-replica-panel] li.source").first
    wait_for(
        lambda: row.locator("[data-source-status]").inner_text() == "Synced",
        what="the source to show Synced",
        timeout=timeout,
    )
    return row
