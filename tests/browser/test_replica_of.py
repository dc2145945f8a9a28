"""The Replica Of pages in the browser, against real workers, sync jobs and redis-servers
(issue 5, browser tests 1 to 5)."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings

from console import services
from console.models import AuditEntry, Certificate, Database, DatabaseStatus
from replication.models import ReplicaSource
from replication.syncer.checkpoint import CHECKPOINT_KEY, EPOCH_KEY
from tests.support.browser import NARROW, off_loop, sign_in
from tests.support.personas import VIEWER_PASSWORD
from tests.support.wait import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.integration]

MB = 1024 * 1024
KEYS = 150_000  # enough for a full sync that is seen while it runs


def database_named(name: str) -> Database:
    return Database.objects.get(name=name)


def admin_client(database: Database) -> redis.Redis:
    database.refresh_from_db()
    return redis.Redis(port=database.port, username="admin", password=database.internal_password)


def create_through_the_page(page: Any, name: str) -> Database:
    page.goto("/databases/")
    page.get_by_role("link", name="Create database").click()
    page.get_by_label("Name").fill(name)
    page.get_by_role("button", name="Create").click()
    page.get_by_role("heading", name=name).wait_for()
    # The page refreshes itself while the node starts the process.
    page.locator("h1 .badge", has_text="Active").wait_for(timeout=120_000)
    return database_named(name)


def source_row(page: Any) -> Any:
    return page.locator("[data-replica-panel] li.source").first


def row_status(page: Any) -> str:
    return str(source_row(page).locator("[data-source-status]").inner_text())


def watch(page: Any) -> None:
    """Mark the document (a reload would lose the mark) and record every source status."""
    page.evaluate(
        """() => { window.__sameDocument = true; window.__seen = []; window.__details = [];
           document.addEventListener("live:status", (e) => {
             e.detail.sources.forEach((s) => window.__seen.push(e.detail.replica_sync === "enabled"
               ? s.status : e.detail.replica_sync));
             document.querySelectorAll("[data-source-detail]").forEach(
               (el) => window.__details.push(el.textContent));
           }); }"""
    )


def seen(page: Any) -> list[str]:
    return list(page.evaluate("window.__seen || []"))


def details(page: Any) -> list[str]:
    """The detail texts the source row showed after each status (as rendered)."""
    return list(page.evaluate("window.__details || []"))


def not_reloaded(page: Any) -> bool:
    return bool(page.evaluate("window.__sameDocument === true"))


def chart_points(page: Any, index: int) -> int:
    line = source_row(page).locator(".chart-line").nth(index)
    return int(line.get_attribute("data-points") or 0)


def test_replica_of_from_the_console(
    live_worker: Any, new_page: Any, admin: Any, shot: Any
) -> None:
    page = new_page()
    sign_in(page, "admin", "admin-test-password-1")

    # 1. Two databases made through the pages; A holds data.
    a = create_through_the_page(page, "alpha")
    b = create_through_the_page(page, "bravo")
    with admin_client(a) as client:
        for start in range(0, KEYS, 10_000):
            client.mset({f"key:{i}": f"value-{i:08d}" * 6 for i in range(start, start + 10_000)})
    shot(page, "created")

    # B's page in a second tab, opened before anything changes: it must follow without reloading.
    watcher = new_page()
    sign_in(watcher, "admin", "admin-test-password-1")
    watcher.goto(f"/databases/{b.pk}/")
    watcher.locator("[data-live-indicator][data-state=live]").wait_for()
    watch(watcher)

    page.goto(f"/databases/{b.pk}/")
    page.get_by_role("link", name="Edit", exact=True).click()
    page.get_by_role("group", name="Replica Of").wait_for()
    page.get_by_role("button", name="+ Add source database").click()
    dialog = page.get_by_role("dialog", name="Connect a Replica Of source database")
    dialog.get_by_label("Current cluster").check()
    # B itself is there but cannot be chosen, with the reason.
    own = dialog.locator("label.candidate", has_text="bravo")
    assert own.get_by_role("radio").is_disabled()
    assert "cannot be a source of itself" in own.inner_text()
    dialog.get_by_role("radio", name=re.compile("alpha")).check()
    shot(page, "add-source-dialog")
    dialog.get_by_role("button", name="Add source").click()
    dialog.wait_for(state="hidden")
    page.locator("[data-replica-edit] li.source", has_text="alpha").wait_for()
    assert not ReplicaSource.objects.filter(destination=b).exists()  # nothing saved before Save
    shot(page, "source-added")
    page.get_by_role("button", name="Save").click()
    confirm = page.get_by_role("dialog", name="Save and flush?")
    assert "flushes it" in confirm.inner_text()
    shot(page, "confirm-flush")
    confirm.get_by_role("button", name="Save and flush").click()
    page.wait_for_url(f"**/databases/{b.pk}/")
    assert ReplicaSource.objects.filter(destination=b, source_database=a).exists()

    # The second tab: Syncing (with progress), then Synced, no reload; the charts draw points.
    source_row(watcher).wait_for()
    wait_for(lambda: row_status(watcher) == "Synced", what="B's source row to show Synced")
    assert "syncing" in seen(watcher) and seen(watcher)[-1] == "in-sync", seen(watcher)
    assert not_reloaded(watcher)
    # The first in-sync push may come before the first lag sample (no figure yet).
    wait_for(
        lambda: re.search(r"lag \d+ ms", source_row(watcher).inner_text()),
        what="a lag figure in B's source row",
    )
    wait_for(lambda: chart_points(watcher, 0) >= 2, what="the lag chart to draw points")
    wait_for(lambda: chart_points(watcher, 1) >= 2, what="the commands/s chart to draw points")
    assert watcher.locator("[data-replica-aggregate]").inner_text() == "Synced"
    shot(watcher, "synced")
    with admin_client(b) as client:
        # Everything of A, beside the syncer's own bookkeeping keys (checkpoint, epoch marker).
        assert client.dbsize() - client.exists(CHECKPOINT_KEY, EPOCH_KEY) == KEYS
    # The page's key count leaves the bookkeeping keys out.
    page.reload()
    assert page.locator("[data-key-count]").inner_text() == str(KEYS)

    # 2. Writes to A: "last update" advances (browser local time, Europe/Berlin here).
    def last_update() -> str:
        match = re.search(r"last update (\d\d:\d\d:\d\d)", source_row(watcher).inner_text())
        return match.group(1) if match else ""

    with admin_client(a) as client:
        for _ in range(2):
            before = last_update()

            def advanced(before: str = before) -> bool:
                client.incr("counter")
                return last_update() > before

            wait_for(advanced, what="B's last update to advance", interval=0.3)
    assert not_reloaded(watcher)
    shot(watcher, "last-update")

    # The source dies (kill -9): Reconnecting with the retry count; reconcile starts it again
    # (empty: no persistence) and B follows by itself.
    pidfile = Path(settings.DATA_DIR) / f"bdb-{a.pk}" / "shard-0" / "redis.pid"
    os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)
    wait_for(
        lambda: any(re.match(r"retry [1-9]", d) for d in details(watcher)),
        what="the row to show Reconnecting with its retry count",
    )
    assert "out-of-sync" in seen(watcher)
    shot(watcher, "reconnecting")
    wait_for(lambda: row_status(watcher) == "Synced", what="B to follow A again")
    assert seen(watcher).index("out-of-sync") < len(seen(watcher)) - 1
    assert not_reloaded(watcher)

    # 3. Stop → Sync stopped; Start (flushes, after a confirmation) → Syncing → Synced.
    page.goto(f"/databases/{b.pk}/")
    page.get_by_role("button", name="Stop").click()
    with page.expect_navigation():
        page.get_by_role("dialog").get_by_role("button", name="Stop").click()
    wait_for(lambda: row_status(page) == "Sync stopped", what="the row to show Sync stopped")
    wait_for(lambda: row_status(watcher) == "Sync stopped", what="the other tab to follow")
    shot(page, "stopped")
    page.get_by_role("button", name="Start").click()
    start = page.get_by_role("dialog")
    assert "flushes bravo" in start.inner_text()
    with page.expect_navigation():
        start.get_by_role("button", name="Flush and start").click()
    watch(page)
    wait_for(lambda: row_status(page) == "Synced", what="Synced again after Start")
    assert not_reloaded(page)
    wait_for(lambda: row_status(watcher) == "Synced", what="the other tab to follow")
    shot(page, "restarted")

    # Pause keeps the position; Resume goes on.
    with page.expect_navigation():
        page.get_by_role("button", name="Pause").click()
    wait_for(lambda: row_status(page) == "Paused", what="the row to show Paused")
    with page.expect_navigation():
        page.get_by_role("button", name="Resume").click()
    wait_for(lambda: row_status(page) == "Synced", what="Synced after Resume")

    # 4. A's source URL: copy it; regenerate the password; B stops with an authentication error.
    page.goto(f"/databases/{a.pk}/")
    page.get_by_role("button", name="Get Replica Of source URL").click()
    url_dialog = page.get_by_role("dialog", name=re.compile("Replica Of source URL"))
    url_field = url_dialog.get_by_label("Source URL")
    wait_for(lambda: url_field.input_value().startswith("redis://admin:"), what="the URL")
    a.refresh_from_db()
    assert url_field.input_value() == f"redis://admin:{a.internal_password}@127.0.0.1:{a.port}"
    url_dialog.get_by_role("button", name="Copy").click()
    assert page.evaluate("navigator.clipboard.readText()") == url_field.input_value()
    shot(page, "source-url")
    assert AuditEntry.objects.filter(action="database.replica_source_url", object_id=a.pk).exists()
    old_password = a.internal_password
    url_dialog.get_by_role("button", name="Regenerate password").click()
    assert "stop syncing" in url_dialog.inner_text()
    url_dialog.get_by_role("button", name="Yes, regenerate").click()
    url_dialog.get_by_text("Password regenerated").wait_for()
    a.refresh_from_db()
    assert a.internal_password != old_password
    assert url_field.input_value() == f"redis://admin:{a.internal_password}@127.0.0.1:{a.port}"
    shot(page, "regenerated")
    url_dialog.get_by_role("button", name="Close").click()

    wait_for(lambda: row_status(watcher) == "Sync stopped", what="B to stop on the old password")
    error = source_row(watcher).locator(".source-error")
    assert re.search(r"auth|password", error.inner_text(), re.IGNORECASE), error.inner_text()
    assert "Use the new password" in error.inner_text()
    assert watcher.locator("[data-replica-aggregate]").inner_text() == "Sync stopped"
    assert not_reloaded(watcher)
    shot(watcher, "auth-stopped")

    # The way out the page offers: sync again with the source's new password.
    error.get_by_role("button", name="Use the new password").click()
    with watcher.expect_navigation():
        watcher.get_by_role("dialog").get_by_role("button", name="Flush and sync").click()
    wait_for(lambda: row_status(watcher) == "Synced", what="Synced with the new password")
    shot(watcher, "resynced")


def test_bad_external_source_and_the_viewer(
    live_worker: Any, new_page: Any, admin: Any, viewer: Any, shot: Any
) -> None:
    source = off_loop(services.database_create, actor=admin, name="src", memory_size=32 * MB)
    dest = off_loop(services.database_create, actor=admin, name="dst", memory_size=32 * MB)
    for db in (source, dest):
        wait_for(
            lambda db=db: Database.objects.get(pk=db.pk).status == DatabaseStatus.ACTIVE,
            what=f"{db.name} to become active",
        )
    page = new_page()
    sign_in(page, "admin", "admin-test-password-1")

    # 5. A malformed external URL: the error sits under the URL field, nothing is saved.
    page.goto(f"/databases/{dest.pk}/edit/")
    page.get_by_role("button", name="+ Add source database").click()
    dialog = page.get_by_role("dialog", name="Connect a Replica Of source database")
    dialog.get_by_label("External").check()
    url = dialog.get_by_label("Source URL")
    assert "redis://" in dialog.inner_text()  # the format hints
    # TLS reveals the certificate (pasted, or read from a chosen file) and the SNI field.
    assert dialog.get_by_label("Server name (SNI)").is_hidden()
    dialog.get_by_label("TLS").check()
    pem = Certificate.objects.get(kind="proxy").certificate_pem
    dialog.get_by_label("Or choose the certificate file").set_input_files(
        files=[{"name": "proxy.pem", "mimeType": "text/plain", "buffer": pem.encode()}]
    )
    certificate = dialog.get_by_label("Source cluster's certificate (PEM)")
    wait_for(lambda: certificate.input_value() == pem, what="the file in the certificate box")
    dialog.get_by_label("Server name (SNI)").fill("src.example")
    shot(page, "tls")
    dialog.get_by_label("TLS").uncheck()
    assert dialog.get_by_label("Server name (SNI)").is_hidden()
    url.fill("redis//no-scheme:6379")
    dialog.get_by_role("button", name="Add source").click()
    field = dialog.locator(".field.has-error").filter(has=page.get_by_label("Source URL"))
    field.locator(".field-error").wait_for()
    message = field.locator(".field-error").inner_text()
    assert message.strip(), "an error message under the URL field"
    shot(page, "malformed-url")

    # A URL in the right shape that no server answers: refused with the reason, inline too.
    url.fill("redis://:secret@127.0.0.1:1")
    dialog.get_by_role("button", name="Add source").click()
    dialog.get_by_text("cannot connect to 127.0.0.1:1").wait_for()
    shot(page, "unreachable-url")
    # Escape closes the dialog; the focus goes back to the button that opened it.
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")
    adder = page.get_by_role("button", name="+ Add source database")
    assert adder.evaluate("(el) => el === document.activeElement")

    # With compression the check goes through the source host's sync gateway (the default port,
    # where no gateway of this test listens): refused in words. Without, the reachable external
    # URL joins the list; Remove takes it out again.
    source.refresh_from_db()
    adder.click()
    dialog.get_by_label("External").check()
    url.fill(f"redis://admin:{source.internal_password}@127.0.0.1:{source.port}")
    dialog.get_by_label("Compression").check()
    dialog.get_by_role("button", name="Add source").click()
    refusal = dialog.get_by_text(
        re.compile(r"sync gateway.*127\.0\.0\.1:9443|127\.0\.0\.1:9443.*sync gateway")
    )
    refusal.wait_for()
    assert source.internal_password not in dialog.inner_text()
    shot(page, "no-gateway")
    dialog.get_by_label("Compression").uncheck()
    dialog.get_by_role("button", name="Add source").click()
    dialog.wait_for(state="hidden")
    row = page.locator("[data-replica-edit] li.source").first
    assert "external" in row.inner_text() and "compressed" not in row.inner_text()
    assert source.internal_password not in row.inner_text()  # shown redacted
    shot(page, "external-added")
    row.get_by_role("button", name=re.compile("Remove source")).click()
    assert page.locator("[data-replica-edit] li.source").count() == 0
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(f"**/databases/{dest.pk}/")
    assert not ReplicaSource.objects.filter(destination=dest).exists()

    # Make it a replica (through the same dialog) for the viewer to look at.
    page.goto(f"/databases/{dest.pk}/edit/")
    page.get_by_role("button", name="+ Add source database").click()
    dialog.get_by_role("radio", name=re.compile("^src")).check()
    dialog.get_by_role("button", name="Add source").click()
    dialog.wait_for(state="hidden")
    page.get_by_role("button", name="Save").click()
    page.get_by_role("dialog", name="Save and flush?").get_by_role(
        "button", name="Save and flush"
    ).click()
    page.wait_for_url(f"**/databases/{dest.pk}/")

    viewer_page = new_page()
    sign_in(viewer_page, "viewer", VIEWER_PASSWORD)
    viewer_page.goto("/databases/")
    badge = viewer_page.locator("[data-replica-badge]")
    wait_for(
        lambda: "Synced" in badge.nth(0).inner_text() + badge.nth(1).inner_text(),
        what="the list's Replica Of badge to show Synced",
    )
    assert "Source of 1" in badge.nth(1).inner_text() + badge.nth(0).inner_text()
    shot(viewer_page, "viewer-list")
    source.refresh_from_db()
    for db in (dest, source):
        viewer_page.goto(f"/databases/{db.pk}/")
        viewer_page.locator("[data-live-indicator][data-state=live]").wait_for()
        if db == dest:
            wait_for(lambda: row_status(viewer_page) == "Synced", what="the viewer's row")
        for name in ("Edit", "Delete", "Stop", "Restart", "Pause", "Get Replica Of source URL"):
            assert viewer_page.get_by_role("button", name=name, exact=True).count() == 0, name
            assert viewer_page.get_by_role("link", name=name, exact=True).count() == 0, name
        assert source.internal_password not in viewer_page.content()
        shot(viewer_page, f"viewer-{db.name}")
    # Narrow window: the Replica Of panel stays readable (no sideways scrolling).
    narrow = new_page(NARROW)
    sign_in(narrow, "viewer", VIEWER_PASSWORD)
    narrow.goto(f"/databases/{dest.pk}/")
    wait_for(lambda: row_status(narrow) == "Synced", what="the narrow page's row")
    assert not narrow.evaluate("document.documentElement.scrollWidth > window.innerWidth + 1")
    shot(narrow, "viewer-narrow")
    # The admin's edit page and its dialog, narrow.
    narrow_admin = new_page(NARROW)
    sign_in(narrow_admin, "admin", "admin-test-password-1")
    narrow_admin.goto(f"/databases/{dest.pk}/edit/")
    narrow_admin.get_by_role("button", name="+ Add source database").click()
    narrow_admin.get_by_role("dialog").get_by_label("External").check()
    assert not narrow_admin.evaluate("document.documentElement.scrollWidth > window.innerWidth + 1")
    shot(narrow_admin, "edit-dialog-narrow")
    # Asking for the URL directly is refused.
    response = viewer_page.request.post(
        f"/databases/{source.pk}/source-url/",
        headers={"X-CSRFToken": viewer_page.context.cookies()[0]["value"]},
    )
    assert response.status == 403
    assert source.internal_password not in response.text()
