"""The guided migration in Chromium (issue 14): "Migrate with Replica Of" from the database page,
pre-flight lines, the flush confirmed, Synchronization complete, writes on the source paused
(a write issued during the pause waits and succeeds after it) and resumed, verify clean, Replica
Of removed, the destination writable and accepting the application's writes, an audit entry for
each step. Real workers, sync job, verify task, redis-servers and Chromium."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import redis

from console.models import AuditEntry
from replication.models import Cutover, CutoverStep
from tests.support.browser import off_loop
from tests.support.databases import create_active
from tests.support.wait import wait_for

from .test_stop_and_remove import _admin, _api, _app_writes

pytestmark = [pytest.mark.slow, pytest.mark.integration]


class Writer(threading.Thread):
    """Writes to the source as fast as it can, in pipelines of 200 SETs of 1 KB (so that the
    destination always has a little to catch up and the drain takes a few milliseconds), keeping
    the start and end time of every pipeline."""

    def __init__(self, port: int, password: str) -> None:
        super().__init__(daemon=True)
        self.client = redis.Redis(port=port, username="admin", password=password)
        self.stop = threading.Event()
        self.writes: list[tuple[float, float]] = []
        self.errors: list[str] = []

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            start = time.time()
            try:
                pipe = self.client.pipeline(transaction=False)
                for i in range(200):
                    pipe.set(f"w:{n}:{i}", b"x" * 1024)
                pipe.execute()
            except redis.RedisError as exc:
                self.errors.append(type(exc).__name__)
                return
            self.writes.append((start, time.time()))
            n += 1


def test_migrate_with_replica_of_in_the_browser(
    live_worker: Any, admin_page: Any, shot: Any
) -> None:
    page = admin_page
    a = off_loop(create_active, _api(), name="alpha")
    b = off_loop(create_active, _api(), name="bravo", authentication_redis_pass="app-pass-2")
    _admin(a).mset({f"k{i}": i for i in range(3000)})

    page.goto(f"/databases/{b.pk}/")
    page.get_by_role("link", name="Migrate with Replica Of").click()
    page.get_by_label("Migrate from").select_option(label=f"alpha ({a.host}:{a.port})")
    page.get_by_label("Pause writes on the sources for at most (ms, 0: no pause)").fill("4000")
    with page.expect_navigation():
        page.get_by_role("button", name="Start the migration").click()

    # 1. pre-flight, then 2. the flush is asked for (the page reloads itself as steps advance).
    flush = page.get_by_role("button", name="Flush bravo and start the full sync")
    flush.wait_for(timeout=60_000)
    lines = page.locator("[data-preflight-lines]")
    assert "PASS" in lines.inner_text() and "reachable" in lines.inner_text()
    shot(page, "confirm-flush")
    page.get_by_label("All data of bravo is deleted, then loaded from the sources").check()
    with page.expect_navigation():
        flush.click()

    # 3. full sync, 4. Synchronization complete.
    cut = page.get_by_role("button", name="Cut over: drain, verify, remove Replica Of")
    cut.wait_for(timeout=120_000)
    assert "Synchronization complete" in page.locator("[data-cutover-actions]").inner_text()
    assert "3000 keys on bravo" in page.locator("[data-cutover-progress-text]").inner_text()
    shot(page, "sync-complete")

    # 5. pause and drain while something writes to the source, then verify.
    writer = Writer(a.port, a.internal_password)
    writer.start()
    wait_for(lambda: len(writer.writes) > 50, what="writes flowing to alpha")
    with page.expect_navigation():
        cut.click()

    def drained() -> Cutover | None:
        row = Cutover.objects.get(destination=b)
        done = (CutoverStep.VERIFY, CutoverStep.STOP, CutoverStep.DONE)
        return row if row.step in done else None

    row = wait_for(drained, what="the drain to end")
    time.sleep(0.3)  # writes after the pause too
    writer.stop.set()
    writer.join(10)
    assert not writer.errors, writer.errors
    effective, unpause = row.drain["pause_effective_at"], row.drain["unpause_sent_at"]
    window = unpause - effective
    # Nothing the writer sent was answered while the pause held (50 ms of grace for a reply
    # already on its way when the pause took effect, seen late by a busy thread) ...
    grace = 0.05
    answered = [(s, e) for s, e in writer.writes if effective + grace < e < unpause]
    assert not answered, (window, answered)
    # ... the pipeline in flight at the UNPAUSE (the writer never idles, so it was sent at
    # the latest when the pause took effect) waited for it, then succeeded ...
    (held,) = [(s, e) for s, e in writer.writes if s < unpause <= e]
    assert held[1] - held[0] >= window - grace, (window, held)
    # ... and writes went on after it.
    assert any(s > unpause for s, _ in writer.writes)

    # 6. Replica Of removed, 7. the connection details.
    done = page.locator("[data-cutover-done]")
    done.wait_for(timeout=180_000)
    assert "bravo is writable" in done.inner_text()
    assert "Equal" in page.locator("[data-cutover-verify]").inner_text()
    details = page.locator("[data-cutover-connection]").inner_text()
    assert f"{b.port}" in details and "default" in details and "app-pass-2" not in details
    shot(page, "done")

    # The destination is writable for the application (the `default` user), its data kept.
    assert _app_writes(b)
    app = redis.Redis(port=b.port, password="app-pass-2")
    app.set("app-key", "accepted")
    assert app.get("app-key") == b"accepted" and app.get("k2999") == b"2999"
    assert app.get("w:0:0") == b"x" * 1024
    assert not b.replica_sources.exists()

    # The page survives a reload: the same finished migration.
    page.reload()
    assert "bravo is writable" in page.locator("[data-cutover-done]").inner_text()

    actions = set(AuditEntry.objects.filter(object_id=b.pk).values_list("action", flat=True))
    for step in ("start", "confirm_flush", "full_sync", "sync_complete", "drain", "verify"):
        assert f"replica_migrate.{step}" in actions, (step, actions)
    assert {"replica_migrate.stop", "replica_migrate.done"} <= actions, actions
