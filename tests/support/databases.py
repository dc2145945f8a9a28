"""Databases made the way an operator makes them: through the REST API, started by the worker."""

from __future__ import annotations

import redis

from console.models import Database, DatabaseStatus
from tests.support.servers import RedisServer
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


def tls_replica_pair(api, *, keys: int) -> tuple[Database, Database, redis.Redis]:
    """`a`: TLS between databases only with client authentication, holding `keys` keys; `b`: a
    replica of it (the source chosen by `bdb_uid`, so over a's TLS port), in sync. Returns both
    and an admin client of a's plain port."""
    from tests.support.load import populate

    a = create_active(
        api, name="a", tls_mode="replica_ssl", enforce_client_authentication="enabled"
    )
    b = create_active(api, name="b")
    src = redis.Redis(port=a.port, username="admin", password=a.internal_password)
    populate(src, keys)
    resp = api.put(f"/v1/bdbs/{b.pk}", {"replica_sources": [{"bdb_uid": a.pk}]}, format="json")
    assert resp.status_code == 200, resp.content
    assert resp.json()["replica_sources"][0]["encryption"] is True
    wait_for(
        lambda: api.get(f"/v1/bdbs/{b.pk}").json()["replica_sources"][0]["status"] == "in-sync",
        what="b in-sync",
    )
    return a, b, src


def native_replica(db: Database) -> RedisServer:
    """A plain `redis-server --replicaof` the database (as its `admin` user), started and
    following it; the caller stops it."""
    replica = RedisServer(
        args=[
            "--replicaof",
            "127.0.0.1",
            str(db.port),
            "--masteruser",
            "admin",
            "--masterauth",
            db.internal_password,
        ]
    ).start()
    try:
        with replica.client() as client:
            wait_for(
                lambda: client.info("replication").get("master_link_status") == "up",
                what=f"a replica to follow {db.name}",
            )
    except BaseException:
        replica.stop()
        raise
    return replica
