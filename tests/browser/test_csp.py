"""Every page under its Content-Security-Policy in Chromium: no violation on any main page and
dialog, and the live status still arrives over the WebSocket."""

from __future__ import annotations

import re
from typing import Any

import pytest

from console import services
from console.models import Database, User
from replication import selectors
from replication.live import status_push
from replication.services import replica_sources_set
from replication.sources import SourceInput
from tests.support.browser import off_loop, sign_in
from tests.support.pages import MB, activate
from tests.support.personas import ADMIN_PASSWORD
from tests.support.wait import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.integration]

# Recorded in every document of the context before its own scripts run.
LISTEN = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`);
});
"""


class Violations:
    """CSP violations of a page: its events, and what Chromium logs about refused content."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.found: list[str] = []
        page.context.add_init_script(LISTEN)
        page.on("console", self._console)

    def _console(self, message: Any) -> None:
        if "Content Security Policy" in message.text or "Refused to" in message.text:
            self.found.append(f"{self.page.url}: {message.text}")

    def visit(self, path: str) -> Any:
        response = self.page.goto(path)
        assert response is not None and response.status == 200, path
        policy = response.headers.get("content-security-policy", "")
        assert "script-src 'self'" in policy and "style-src 'self'" in policy, path
        assert "unsafe-inline" not in policy
        self.page.wait_for_load_state("networkidle")
        return response

    def collect(self) -> list[str]:
        events = self.page.evaluate("window.__csp || []")
        return [*self.found, *(f"{self.page.url}: {e}" for e in events)]


def _rows(admin: User) -> tuple[Database, Database]:
    a = activate(services.database_create(actor=admin, name="csp-a", memory_size=16 * MB))
    b = activate(services.database_create(actor=admin, name="csp-b", memory_size=16 * MB))
    replica_sources_set(actor=admin, destination=b, sources=[SourceInput(source_database_uid=a.pk)])
    activate(Database.objects.get(pk=b.pk))
    return a, b


def test_no_page_violates_the_policy_and_live_status_still_works(
    new_page: Any, admin: User, shot: Any
) -> None:
    a, b = off_loop(_rows, admin)
    page = new_page()
    watch = Violations(page)
    watch.visit("/login/")
    sign_in(page, "admin", ADMIN_PASSWORD)

    for path in (
        "/databases/",
        f"/databases/{a.pk}/",
        "/databases/new/",
        "/nodes/",
        "/cluster/",
        "/cluster/security/",
        "/cluster/security/certificates/proxy/replace/",
        "/audit/",
    ):
        watch.visit(path)
        assert watch.collect() == [], path

    # A destination: its panel draws charts; its dialogs and confirmations build markup.
    watch.visit(f"/databases/{b.pk}/")
    page.get_by_role("button", name="Stop").click()
    page.get_by_role("dialog").get_by_role("button", name="Cancel").click()
    page.get_by_role("button", name="Get Replica Of source URL").click()
    url_dialog = page.get_by_role("dialog", name=re.compile("Replica Of source URL"))
    wait_for(
        lambda: "redis://" in url_dialog.get_by_label("Source URL").input_value(),
        what="the source URL",
    )
    url_dialog.get_by_role("button", name="Close").click()
    assert watch.collect() == []

    watch.visit(f"/databases/{b.pk}/edit/")
    page.get_by_role("button", name="+ Add source database").click()
    dialog = page.get_by_role("dialog", name="Connect a Replica Of source database")
    dialog.get_by_role("radio", name="External").check()
    dialog.get_by_label("TLS").check()
    dialog.get_by_label("Source URL").fill("redis://127.0.0.1:1")
    dialog.get_by_role("button", name="Add source").click()
    dialog.get_by_text("cannot connect").wait_for()
    shot(page, "edit-dialog")
    dialog.get_by_role("button", name="Cancel").click()
    assert watch.collect() == []

    # The live status under the policy: the socket opens and a push changes the badge.
    watch.visit("/databases/")
    wait_for(
        lambda: page.locator("[data-live-indicator]").get_attribute("data-state") == "live",
        what="the page's socket to open",
    )
    badge = page.locator(f"[data-replica-badge][data-live-db='{a.pk}']")
    payload = {**off_loop(selectors.database_live_status, a), "destinations": 7}
    off_loop(status_push, a.pk, payload)
    wait_for(lambda: "Source of 7" in badge.inner_text(), what="the pushed status")
    assert watch.collect() == []
