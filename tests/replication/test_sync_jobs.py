"""Replica Of end to end through the REST API: real Celery workers, real sync jobs, real servers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.conf import settings
from prometheus_client.parser import text_string_to_metric_families

from console.models import AuditEntry, Database
from replication import control
from replication.models import ReplicaOf
from tests.support.compare import assert_same_data
from tests.support.databases import create_active
from tests.support.load import BatchLoad, caught_up, populate
from tests.support.proxy import TcpProxy
from tests.support.servers import RedisServer
from tests.support.wait import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MB = 1024 * 1024


def admin(db: Database) -> redis.Redis:
    db.refresh_from_db()
    return redis.Redis(port=db.port, username="admin", password=db.internal_password)


def app_user(db: Database) -> redis.Redis:
    return redis.Redis(port=db.port, password=db.password or None)


def num(value: Any) -> int:
    return int(value or 0)


def bdb(api: Any, db: Database) -> dict[str, Any]:
    resp = api.get(f"/v1/bdbs/{db.pk}")
    assert resp.status_code == 200, resp.content
    body: dict[str, Any] = resp.json()
    return body


def put(api: Any, db: Database, **body: Any) -> Any:
    return api.put(f"/v1/bdbs/{db.pk}", body, format="json")


def make_replica(api: Any, dest: Database, *sources: Database | str) -> dict[str, Any]:
    items = [{"bdb_uid": s.pk} if isinstance(s, Database) else {"uri": s} for s in sources]
    resp = put(api, dest, replica_sources=items)
    assert resp.status_code == 200, resp.content
    body: dict[str, Any] = resp.json()
    return body


def wait_status(api: Any, dest: Database, status: str, *, sources: int = 1) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        body = bdb(api, dest)
        got = [s["status"] for s in body["replica_sources"]]
        return body if len(got) == sources and all(s == status for s in got) else None

    return wait_for(check, what=f"{dest.name}'s sources {status} (now {bdb(api, dest)})")


def wait_sync_state(api: Any, dest: Database, state: str) -> dict[str, Any]:
    return wait_for(
        lambda: (b := bdb(api, dest)) and b["replica_sync"] == state and b,
        what=f"{dest.name} replica_sync {state} (now {bdb(api, dest)})",
    )


@pytest.fixture
def servers() -> Iterator[list[RedisServer]]:
    started: list[RedisServer] = []
    yield started
    for s in started:
        s.stop()


def test_a_to_b_under_load_equal_in_sync_and_last_update_advances(admin_api, live_worker):
    a = create_active(admin_api, name="a", memory_size=256 * MB)
    b = create_active(admin_api, name="b", memory_size=256 * MB)
    src, dst = admin(a), admin(b)
    populate(src, 100_000)
    with BatchLoad(src):
        make_replica(admin_api, b, a)
        body = wait_status(admin_api, b, "in-sync")
        assert body["replica_sync"] == "enabled"
    caught_up(src, dst)
    assert assert_same_data([src], [dst]) >= 100_000
    assert num(src.get("counter")) == num(dst.get("counter"))
    assert dst.lrange("log", 0, -1) == src.lrange("log", 0, -1)

    source = wait_for(
        lambda: (s := bdb(admin_api, b)["replica_sources"][0]).get("lag") is not None and s,
        what="a lag figure",
    )
    assert source["status"] == "in-sync" and source["lag"] < 1000
    assert source["uri"] == f"redis://admin:***@127.0.0.1:{a.port}"
    assert a.internal_password not in str(bdb(admin_api, b))
    first = source["last_update"]  # present once known (absent, not null, before: RE's type)
    assert isinstance(first, str)
    time.sleep(1.1)
    src.set("later", "1")
    wait_for(
        lambda: bdb(admin_api, b)["replica_sources"][0]["last_update"] > first,
        what="last_update to advance",
    )
    stats = admin_api.get(f"/v1/bdbs/{b.pk}/sync_source_stats/1?interval=1sec").json()
    intervals = stats["sync_source_stats"][0]["intervals"]
    assert sum(i["commands"] for i in intervals) > 0
    assert sum(i["ingress_bytes"] for i in intervals) > 0
    metrics = admin_api.get("/metrics").content.decode()
    up = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics)
        for s in family.samples
    }
    labels = (("bdb", str(b.pk)), ("bdb_name", "b"), ("source", "1"), ("source_name", "a"))
    assert up[("replicaof_source_up", labels)] == 1


def test_status_reaches_the_channel_group_of_the_destination(admin_api, live_worker):
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    a = create_active(admin_api, name="a")
    b = create_active(admin_api, name="b")
    layer = get_channel_layer()
    assert layer is not None

    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(f"database-{b.pk}", channel)
    make_replica(admin_api, b, a)

    async def listen() -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        while not seen or seen[-1]["status"]["status"] != "in-sync":
            seen.append(await layer.receive(channel))
        await layer.group_discard(f"database-{b.pk}", channel)
        return seen

    seen = async_to_sync(listen)()
    assert {m["type"] for m in seen} == {"database.status"}
    last = seen[-1]["status"]
    assert last["database"] == b.pk and last["replica_sync"] == "enabled"
    assert last["sources"][0]["name"] == "a" and last["sources"][0]["status"] == "in-sync"


def test_three_sources_into_one_destination_keep_per_source_order(admin_api, live_worker):
    sources = [create_active(admin_api, name=f"s{i}") for i in range(3)]
    dest = create_active(admin_api, name="dest")
    clients = [admin(s) for s in sources]
    for i, c in enumerate(clients):
        populate(c, 2000, prefix=f"s{i}")
    loads = [BatchLoad(c, prefix=f"s{i}:") for i, c in enumerate(clients)]
    for load in loads:
        load.__enter__()
    try:
        make_replica(admin_api, dest, *sources)
        wait_status(admin_api, dest, "in-sync", sources=3)
    finally:
        for load in loads:
            load.__exit__()
    dst = admin(dest)
    for i, c in enumerate(clients):
        caught_up(c, dst, tag=f"s{i}")
        assert num(dst.get(f"s{i}:counter")) == num(c.get(f"s{i}:counter")) == loads[i].n
        assert dst.lrange(f"s{i}:log", 0, -1) == c.lrange(f"s{i}:log", 0, -1)
    assert assert_same_data(clients, [dst]) >= 6000


def test_flush_read_only_destination_and_the_migration_path(admin_api, live_worker):
    a = create_active(admin_api, name="a")
    b = create_active(admin_api, name="b", authentication_redis_pass="app-password-1")
    admin(b).set("written-before", "by admin")
    admin(a).set("from-a", "1")
    make_replica(admin_api, b, a)
    wait_status(admin_api, b, "in-sync")
    caught_up(admin(a), admin(b))
    assert admin(b).get("written-before") is None  # flushed when it became a replica
    assert app_user(b).get("from-a") == b"1"  # applications read

    def refused() -> bool:
        try:
            app_user(b).set("app-write", "x")
        except redis.exceptions.NoPermissionError:
            return True
        app_user(b).delete("app-write")
        return False

    wait_for(refused, what="the application user to lose write access")
    # redis-py turns the NOPERM error reply into NoPermissionError.
    with pytest.raises(redis.exceptions.NoPermissionError, match="no permissions"):
        app_user(b).set("app-write", "x")

    # One-time migration: stop, remove the sources, keep the data, writable again.
    assert put(admin_api, b, replica_sync="stopped").status_code == 200
    wait_sync_state(admin_api, b, "stopped")
    resp = put(admin_api, b, replica_sources=[])
    assert resp.status_code == 200, resp.content
    assert resp.json()["replica_sync"] == "disabled"
    wait_for(lambda: not refused(), what="the application user to write again")
    assert app_user(b).get("from-a") == b"1"
    wait_for(
        lambda: admin(b).exists("__replicaof:{syncer}:checkpoint") == 0,
        what="the checkpoint key to be removed",
    )


def test_stop_restart_pause_resume(admin_api, live_worker):
    a = create_active(admin_api, name="a")
    b = create_active(admin_api, name="b")
    src, dst = admin(a), admin(b)
    populate(src, 1000)
    make_replica(admin_api, b, a)
    wait_status(admin_api, b, "in-sync")
    caught_up(src, dst)

    assert put(admin_api, b, replica_sync="stopped").status_code == 200
    wait_sync_state(admin_api, b, "stopped")
    wait_for(lambda: not control.lock_held(b.pk), what="the job to end")
    src.set("after-stop", "1")
    dst.set("admin-marker", "1")
    time.sleep(1)
    assert dst.get("after-stop") is None

    resp = admin_api.post(f"/v1/bdbs/{b.pk}/actions/replica_sync_restart")
    assert resp.status_code == 200, resp.content
    wait_status(admin_api, b, "in-sync")
    caught_up(src, dst)
    assert dst.get("admin-marker") is None  # restart flushed
    assert dst.get("after-stop") == b"1"
    assert_same_data([src], [dst])

    assert put(admin_api, b, replica_sync="paused").status_code == 200
    wait_sync_state(admin_api, b, "paused")
    wait_for(lambda: not control.lock_held(b.pk), what="the job to end")
    dst.set("admin-marker", "survives a resume")
    src.incr("while-paused")
    time.sleep(1)
    assert dst.get("while-paused") is None
    assert put(admin_api, b, replica_sync="enabled").status_code == 200
    wait_for(lambda: dst.get("while-paused") == b"1", what="the write made while paused")
    assert dst.get("admin-marker") == b"survives a resume"  # partial sync: no flush
    dst.delete("admin-marker")
    caught_up(src, dst)
    assert_same_data([src], [dst])
    bad = put(admin_api, b, replica_sync="disabled")
    assert bad.status_code == 400 and "replica_sync" in bad.json()


def test_regenerated_source_password_stops_then_update_credentials(admin_api, live_worker):
    a = create_active(admin_api, name="a")
    b = create_active(admin_api, name="b")
    make_replica(admin_api, b, a)
    wait_status(admin_api, b, "in-sync")
    url = admin_api.post(f"/v1/bdbs/{a.pk}/actions/replica_source_url").json()["uri"]
    a.refresh_from_db()
    assert url == f"redis://admin:{a.internal_password}@127.0.0.1:{a.port}"

    started = time.monotonic()
    resp = admin_api.post(f"/v1/bdbs/{a.pk}/actions/regenerate_admin_password")
    assert resp.status_code == 200, resp.content
    body = wait_sync_state(admin_api, b, "stopped")
    print(f"stopped {time.monotonic() - started:.2f} s after the regeneration")
    error = ReplicaOf.objects.get(destination=b).last_error
    assert error.startswith("source a:") and "authentication failed" in error
    assert ReplicaOf.objects.get(destination=b).last_error_kind == "auth"
    assert body["replica_sources"][0]["last_error"] == error
    a.refresh_from_db()
    assert a.internal_password not in error and url.split("@")[0] not in error
    assert AuditEntry.objects.filter(action="database.regenerate_admin_password").exists()
    assert AuditEntry.objects.filter(action="database.replica_source_url").exists()

    resp = admin_api.post(
        f"/v1/bdbs/{b.pk}/actions/update_credentials", {"source_uid": 1}, format="json"
    )
    assert resp.status_code == 200, resp.content
    wait_status(admin_api, b, "in-sync")
    caught_up(admin(a), admin(b))


def test_cycles_and_the_33rd_source_are_refused(admin_api, live_worker):
    a, b, c = (create_active(admin_api, name=n) for n in ("a", "b", "c"))
    make_replica(admin_api, a, b)  # A <- B
    before = bdb(admin_api, b)
    resp = put(admin_api, b, replica_sources=[{"bdb_uid": a.pk}])  # B <- A
    assert resp.status_code == 400 and "cycle" in str(resp.json()["replica_sources"])
    assert bdb(admin_api, b) == before
    make_replica(admin_api, b, c)  # A <- B <- C
    before = bdb(admin_api, c)
    resp = put(admin_api, c, replica_sources=[{"bdb_uid": a.pk}])  # C <- A closes it
    assert resp.status_code == 400 and "cycle" in str(resp.json()["replica_sources"])
    assert bdb(admin_api, c) == before
    many = [{"uri": f"redis://127.0.0.1:{20000 + i}"} for i in range(33)]
    resp = put(admin_api, c, replica_sources=many, check_connection=False)
    assert resp.status_code == 400 and "at most 32" in str(resp.json())
    assert bdb(admin_api, c) == before
    resp = put(admin_api, c, replica_sources=[{"uri": "redis://127.0.0.1:1?evil=1"}])
    assert resp.status_code == 400 and "replica_sources[0].uri" in resp.json()
    assert bdb(admin_api, c) == before


def _kill_sync_worker(live_worker: Any, dest: Database) -> None:
    """kill -9 the sync worker, wait for the job's heartbeat lock to expire, start a new one."""
    live_worker.kill_sync()
    wait_for(lambda: not control.lock_held(dest.pk), what="the dead job's lock to expire")
    live_worker.start_sync()
    wait_for(lambda: control.lock_held(dest.pk), what="reconcile to start a new job")


def test_worker_killed_during_streaming_resumes_by_partial_sync(admin_api, live_worker):
    # 256 MB: a 25.6 MB replication backlog holds the writes made while no job runs.
    a = create_active(admin_api, name="a", memory_size=256 * MB)
    b = create_active(admin_api, name="b", memory_size=256 * MB)
    src, dst = admin(a), admin(b)
    populate(src, 5000)
    make_replica(admin_api, b, a)
    wait_status(admin_api, b, "in-sync")
    caught_up(src, dst)
    dst.set("admin-marker", "gone if flushed")
    with BatchLoad(src) as load:
        wait_for(lambda: load.n > 2000, what="some load")
        _kill_sync_worker(live_worker, b)
        at_restart = num(dst.get("counter"))
        wait_for(lambda: num(dst.get("counter")) > at_restart, what="streaming again")
    caught_up(src, dst)
    assert dst.get("admin-marker") == b"gone if flushed"  # resumed without a flush
    dst.delete("admin-marker")
    assert num(dst.get("counter")) == num(src.get("counter")) == load.n
    assert dst.lrange("log", 0, -1) == [str(i).encode() for i in range(1, load.n + 1)]
    assert_same_data([src], [dst])


def test_warm_shutdown_of_the_sync_worker_ends_its_jobs_which_resume_elsewhere(
    admin_api, live_worker
):
    a = create_active(admin_api, name="a")
    b = create_active(admin_api, name="b")
    src, dst = admin(a), admin(b)
    make_replica(admin_api, b, a)
    wait_status(admin_api, b, "in-sync")
    dst.set("admin-marker", "gone if flushed")
    assert live_worker.stop_sync() == 0  # a job that never ends would hold the shutdown
    assert not control.lock_held(b.pk)  # released, not left to expire
    src.set("while-no-worker", "1")
    live_worker.start_sync()
    wait_for(lambda: dst.get("while-no-worker") == b"1", what="the job to resume")
    assert dst.get("admin-marker") == b"gone if flushed"  # partial sync, no flush
    assert bdb(admin_api, b)["replica_sync"] == "enabled"


def test_worker_killed_during_full_sync_reloads_clean(admin_api, live_worker, servers):
    source = RedisServer()
    servers.append(source.start())
    populate(source.client(), 20_000)
    source.client().set("big", "x" * (8 * MB))
    b = create_active(admin_api, name="b")
    with TcpProxy(source.port) as proxy:
        proxy.throttle(1 * MB)
        make_replica(admin_api, b, f"redis://127.0.0.1:{proxy.port}")
        wait_for(
            lambda: (
                (s := bdb(admin_api, b)["replica_sources"][0])["status"] == "syncing"
                and s.get("rdb_transferred", 0) > 0
            ),
            what="the full sync to be under way",
        )
        source.client().set("written-during-the-load", "1")
        _kill_sync_worker(live_worker, b)
        proxy.throttle(None)
        wait_status(admin_api, b, "in-sync")
        caught_up(source.client(), admin(b))
    assert_same_data([source.client()], [admin(b)])


def test_destination_out_of_memory_stops_the_sync(admin_api, live_worker):
    a = create_active(admin_api, name="a", memory_size=64 * MB)
    b = create_active(admin_api, name="b", memory_size=2 * MB)
    src = admin(a)
    pipe = src.pipeline(transaction=False)
    for i in range(4000):
        pipe.set(f"k:{i}", "x" * 1000)
    pipe.execute()
    # Pre-flight says so before anything is saved, with the numbers; the Save is refused.
    check = admin_api.post(
        f"/v1/bdbs/{b.pk}/actions/replica_preflight",
        {"replica_sources": [{"bdb_uid": a.pk}]},
        format="json",
    )
    assert check.status_code == 200, check.content
    memory = next(c for c in check.json()["checks"] if c["name"] == "memory")
    assert check.json()["failed"] and memory["level"] == "fail", check.json()
    assert "(2097152 bytes): it cannot fit" in memory["message"]
    refused = put(admin_api, b, replica_sources=[{"bdb_uid": a.pk}])
    assert refused.status_code == 400
    assert "pre-flight failed" in str(refused.json()["replica_sources"]), refused.json()
    assert not b.replica_sources.exists()
    assert admin_api.post(f"/v1/bdbs/{b.pk}/actions/replica_preflight").status_code == 400
    # Overridden explicitly (audited): it syncs, and stops when the destination is full.
    resp = put(admin_api, b, replica_sources=[{"bdb_uid": a.pk}], preflight_override=True)
    assert resp.status_code == 200, resp.content
    override = AuditEntry.objects.get(action="replica_sources.preflight_override", object_id=b.pk)
    assert "memory" in override.detail and "cannot fit" in override.detail
    wait_sync_state(admin_api, b, "stopped")
    replica_of = ReplicaOf.objects.get(destination=b)
    assert (
        replica_of.last_error.startswith("destination b:")
        and "out of memory" in replica_of.last_error
    )
    assert replica_of.last_error_kind == "oom"


def test_cross_slot_write_into_a_sharded_destination_stops_the_sync(admin_api, live_worker):
    a = create_active(admin_api, name="a")
    b = create_active(admin_api, name="b", shards_count=3)
    make_replica(admin_api, b, a)
    wait_status(admin_api, b, "in-sync")
    admin(a).mset({"alpha": "1", "beta": "2", "gamma": "3"})
    wait_sync_state(admin_api, b, "stopped")
    replica_of = ReplicaOf.objects.get(destination=b)
    assert replica_of.last_error.startswith("destination b:") and "MSET" in replica_of.last_error
    assert replica_of.last_error_kind == "cross_slot"
    # The stop is tied to the source that sent the command.
    source = b.replica_sources.get()
    assert source.last_error_kind == "cross_slot" and "MSET" in source.last_error


def _tls_client(db: Database, *, client_cert: bool, shard: int = 0) -> redis.Redis:
    from console.models import Certificate

    db.refresh_from_db()
    d = settings.DATA_DIR / f"bdb-{db.pk}" / f"shard-{shard}"
    proxy = Certificate.objects.get(kind="proxy").certificate_pem
    extra: dict[str, Any] = {}
    if client_cert:
        extra = {"ssl_certfile": str(d / "client.crt"), "ssl_keyfile": str(d / "client.key")}
    return redis.Redis(
        port=db.shards.get(index=shard).port,
        username="admin",
        password=db.internal_password,
        ssl=True,
        ssl_ca_data=proxy,
        ssl_check_hostname=False,
        socket_timeout=5,
        **extra,
    )


def test_tls_source_with_client_authentication(admin_api, live_worker):
    resp = admin_api.post(
        "/v1/bdbs",
        {"name": "x", "memory_size": 8 * MB, "tls_mode": "replica_ssl", "shards_count": 2},
        format="json",
    )
    assert resp.status_code == 400 and "tls_mode" in resp.json()
    resp = admin_api.post(
        "/v1/bdbs",
        {"name": "x", "memory_size": 8 * MB, "enforce_client_authentication": "enabled"},
        format="json",
    )
    assert resp.status_code == 400 and "enforce_client_authentication" in resp.json()
    assert not Database.objects.filter(name="x").exists()

    a = create_active(
        admin_api, name="a", tls_mode="enabled", enforce_client_authentication="enabled"
    )
    # The destination: a Redis Cluster of 2 shards, TLS on its endpoints and its cluster bus.
    b = create_active(admin_api, name="b", shards_count=2, tls_mode="enabled")
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=a.port, socket_timeout=2).ping()  # plain TCP is not served
    with pytest.raises(redis.ConnectionError):
        _tls_client(a, client_cert=False).ping()  # TLS without a trusted client certificate
    src = _tls_client(a, client_cert=True)
    populate(src, 2000)
    url = admin_api.post(f"/v1/bdbs/{a.pk}/actions/replica_source_url").json()["uri"]
    assert url.startswith("rediss://admin:")

    body = make_replica(admin_api, b, a)
    assert body["replica_sources"][0]["encryption"] is True
    wait_status(admin_api, b, "in-sync")
    dst = [_tls_client(b, client_cert=False, shard=i) for i in range(2)]
    src.set("{m}last", "1")

    def arrived() -> bool:
        for c in dst:
            try:
                return c.get("{m}last") == b"1"
            except redis.exceptions.MovedError:
                continue
        return False

    wait_for(arrived, what="the last write on b")
    assert assert_same_data([src], dst) >= 2000


def test_key_counts_leave_out_the_syncers_bookkeeping(admin_api, admin_client, live_worker):
    """A destination holds the checkpoint and epoch markers beside the data; the counts the
    console shows are the users' keys only, equal to the source's (sharded destination too)."""
    from console.selectors import database_key_count

    a = create_active(admin_api, name="a")
    b = create_active(admin_api, name="b", shards_count=3)
    admin(a).mset({f"k{i}": i for i in range(300)})
    make_replica(admin_api, b, a)
    wait_status(admin_api, b, "in-sync")
    caught_up(
        admin(a),
        redis.RedisCluster(
            host="127.0.0.1", port=b.port, username="admin", password=b.internal_password
        ),
    )
    assert database_key_count(a) == database_key_count(b) == 300
    page = admin_client.get(f"/databases/{b.pk}/").content.decode()
    assert "<dd data-key-count>300</dd>" in page
    events = admin_api.get(f"/v1/bdbs/{b.pk}/replica_events").json()
    kinds = [e["kind"] for e in events]
    assert "full_sync_done" in kinds and "job_started" in kinds, kinds
