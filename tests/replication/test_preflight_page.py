"""Database → Edit runs the pre-flight before Save: a failure refuses it with the lines and the
fix, the override saves it (audited). Real worker and databases."""

from __future__ import annotations

import pytest
from django.urls import reverse

from console.models import AuditEntry
from tests.support.databases import create_active
from tests.support.pages import edit_data

from .test_sync_jobs import admin, make_replica

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MB = 1024 * 1024


def test_edit_refuses_a_failed_preflight_unless_overridden(admin_api, admin_client, live_worker):
    a = create_active(admin_api, name="a", memory_size=64 * MB)
    b = create_active(admin_api, name="b", memory_size=2 * MB)
    admin(a).mset({f"k:{i}": "x" * 1000 for i in range(4000)})
    url = reverse("database-edit", kwargs={"uid": b.pk})
    rows = [{"database": a.pk, "name": "a"}]
    refused = admin_client.post(url, edit_data(rows, confirm_flush="on", memory_mb=2))
    assert refused.status_code == 200
    (error,) = refused.context["replica_form"].errors["sources"]
    assert error.startswith("pre-flight failed:") and "cannot fit" in error, error
    assert "raise the destination's memory limit" in error
    assert b"Save even though the pre-flight failed (audited)" in refused.content
    # The lines themselves, with their level and fix, are on the page.
    assert b'data-preflight-level="fail"' in refused.content
    assert b"raise the destination&#x27;s memory limit" in refused.content
    assert not b.replica_sources.exists()
    saved = admin_client.post(
        url, edit_data(rows, confirm_flush="on", memory_mb=2, preflight_override="on")
    )
    assert saved.status_code == 302, saved.context and saved.context["replica_form"].errors
    assert [s.source_database_id for s in b.replica_sources.all()] == [a.pk]
    entry = AuditEntry.objects.get(action="replica_sources.preflight_override", object_id=b.pk)
    assert entry.actor_name == "admin" and "cannot fit" in entry.detail


def test_run_preflight_from_the_database_page(admin_api, admin_client, viewer_client, live_worker):
    a = create_active(admin_api, name="a")
    b = create_active(admin_api, name="b")
    admin(a).set("k", "v")
    page = admin_client.get(reverse("database-detail", kwargs={"uid": b.pk}))
    assert b"Migrate with Replica Of" in page.content
    assert b"Run pre-flight" not in page.content  # no sources yet
    make_replica(admin_api, b, a)
    page = admin_client.get(reverse("database-detail", kwargs={"uid": b.pk}))
    assert b"Run pre-flight" in page.content

    url = reverse("replica-preflight", kwargs={"uid": b.pk})
    assert viewer_client.post(url).status_code == 403
    shown = admin_client.post(url)
    assert shown.status_code == 200
    assert b"Pre-flight passed." in shown.content
    assert b'data-preflight-level="pass"' in shown.content and b"reachable" in shown.content
    assert b"RESTORE payloads apply as they are" in shown.content
    assert a.internal_password.encode() not in shown.content
