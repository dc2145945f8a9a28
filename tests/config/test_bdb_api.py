"""Databases through the REST API, provisioned by a real Celery worker as real redis-servers."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.db import connection, transaction

from console import provisioning, selectors, services
from console.models import AuditEntry, Database, Shard
from tests.support.databases import create_active, database_status
from tests.support.wait import wait_for

pytestmark = pytest.mark.integration

MB = 1024 * 1024


def test_create_connect_and_authenticate(admin_api, live_worker):
    db = create_active(admin_api, name="db1", authentication_redis_pass="s3cret-pass")
    body = admin_api.get(f"/v1/bdbs/{db.pk}").json()
    assert body["status"] == "active"
    assert body["endpoints"][0]["port"] == db.port
    assert settings.DB_PORT_MIN <= db.port <= settings.DB_PORT_MAX

    app = redis.Redis(port=db.port, username="default", password="s3cret-pass")
    app.set("k", "v")
    assert app.get("k") == b"v"

    admin = redis.Redis(port=db.port, username="admin", password=db.internal_password)
    assert admin.get("k") == b"v"
    assert admin.config_get("maxmemory")["maxmemory"] == str(64 * MB)  # CONFIG is admin's only
    assert len(db.internal_password) >= 32

    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=db.port, username="default", password="wrong").ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=db.port, username="admin", password="wrong").ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=db.port).ping()  # a password is set: anonymous access is refused


def test_edit_memory_and_password_applies_live(admin_api, live_worker):
    db = create_active(admin_api, name="edit-me")
    resp = admin_api.put(
        f"/v1/bdbs/{db.pk}",
        {"memory_size": 32 * MB, "authentication_redis_pass": "new-pass-1"},
        format="json",
    )
    assert resp.status_code == 200, resp.content
    wait_for(lambda: database_status(db.pk) == "active", what="the edit to apply")
    assert redis.Redis(port=db.port, username="default", password="new-pass-1").ping()
    admin = redis.Redis(port=db.port, username="admin", password=db.internal_password)
    assert admin.config_get("maxmemory")["maxmemory"] == str(32 * MB)
    resp = admin_api.put(f"/v1/bdbs/{db.pk}", {"name": "renamed"}, format="json")
    assert resp.status_code == 400 and "name" in resp.json()


def test_sharded_database_is_a_working_cluster(admin_api, live_worker):
    db = create_active(admin_api, name="sharded", memory_size=100 * MB, shards_count=2)
    shards = list(Shard.objects.filter(database=db))
    assert len(shards) == 2
    for shard in shards:
        info = redis.Redis(port=shard.port).execute_command("CLUSTER", "INFO").decode()
        assert "cluster_state:ok" in info
        assert "cluster_slots_assigned:16384" in info
        assert "cluster_known_nodes:2" in info
    cluster = redis.RedisCluster(host="127.0.0.1", port=db.port)
    for i in range(1000):
        cluster.set(f"key:{i}", i)
    assert [int(cluster.get(f"key:{i}") or 0) for i in range(1000)] == list(range(1000))
    counts = [redis.Redis(port=s.port).dbsize() for s in shards]
    assert sum(counts) == 1000 and all(c > 300 for c in counts)


def test_delete_stops_processes_and_frees_ports(admin_api, live_worker):
    db = create_active(admin_api, name="doomed", shards_count=2)
    spec = selectors.database_spec(db)
    pids = [provisioning.read_pid(spec, s) for s in spec.shards]
    assert all(provisioning.pid_alive(p) for p in pids)
    ports = [s.port for s in spec.shards]

    assert admin_api.delete(f"/v1/bdbs/{db.pk}").status_code == 204
    wait_for(lambda: database_status(db.pk) == "gone", what="the database row to go")
    assert not any(provisioning.pid_alive(p) for p in pids)
    assert all(provisioning.port_free(p) for p in ports)
    assert not provisioning.database_dir(settings.DATA_DIR, db.pk).exists()
    assert not Shard.objects.filter(port__in=ports).exists()


def test_reconcile_restarts_a_killed_process_with_its_data(admin_api, live_worker):
    db = create_active(admin_api, name="durable", data_persistence="aof")
    client = redis.Redis(port=db.port, username="admin", password=db.internal_password)
    client.set("survivor", "yes")
    spec = selectors.database_spec(db)
    old_pid = provisioning.read_pid(spec, spec.shards[0])
    assert old_pid
    os.kill(old_pid, signal.SIGKILL)

    def restarted() -> bool:
        pid = provisioning.read_pid(spec, spec.shards[0])
        return pid != old_pid and provisioning.shard_answers(spec, spec.shards[0])

    wait_for(restarted, what="reconcile to restart the killed process")
    assert client.get("survivor") == b"yes"
    # Recorded right after the restart (the process may answer a moment before).
    wait_for(
        lambda: AuditEntry.objects.filter(action="database.restart", object_id=str(db.pk)).exists(),
        what="the restart in the audit log",
    )


def test_process_that_fails_to_start_ends_in_error_and_can_be_deleted(admin_user, live_worker):
    port = next(
        p
        for p in range(settings.DB_PORT_MIN, settings.DB_PORT_MAX)
        if provisioning.port_free(p) and not Shard.objects.filter(port=p).exists()
    )
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        with transaction.atomic():
            db = services.database_create(
                actor=admin_user, name="blocked", memory_size=8 * MB, port=port
            )
            # Taken after validation, before the node starts the process.
            blocker.bind(("127.0.0.1", port))
            blocker.listen()
        wait_for(lambda: database_status(db.pk) == "error", what="the failed start to be recorded")
        db.refresh_from_db()
        assert "port" in db.status_reason.lower() or "address" in db.status_reason.lower()
    finally:
        blocker.close()
    services.database_delete(actor=admin_user, database=db)
    wait_for(lambda: database_status(db.pk) == "gone", what="the failed database to be deleted")


BAD_INPUTS = [
    ({"name": "1starts-with-digit"}, "name"),
    ({"name": "has_underscore"}, "name"),
    ({"name": "x" * 64}, "name"),
    ({"memory_size": 1000}, "memory_size"),
    ({"memory_size": 10**15}, "memory_size"),
    ({"memory_size": "lots"}, "memory_size"),
    ({"shards_count": 0}, "shards_count"),
    ({"shards_count": 65}, "shards_count"),
    ({"port": 80}, "port"),
    ({"port": 70000}, "port"),
    ({"data_persistence": "sometimes"}, "data_persistence"),
    ({"authentication_redis_pass": "has space"}, "authentication_redis_pass"),
]


@pytest.mark.parametrize(("override", "field"), BAD_INPUTS)
def test_bad_input_is_a_field_error_and_leaves_nothing(admin_api, override, field):
    body = {"name": "good-name", "memory_size": 16 * MB, **override}
    resp = admin_api.post("/v1/bdbs", body, format="json")
    assert resp.status_code == 400, resp.content
    assert field in resp.json()
    assert not Database.objects.exists()
    assert not Shard.objects.exists()


def test_duplicate_name_and_taken_ports_are_refused(admin_api, admin_user):
    services.database_create(actor=admin_user, name="first", memory_size=8 * MB)
    first = Database.objects.get(name="first")
    resp = admin_api.post("/v1/bdbs", {"name": "first", "memory_size": 8 * MB}, format="json")
    assert resp.status_code == 400 and "name" in resp.json()
    resp = admin_api.post(
        "/v1/bdbs", {"name": "second", "memory_size": 8 * MB, "port": first.port}, format="json"
    )
    assert resp.status_code == 400 and "port" in resp.json()
    # A port busy on the host (not in the table) is refused too.
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(settings, "DB_PORT_MIN", taken - 1)
            mp.setattr(settings, "DB_PORT_MAX", taken + 1)
            resp = admin_api.post(
                "/v1/bdbs", {"name": "third", "memory_size": 8 * MB, "port": taken}, format="json"
            )
    assert resp.status_code == 400 and "port" in resp.json()
    assert list(Database.objects.values_list("name", flat=True)) == ["first"]


def test_unauthenticated_and_viewer_access(client, viewer_api, admin_user):
    from rest_framework.test import APIClient

    anon = APIClient()
    assert anon.get("/v1/bdbs").status_code == 401
    assert anon.post("/v1/bdbs", {}, format="json").status_code == 401
    assert anon.get("/v1/cluster").status_code == 401
    page = client.get("/")
    assert page.status_code == 302 and "/login/" in page["Location"]

    db = services.database_create(
        actor=admin_user, name="seen", memory_size=8 * MB, password="viewer-must-not-see"
    )
    assert viewer_api.get("/v1/bdbs").status_code == 200
    body = viewer_api.get(f"/v1/bdbs/{db.pk}").content.decode()
    assert "viewer-must-not-see" not in body and db.internal_password not in body
    assert (
        viewer_api.post("/v1/bdbs", {"name": "x", "memory_size": 8 * MB}, format="json").status_code
        == 403
    )
    assert (
        viewer_api.put(f"/v1/bdbs/{db.pk}", {"memory_size": 9 * MB}, format="json").status_code
        == 403
    )
    assert viewer_api.delete(f"/v1/bdbs/{db.pk}").status_code == 403
    assert Database.objects.get(pk=db.pk).memory_size == 8 * MB
    certs = viewer_api.get("/v1/cluster/certificates").content.decode()
    assert "PRIVATE KEY" not in certs


def test_secrets_are_encrypted_at_rest_and_absent_from_logs(admin_api, live_worker):
    db = create_active(admin_api, name="secretive", authentication_redis_pass="clear-text-pass")
    with connection.cursor() as cur:
        cur.execute("SELECT password, internal_password FROM console_database WHERE id=%s", [db.pk])
        raw_password, raw_internal = cur.fetchone()
        cur.execute("SELECT private_key_pem FROM console_certificate")
        raw_keys = [row[0] for row in cur.fetchall()]
    assert "clear-text-pass" not in raw_password
    assert db.internal_password not in raw_internal
    assert raw_keys and all("PRIVATE KEY" not in k for k in raw_keys)

    secrets = ["clear-text-pass", db.internal_password]
    files = [
        *Path(settings.VAR_DIR).glob("*.log"),
        *Path(settings.DATA_DIR).glob(f"bdb-{db.pk}/shard-*/*"),
    ]
    assert files
    for path in files:
        text = path.read_text(errors="replace")
        for secret in secrets:
            assert secret not in text, f"a secret appears in {path}"
