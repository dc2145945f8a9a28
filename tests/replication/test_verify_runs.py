"""Verify through the REST API: a real sync job, a real verify task on queue `sync`, real servers
(issue 14: equal copy, four changes behind the syncer's back, cancel, refusals, audit)."""

from __future__ import annotations

from typing import Any

import pytest

from console.models import AuditEntry, Database
from tests.support.databases import create_active
from tests.support.load import caught_up, populate
from tests.support.wait import wait_for

from .test_sync_jobs import admin, make_replica, wait_status

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def verify(api: Any, db: Database, **body: Any) -> dict[str, Any]:
    resp = api.post(f"/v1/bdbs/{db.pk}/actions/replica_verify", body, format="json")
    assert resp.status_code == 202, resp.content
    run: dict[str, Any] = resp.json()
    assert run["state"] == "queued"
    return run


def runs(api: Any, db: Database) -> list[dict[str, Any]]:
    resp = api.get(f"/v1/bdbs/{db.pk}/replica_verify")
    assert resp.status_code == 200, resp.content
    body: list[dict[str, Any]] = resp.json()
    return body


def ended(api: Any, db: Database, uid: int) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        run = next(r for r in runs(api, db) if r["uid"] == uid)
        return run if run["state"] not in ("queued", "running") else None

    return wait_for(check, what=f"verify {uid} to end", timeout=180)


def test_verify_equal_then_four_changes_then_cancel(admin_api, viewer_api, live_worker):
    a = create_active(admin_api, name="a")
    b = create_active(admin_api, name="b")
    populate(admin(a), 2000, ttl_every=1000)  # k:0 and k:1000 expire, nothing else
    make_replica(admin_api, b, a)
    wait_status(admin_api, b, "in-sync")
    caught_up(admin(a), admin(b))

    first = ended(admin_api, b, verify(admin_api, b)["uid"])
    assert first["state"] == "done", first
    assert first["result"]["differences"] == 0, first["result"]
    assert first["result"]["totals"]["equal"] == 2000
    assert first["progress"] == 100.0 and first["actor"] == "admin"
    assert first["result"]["sources"][0]["source"] == f"redis://admin:***@127.0.0.1:{a.port}"
    assert a.internal_password not in str(first)

    # Behind the syncer's back, as admin on the destination: change, delete, add, a TTL.
    dst = admin(b)
    dst.set("k:1", "changed")
    dst.delete("k:2")
    dst.set("added", "1")
    dst.expire("k:3", 5000)
    second = ended(admin_api, b, verify(admin_api, b, ttl_tolerance_ms=500)["uid"])
    result = second["result"]
    assert result["sources"][0]["samples"] == {
        "different": ["k:1"],
        "missing": ["k:2"],
        "ttl_off": ["k:3"],
    }
    assert result["extra_samples"] == ["added"]
    assert result["differences"] == 4
    assert second["ttl_tolerance_ms"] == 500

    # Rate-limited, then cancelled: it ends as cancelled, without a result.
    third = verify(admin_api, b, rate=20)
    wait_for(
        lambda: (
            next(r for r in runs(admin_api, b) if r["uid"] == third["uid"])["state"] == "running"
        ),
        what="the slow verify running",
    )
    refused = admin_api.post(f"/v1/bdbs/{b.pk}/actions/replica_verify", {}, format="json")
    assert refused.status_code == 400 and "already running" in str(refused.json())
    resp = admin_api.post(f"/v1/bdbs/{b.pk}/actions/replica_verify_cancel")
    assert resp.status_code == 200 and resp.json()["cancel_requested"] is True
    cancelled = ended(admin_api, b, third["uid"])
    assert cancelled["state"] == "cancelled" and cancelled["result"] == {}

    assert [r["uid"] for r in runs(viewer_api, b)] == [third["uid"], second["uid"], first["uid"]]
    actions = list(
        AuditEntry.objects.filter(object_id=b.pk, action__startswith="replica_verify.")
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == [
        "replica_verify.start",
        "replica_verify.done",
        "replica_verify.start",
        "replica_verify.done",
        "replica_verify.start",
        "replica_verify.cancel",
        "replica_verify.cancelled",
    ]
    done = (
        AuditEntry.objects.filter(object_id=b.pk, action="replica_verify.done")
        .order_by("id")
        .last()
    )
    assert done is not None and "4 differences" in done.detail


def test_verify_refusals(admin_api, viewer_api, pair):
    _, b = pair
    url = f"/v1/bdbs/{b.pk}/actions/replica_verify"
    assert viewer_api.post(url, {}, format="json").status_code == 403
    resp = admin_api.post(url, {}, format="json")
    assert resp.status_code == 400 and "replica_sources" in resp.json()
    for body, field in (({"rate": 0}, "rate"), ({"ttl_tolerance_ms": "x"}, "ttl_tolerance_ms")):
        resp = admin_api.post(url, body, format="json")
        assert resp.status_code == 400 and field in resp.json(), resp.content
    resp = admin_api.post(f"/v1/bdbs/{b.pk}/actions/replica_verify_cancel")
    assert resp.status_code == 400
    assert admin_api.get(f"/v1/bdbs/{b.pk}/replica_verify").json() == []
    assert not AuditEntry.objects.filter(action__startswith="replica_verify.").exists()
