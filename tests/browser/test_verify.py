"""The Verify card of a database page in Chromium: start, progress with ETA, the result and its
sample keys, against a real sync job, verify task and redis-servers (issue 14)."""

from __future__ import annotations

from typing import Any

import pytest

from console.models import AuditEntry
from tests.support.wait import wait_for

from .test_stop_and_remove import _admin, synced_pair

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_verify_from_the_database_page(live_worker: Any, admin_page: Any, shot: Any) -> None:
    page = admin_page
    _, b = synced_pair({f"key:{i}": i for i in range(6000)})
    _admin(b).set("key:42", "changed behind the syncer's back")

    page.goto(f"/databases/{b.pk}/")
    card = page.locator("[data-verify]")
    card.get_by_label("Rate (keys/s, empty: unbounded)").fill("1000")
    with page.expect_navigation():
        card.get_by_role("button", name="Verify").click()
    # Rate-limited: the progress bar and the ETA are seen while it runs, without reloading.
    status = page.locator("[data-verify-text]")
    wait_for(lambda: " keys, about " in status.inner_text(), what="progress with an ETA")
    shot(page, "running")
    page.locator("[data-verify-runs] td", has_text="1 difference").wait_for(timeout=120_000)
    samples = page.locator("[data-verify-samples]")
    assert "different: key:42" in samples.inner_text()
    shot(page, "result")
    assert AuditEntry.objects.filter(object_id=b.pk, action="replica_verify.start").exists()
    assert AuditEntry.objects.filter(object_id=b.pk, action="replica_verify.done").exists()
