"""Live status over the one WebSocket of a page: snapshots, pushes, who may listen, restarts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from console import services
from console.models import Database, DatabaseStatus
from replication import selectors
from replication.live import status_push
from tests.support.browser import LiveServer, off_loop, sign_in
from tests.support.personas import ADMIN_PASSWORD
from tests.support.wait import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.integration]

MB = 1024 * 1024


def _active(admin: Any, name: str) -> Database:
    database = off_loop(services.database_create, actor=admin, name=name, memory_size=16 * MB)
    wait_for(
        lambda: Database.objects.get(pk=database.pk).status == DatabaseStatus.ACTIVE,
        what=f"{name} to become active",
    )
    return database


def _push(database: Database, **changes: Any) -> None:
    """What a sync job sends to the group of a database (through the real channel layer)."""
    payload = {**selectors.database_live_status(database), **changes}
    off_loop(status_push, database.pk, payload)


def _indicator(page: Any) -> str:
    return str(page.locator("[data-live-indicator]").get_attribute("data-state") or "")


def test_pushes_reach_the_page_and_it_comes_back_after_a_restart(
    live_worker: Any, live_server_env: dict[str, str], new_page: Any, admin: Any, shot: Any
) -> None:
    one, two = _active(admin, "one"), _active(admin, "two")
    server = LiveServer(live_server_env, Path(settings.VAR_DIR) / "test-daphne-restart.log")
    server.start()
    try:
        page = new_page(server=server)
        sign_in(page, "admin", ADMIN_PASSWORD)
        page.evaluate("window.__sameDocument = true")
        wait_for(lambda: _indicator(page) == "live", what="the page's socket to open")
        badge = page.locator(f"[data-replica-badge][data-live-db='{one.pk}']")
        assert badge.inner_text().strip() == "—"

        # A push to the group of `one` changes its badge in place.
        _push(one, replica_sync="enabled", status="syncing", destinations=3)
        wait_for(lambda: "Syncing" in badge.inner_text(), what="the pushed status on the page")
        assert "Source of 3" in badge.inner_text()
        shot(page, "pushed")

        # The server goes away: the page says so, reconnects by itself, and the snapshot it gets
        # on reconnecting replaces what it showed (nothing was really syncing).
        server.stop()
        wait_for(lambda: _indicator(page) == "reconnecting", what="the page to notice")
        shot(page, "reconnecting")
        server.start()
        wait_for(lambda: _indicator(page) == "live", what="the page to reconnect")
        assert page.evaluate("document.documentElement.dataset.liveConnects") == "2"
        wait_for(lambda: badge.inner_text().strip() == "—", what="the snapshot after reconnecting")
        assert page.evaluate("window.__sameDocument === true")

        # One raw socket: unknown and malformed ids are ignored, snapshots come first (by uid),
        # then pushes of the groups joined.
        page.evaluate(
            f"""() => {{ window.__msgs = [];
                const ws = new WebSocket(`ws://${{location.host}}/ws/status/?db=999999&db=abc&db={two.pk}&db={one.pk}&db={two.pk}`);
                ws.onmessage = (e) => window.__msgs.push(JSON.parse(e.data)); }}"""
        )
        wait_for(lambda: len(page.evaluate("window.__msgs")) >= 2, what="the two snapshots")
        _push(two, status="in-sync", replica_sync="enabled")
        wait_for(lambda: len(page.evaluate("window.__msgs")) >= 3, what="the push")
        messages = page.evaluate("window.__msgs")
        assert [(m["kind"], m["database"]) for m in messages] == [
            ("status", one.pk),
            ("status", two.pk),
            ("status", two.pk),
        ]
        assert messages[0]["name"] == "one" and messages[0]["replica_sync"] == "disabled"
        assert [m.get("snapshot", False) for m in messages] == [True, True, False]
        assert messages[2]["status"] == "in-sync"
        assert "password" not in str(messages).lower()
    finally:
        server.stop()


def test_a_socket_without_a_session_is_closed_with_4401(page: Any, admin: Any) -> None:
    page.goto("/login/")
    code = page.evaluate(
        """() => new Promise((resolve) => {
             const ws = new WebSocket(`ws://${location.host}/ws/status/?db=1`);
             ws.onmessage = () => resolve("got a message");
             ws.onclose = (e) => resolve(e.code); })"""
    )
    assert code == 4401
