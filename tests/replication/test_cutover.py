"""The guided migration through the REST API (issue 14): its state machine in the console's
database survives the loss of its driver (the sync worker killed: reconcile queues a new driver,
which continues from the saved step), and refusals (a failing pre-flight, bad input). Real
workers, sync job, verify task and redis-servers."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from console.models import AuditEntry, Database
from replication.models import Cutover
from tests.support.databases import create_active
from tests.support.load import populate
from tests.support.wait import wait_for

from .test_sync_jobs import admin, app_user, put

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MB = 1024 * 1024


def migration(api: Any, db: Database) -> dict[str, Any]:
    resp = api.get(f"/v1/bdbs/{db.pk}/replica_migrate")
    assert resp.status_code == 200, resp.content
    body: dict[str, Any] = resp.json()
    return body


def step(api: Any, db: Database, action: str, **body: Any) -> dict[str, Any]:
    resp = api.post(
        f"/v1/bdbs/{db.pk}/actions/replica_migrate_step", {"action": action, **body}, format="json"
    )
    assert resp.status_code == 200, resp.content
    out: dict[str, Any] = resp.json()
    return out


def reached(api: Any, db: Database, at: str, state: str, timeout: float = 180) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        body = migration(api, db)
        if body["state"] == "failed" and state != "failed":
            raise AssertionError(f"the migration failed: {body['error']}")
        return body if (body["step"], body["state"]) == (at, state) else None

    return wait_for(check, what=f"the migration at {at} ({state})", timeout=timeout)


def test_the_migration_survives_the_loss_of_its_driver(admin_api, viewer_api, live_worker):
    a = create_active(admin_api, name="a")
    b = create_active(admin_api, name="b", authentication_redis_pass="app-secret-1")
    populate(admin(a), 5000)
    assert admin_api.get(f"/v1/bdbs/{b.pk}/replica_migrate").status_code == 404

    resp = admin_api.post(
        f"/v1/bdbs/{b.pk}/actions/replica_migrate",
        {"replica_sources": [{"bdb_uid": a.pk}], "pause_ms": 2000},
        format="json",
    )
    assert resp.status_code == 202, resp.content
    assert resp.json()["step"] == "preflight"
    # One at a time per destination; viewers may read, not start.
    again = admin_api.post(f"/v1/bdbs/{b.pk}/actions/replica_migrate", {}, format="json")
    assert again.status_code == 400, again.content
    assert viewer_api.post(f"/v1/bdbs/{b.pk}/actions/replica_migrate", {}).status_code == 403

    body = reached(admin_api, b, "confirm_flush", "waiting")
    assert not body["preflight"]["failed"] and body["preflight"]["checks"]
    assert not b.replica_sources.exists(), "nothing is set before the flush is confirmed"
    assert migration(viewer_api, b)["uid"] == body["uid"]

    # The full sync runs; Replica Of is paused so that the step cannot end while the driver is
    # lost (a paused sync is not "Synchronization complete").
    step(admin_api, b, "confirm_flush")
    assert put(admin_api, b, replica_sync="paused").status_code == 200

    def claimed() -> Cutover | None:
        row = Cutover.objects.get(pk=body["uid"])
        return row if row.lease_token else None

    row = wait_for(claimed, what="a driver claiming the full sync step")
    first_driver = row.lease_token
    live_worker.kill_sync()
    live_worker.start_sync()
    # The lease expires, reconcile (beat, every second here) queues a driver, which claims the
    # row and carries on from the step saved in the database.
    wait_for(
        lambda: Cutover.objects.get(pk=body["uid"]).lease_token not in ("", first_driver),
        what="a new driver resuming the migration",
        timeout=Cutover.LEASE_S * 6,
    )
    assert migration(admin_api, b)["step"] == "full_sync"
    assert put(admin_api, b, replica_sync="enabled").status_code == 200
    body = reached(admin_api, b, "sync_complete", "waiting")
    assert body["progress"]["keys"] == 5000
    assert all(s["status"] == "in-sync" for s in body["progress"]["sources"])

    # Cut over: pause, drain, verify, stop; the last write before it is on the destination.
    admin(a).set("last-write", "before the cutover")
    step(admin_api, b, "cutover", pause_ms=1500)
    body = reached(admin_api, b, "done", "done")
    assert body["verify"]["state"] == "done" and body["verify"]["result"]["differences"] == 0
    assert body["drain"]["sources"][0]["offset"] > 0
    assert body["connection"]["port"] == b.port and body["connection"]["user"] == "default"
    assert "app-secret-1" not in str(body)
    started = {s["step"]: s["started"] for s in body["steps"]}
    assert all(started.values()), started

    # The destination is writable for applications, its data kept.
    assert not b.replica_sources.exists()
    client = redis.Redis(port=b.port, password="app-secret-1")
    client.set("after-cutover", "1")
    assert client.get("last-write") == b"before the cutover"
    assert client.dbsize() == 5000 + 2
    actions = set(AuditEntry.objects.filter(object_id=b.pk).values_list("action", flat=True))
    expected = {f"replica_migrate.{s}" for s in started if s != "preflight"}
    assert {"replica_migrate.start", *expected} <= actions, actions


def test_a_failing_preflight_waits_and_its_override_is_audited(admin_api, live_worker):
    a = create_active(admin_api, name="a", memory_size=64 * MB)
    b = create_active(admin_api, name="b", memory_size=2 * MB)
    admin(a).mset({f"k:{i}": "x" * 1000 for i in range(4000)})
    resp = admin_api.post(
        f"/v1/bdbs/{b.pk}/actions/replica_migrate",
        {"replica_sources": [{"bdb_uid": a.pk}]},
        format="json",
    )
    assert resp.status_code == 202, resp.content
    body = reached(admin_api, b, "preflight", "waiting")
    assert body["preflight"]["failed"]
    assert body["error"].startswith("pre-flight failed"), body["error"]
    fails = [c for c in body["preflight"]["checks"] if c["level"] == "fail"]
    assert any("cannot fit" in c["message"] for c in fails), fails
    # Not past a failed pre-flight without an override.
    refused = admin_api.post(
        f"/v1/bdbs/{b.pk}/actions/replica_migrate_step", {"action": "confirm_flush"}, format="json"
    )
    assert refused.status_code == 400 and "not possible now" in str(refused.json()), refused.content

    body = step(admin_api, b, "override")
    assert (body["step"], body["state"], body["preflight_overridden"]) == (
        "confirm_flush",
        "waiting",
        True,
    )
    entry = AuditEntry.objects.get(object_id=b.pk, action="replica_migrate.confirm_flush")
    assert entry.actor_name == "admin" and "pre-flight overridden" in entry.detail
    assert "cannot fit" in entry.detail
    body = step(admin_api, b, "cancel")
    assert body["state"] == "cancelled"
    assert not b.replica_sources.exists(), "a cancelled migration changed nothing"
    assert AuditEntry.objects.filter(object_id=b.pk, action="replica_migrate.cancelled").exists()


def test_bad_input_is_a_field_error(admin_api, live_worker):
    b = create_active(admin_api, name="b")
    url = f"/v1/bdbs/{b.pk}/actions/replica_migrate"
    for body, field in (
        ({"pause_ms": -1}, "pause_ms"),
        ({"pause_ms": 60_001}, "pause_ms"),
        ({"lag_threshold_ms": 0}, "lag_threshold_ms"),
        ({"lag_threshold_ms": "1000"}, "lag_threshold_ms"),
        ({}, "replica_sources"),  # no sources given and none set
    ):
        resp = admin_api.post(url, body, format="json")
        assert resp.status_code == 400, (body, resp.content)
        assert field in str(resp.json()), (body, resp.json())
    step_url = f"/v1/bdbs/{b.pk}/actions/replica_migrate_step"
    resp = admin_api.post(step_url, {"action": "dance"}, format="json")
    assert resp.status_code == 400 and "action" in resp.json(), resp.content
    resp = admin_api.post(step_url, {"action": "cancel"}, format="json")
    assert resp.status_code == 400 and "no migration" in str(resp.json()), resp.content
    app_user(b).close()
