"""What Stop and removing the last source say, and that they do exactly that (issue 14): Stop
keeps the destination read-only ("Sync stopped"), removing Replica Of keeps the data and makes it
writable. Real workers, sync job, redis-servers and Chromium."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from rest_framework.test import APIClient

from console.models import Database
from replication.syncer.checkpoint import is_bookkeeping_key
from tests.support.browser import off_loop
from tests.support.databases import create_active
from tests.support.load import caught_up
from tests.support.personas import ADMIN_PASSWORD, basic_auth
from tests.support.wait import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def _api() -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=basic_auth("admin", ADMIN_PASSWORD))
    return client


def _bdb(uid: int) -> dict[str, Any]:
    body: dict[str, Any] = off_loop(lambda: _api().get(f"/v1/bdbs/{uid}").json())
    return body


def _admin(db: Database) -> redis.Redis:
    db.refresh_from_db()
    return redis.Redis(port=db.port, username="admin", password=db.internal_password)


def _app_writes(db: Database) -> bool:
    """True when the application user may write (the write is undone)."""
    client = redis.Redis(port=db.port, password=db.password or None)
    try:
        client.set("app-write", "x")
    except redis.exceptions.NoPermissionError:
        return False
    finally:
        client.close()
    _admin(db).delete("app-write")
    return True


def synced_pair(data: dict[str, Any], **bravo: Any) -> tuple[Database, Database]:
    """Databases alpha (holding `data`) and bravo, a replica of alpha in sync with it."""
    a = off_loop(create_active, _api(), name="alpha")
    b = off_loop(create_active, _api(), name="bravo", **bravo)
    _admin(a).mset(data)
    resp = off_loop(
        lambda: _api().put(
            f"/v1/bdbs/{b.pk}", {"replica_sources": [{"bdb_uid": a.pk}]}, format="json"
        )
    )
    assert resp.status_code == 200, resp.content
    wait_for(
        lambda: [s["status"] for s in _bdb(b.pk)["replica_sources"]] == ["in-sync"],
        what="bravo in sync",
    )
    caught_up(_admin(a), _admin(b))
    return a, b


def test_stop_keeps_read_only_and_removing_replica_of_keeps_the_data_writable(
    live_worker: Any, admin_page: Any, shot: Any
) -> None:
    page = admin_page
    _, b = synced_pair({f"k{i}": i for i in range(1000)}, authentication_redis_pass="app-pass-1")
    wait_for(lambda: not _app_writes(b), what="bravo read-only for applications")

    # Stop: the dialog says it stays read-only, and it does.
    page.goto(f"/databases/{b.pk}/")
    page.get_by_role("button", name="Stop").click()
    dialog = page.get_by_role("dialog")
    text = dialog.inner_text()
    assert "stays read-only for applications" in text, text
    assert "becomes writable" not in text, text
    shot(page, "stop-confirm")
    with page.expect_navigation():
        dialog.get_by_role("button", name="Stop").click()
    wait_for(lambda: _bdb(b.pk)["replica_sync"] == "stopped", what="bravo stopped")
    assert [s["status"] for s in _bdb(b.pk)["replica_sources"]] == ["out-of-sync"]
    assert not _app_writes(b)
    # Still so once the job has ended and saved its last status.
    from replication import control

    wait_for(lambda: not control.lock_held(b.pk), what="the sync job to end")
    assert [s["status"] for s in _bdb(b.pk)["replica_sources"]] == ["out-of-sync"]
    assert not _app_writes(b)

    # Remove the last source: the dialog says the data is kept and it becomes writable.
    page.get_by_role("link", name="Edit", exact=True).click()
    page.get_by_role("button", name="Remove source alpha").click()
    page.get_by_role("button", name="Save").click()
    confirm = page.get_by_role("dialog", name="Remove Replica Of?")
    text = confirm.inner_text()
    assert "its data is kept" in text and "becomes writable" in text, text
    assert "keeps no data" not in text and "flushes" not in text, text
    shot(page, "remove-confirm")
    with page.expect_navigation():
        confirm.get_by_role("button", name="Remove Replica Of").click()
    wait_for(lambda: _bdb(b.pk)["replica_sync"] == "disabled", what="bravo no longer a replica")
    wait_for(lambda: _app_writes(b), what="bravo writable for applications")
    assert _admin(b).get("k999") == b"999"
    keys = [k for k in _admin(b).scan_iter(count=1000) if not is_bookkeeping_key(k)]
    assert len(keys) == 1000
