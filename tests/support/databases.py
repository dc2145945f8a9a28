"""Databases made the way an operator makes them: through the REST API, started by the worker."""

from __future__ import annotations

from console.models import Database, DatabaseStatus
from tests.support.wait import wait_for

MB = 1024 * 1024


def database_status(uid: int) -> str:
    """The row's status, or "gone" once the node removed it."""
    db = Database.objects.filter(pk=uid).first()
    return db.status if db else "gone"


def create_active(api, **body) -> Database:
    """POST /v1/bdbs with `body` (64 MB unless given), then wait until the node started it."""
    body.setdefault("memory_size", 64 * MB)
    resp = api.post("/v1/bdbs", body, format="json")
    assert resp.status_code == 201, resp.content
    uid = resp.json()["uid"]
    assert resp.json()["status"] == "pending"
    wait_for(lambda: database_status(uid) in {"active", "error"}, what=f"database {uid} to start")
    db = Database.objects.get(pk=uid)
    assert db.status == DatabaseStatus.ACTIVE, db.status_reason
    return db
