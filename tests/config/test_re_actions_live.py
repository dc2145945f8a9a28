"""Redis Enterprise's `PUT /v1/bdbs/{uid}/flush` and `PUT /v1/bdbs/{uid}/reset_admin_pass`
on databases a real node worker runs."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from console.models import AuditEntry, Database
from tests.support.compare import assert_same_data
from tests.support.databases import create_active
from tests.support.wait import wait_for

pytestmark = pytest.mark.integration


def _shards(db: Database) -> list[redis.Redis]:
    db.refresh_from_db()
    return [
        redis.Redis(port=s.port, username="admin", password=db.internal_password)
        for s in db.shards.all()
    ]


def _keys(db: Database) -> int:
    return sum(c.dbsize() for c in _shards(db))


def test_flush_empties_every_shard(admin_api: Any, live_worker) -> None:
    db = create_active(admin_api, name="flushme", shards_count=2)
    app = redis.RedisCluster(
        host="127.0.0.1", port=db.port, username="admin", password=db.internal_password
    )
    for n in range(200):
        app.set(f"k{n}", n)
    app.close()
    assert all(c.dbsize() > 0 for c in _shards(db))  # keys on both shards
    response = admin_api.put(f"/v1/bdbs/{db.pk}/flush")
    assert response.status_code == 200, response.content
    assert response.json()["uid"] == db.pk
    assert _keys(db) == 0
    assert AuditEntry.objects.filter(action="database.flush", object_id=str(db.pk)).count() == 1


def test_flush_of_a_syncing_destination_is_refused(admin_api: Any, live_worker) -> None:
    source = create_active(admin_api, name="flsrc")
    dest = create_active(admin_api, name="fldst")
    (src,) = _shards(source)
    src.set("kept", "yes")
    response = admin_api.put(
        f"/v1/bdbs/{dest.pk}", {"replica_sources": [{"bdb_uid": source.pk}]}, format="json"
    )
    assert response.status_code == 200, response.content
    (dst,) = _shards(dest)
    wait_for(lambda: dst.get("kept") == b"yes", what="the destination to hold the source's key")
    body = admin_api.put(f"/v1/bdbs/{dest.pk}/flush").json()
    assert body["error_code"] == "bdb_is_replica", body
    assert dst.get("kept") == b"yes"
    assert_same_data([src], [dst])
    assert not AuditEntry.objects.filter(action="database.flush").exists()


def test_reset_admin_pass_is_regenerate(admin_api: Any, live_worker) -> None:
    db = create_active(admin_api, name="resetme")
    old = db.internal_password
    response = admin_api.put(f"/v1/bdbs/{db.pk}/reset_admin_pass")
    assert response.status_code == 200, response.content
    db.refresh_from_db()
    assert db.internal_password != old
    assert (
        old not in response.content.decode()
        and db.internal_password not in response.content.decode()
    )
    assert redis.Redis(port=db.port, username="admin", password=db.internal_password).ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=db.port, username="admin", password=old).ping()
    assert AuditEntry.objects.filter(
        action="database.regenerate_admin_password", object_id=str(db.pk)
    ).exists()
