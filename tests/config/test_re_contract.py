"""Contract tests: every field that shares its name with Redis Enterprise's REST API objects has
Redis Enterprise's JSON type (and, for enumerations, one of its values), so that a typed client
written for Redis Enterprise parses our answers.

The expected types are written down here from Redis Enterprise's object reference:
https://redis.io/docs/latest/operate/rs/references/rest-api/objects/ (bdb, bdb/syncer_sources,
cluster, node, user, certificates). A field of that reference that we do not send is simply
absent (never `null` where Redis Enterprise has an integer or a string); fields of ours that Redis
Enterprise does not have are not checked here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from console.models import Database, User
from replication import services as replica_services
from replication.live import LiveSource
from replication.models import ReplicaOf
from replication.sources import SourceInput

pytestmark = pytest.mark.django_db

REF = "https://redis.io/docs/latest/operate/rs/references/rest-api/objects"

INT = "integer"
STR = "string"
BOOL = "boolean"
ARRAY = "array"
INT_ARRAY = "array of integers"
OBJECT = "object"

# https://redis.io/docs/latest/operate/rs/references/rest-api/objects/bdb/
BDB = {
    "uid": INT,
    "name": STR,
    "type": ("redis", "memcached"),
    "port": INT,
    "memory_size": INT,
    "shards_count": INT,
    "sharding": BOOL,
    "status": (
        "pending",
        "active",
        "active-change-pending",
        "delete-pending",
        "import-pending",
        "creation-failed",
        "recovery",
    ),
    "endpoints": ARRAY,
    "data_persistence": ("disabled", "snapshot", "aof"),
    "tls_mode": ("enabled", "disabled", "replica_ssl"),
    "enforce_client_authentication": ("enabled", "disabled"),
    "shard_list": INT_ARRAY,
    "created_time": STR,
    "last_changed_time": STR,
    "replica_sources": ARRAY,
    "replica_sync": ("enabled", "disabled", "paused", "stopped"),
    "authentication_ssl_client_certs": ARRAY,
}
BDB_REQUIRED = set(BDB) - {"authentication_ssl_client_certs"}
# The endpoint items of `endpoints` (the bdb reference's example of GET /v1/bdbs/{uid}).
ENDPOINT = {
    "uid": STR,
    "addr": ARRAY,
    "port": INT,
    "dns_address_name": STR,
    "addr_type": ("internal", "external"),
    "oss_cluster_api_preferred_ip_type": ("internal", "external"),
}
# https://redis.io/docs/latest/operate/rs/references/rest-api/objects/bdb/syncer_sources/
SYNCER_SOURCE = {
    "uid": INT,
    "client_cert": STR,
    "compression": INT,
    "encryption": BOOL,
    "lag": INT,
    "last_error": STR,
    "last_update": STR,
    "rdb_size": INT,
    "rdb_transferred": INT,
    "replication_tls_sni": STR,
    "server_cert": STR,
    "status": STR,
    "uri": STR,
}
# Sent always; the others only once they have a value (before the first full sync: no rdb_size).
SYNCER_SOURCE_REQUIRED = set(SYNCER_SOURCE) - {"lag", "last_update", "rdb_size", "rdb_transferred"}
# https://redis.io/docs/latest/operate/rs/references/rest-api/objects/cluster/
CLUSTER = {"name": STR, "created_time": STR, "proxy_certificate": STR, "syncer_certificate": STR}
# https://redis.io/docs/latest/operate/rs/references/rest-api/objects/node/
NODE = {
    "uid": INT,
    "addr": STR,
    "status": ("active", "decommissioning", "down", "provisioning"),
    "total_memory": INT,
    "shard_count": INT,
    "shard_list": INT_ARRAY,
}
# https://redis.io/docs/latest/operate/rs/references/rest-api/objects/user/
USER = {
    "uid": INT,
    "name": STR,
    "email": STR,
    "role": ("admin", "cluster_member", "cluster_viewer", "db_member", "db_viewer", "none"),
    "status": ("active", "locked"),
}
# https://redis.io/docs/latest/operate/rs/references/rest-api/objects/certificates/
CERTIFICATE = {
    "name": (
        "cm",
        "api",
        "mtls_trusted_ca",
        "proxy",
        "metrics_exporter",
        "syncer",
        "ldap_client",
        "ccs_internode_encryption",
        "data_internode_encryption",
        "sso_service",
        "sso_issuer",
    ),
    "certificate": STR,
}


def _type_ok(value: Any, expected: str | tuple[str, ...]) -> bool:
    if isinstance(expected, tuple):
        return value in expected
    if expected == INT:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected == STR:
        return isinstance(value, str)
    if expected == BOOL:
        return isinstance(value, bool)
    if expected == ARRAY:
        return isinstance(value, list)
    if expected == INT_ARRAY:
        return isinstance(value, list) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        )
    if expected == OBJECT:
        return isinstance(value, dict)
    raise AssertionError(f"unknown expected type {expected!r}")


def assert_contract(
    obj: dict[str, Any], expected: dict[str, Any], required: set[str], what: str
) -> None:
    missing = required - obj.keys()
    assert not missing, f"{what}: Redis Enterprise fields missing: {sorted(missing)}"
    wrong = {
        name: obj[name]
        for name, kind in expected.items()
        if name in obj and not _type_ok(obj[name], kind)
    }
    assert not wrong, f"{what}: not of Redis Enterprise's type ({REF}): {wrong}"


def test_the_checker_catches_a_wrong_type() -> None:
    """The contract check itself: the old `shard_list` of objects, a null lag, a bool for an
    integer are all refused."""
    with pytest.raises(AssertionError):
        assert_contract({"shard_list": [{"index": 0}]}, BDB, set(), "old bdb")
    with pytest.raises(AssertionError):
        assert_contract({"lag": None}, SYNCER_SOURCE, set(), "null lag")
    with pytest.raises(AssertionError):
        assert_contract({"uid": True}, NODE, set(), "bool uid")
    with pytest.raises(AssertionError):
        assert_contract({}, USER, {"uid"}, "missing uid")


def _sharded(admin_user: User) -> Database:
    from console import services
    from tests.support.pages import DEFAULT_PASSWORD, MB

    return services.database_create(
        actor=admin_user,
        name="sharded",
        memory_size=100 * MB,
        shards_count=3,
        password=DEFAULT_PASSWORD,
    )


def test_bdb(admin_api: Any, admin_user: User, database: Database) -> None:
    sharded = _sharded(admin_user)
    for body in admin_api.get("/v1/bdbs").json():
        assert_contract(body, BDB, BDB_REQUIRED, f"bdb {body['name']}")
        for endpoint in body["endpoints"]:
            assert_contract(endpoint, ENDPOINT, set(ENDPOINT), "endpoint")
    one = admin_api.get(f"/v1/bdbs/{sharded.pk}").json()
    assert_contract(one, BDB, BDB_REQUIRED, "bdb")
    # shard_list: the shards' uids; the details are ours, under `shards`.
    assert one["shard_list"] == [s.pk for s in sharded.shards.all()]
    assert len(one["shard_list"]) == 3
    assert [s["uid"] for s in one["shards"]] == one["shard_list"]
    assert [s["assigned_slots"] for s in one["shards"]] == ["0-5460", "5461-10921", "10922-16383"]


def _destination(admin_user: User, database: Database) -> Database:
    replica_services.replica_sources_set(
        actor=admin_user,
        destination=database,
        sources=[
            SourceInput(uri="redis://:pw@192.0.2.10:6379"),
            SourceInput(uri="redis://192.0.2.11:6380"),
        ],
    )
    return database


def test_replica_sources_before_and_after_a_sync(
    admin_api: Any, admin_user: User, database: Database
) -> None:
    destination = _destination(admin_user, database)
    before = admin_api.get(f"/v1/bdbs/{destination.pk}").json()["replica_sources"]
    assert len(before) == 2
    for source in before:
        assert_contract(source, SYNCER_SOURCE, SYNCER_SOURCE_REQUIRED, "source, before a sync")
        assert "rdb_size" not in source and "lag" not in source  # unknown yet: absent, not null
    generation = ReplicaOf.objects.get(destination=destination).generation
    now = datetime.now(UTC)
    replica_services.replica_sources_live_save(
        destination_id=destination.pk,
        generation=generation,
        sources=[
            LiveSource(
                uid=1,
                name="a",
                source_database_id=None,
                status="in-sync",
                progress=100.0,
                lag=3,
                last_update=now,
                rdb_size=1000,
                rdb_transferred=1000,
            ),
            LiveSource(
                uid=2,
                name="b",
                source_database_id=None,
                status="syncing",
                progress=None,
                lag=None,
                last_update=None,
                rdb_size=None,
                rdb_transferred=10,
            ),
        ],
    )
    after = admin_api.get(f"/v1/bdbs/{destination.pk}").json()["replica_sources"]
    synced, syncing = after
    assert_contract(synced, SYNCER_SOURCE, SYNCER_SOURCE_REQUIRED | {"lag", "rdb_size"}, "synced")
    assert synced["lag"] == 3 and synced["rdb_size"] == 1000
    assert synced["last_update"].startswith(now.strftime("%Y-%m-%dT%H:%M"))
    assert_contract(syncing, SYNCER_SOURCE, SYNCER_SOURCE_REQUIRED, "syncing")
    assert syncing["rdb_transferred"] == 10 and "rdb_size" not in syncing
    # Passwords never: the URI is redacted.
    assert ":pw@" not in str(after)


def test_cluster_and_nodes(admin_api: Any, database: Database) -> None:
    cluster = admin_api.get("/v1/cluster").json()
    assert_contract(cluster, CLUSTER, set(CLUSTER), "cluster")
    assert "PRIVATE KEY" not in str(cluster)
    nodes = admin_api.get("/v1/nodes").json()
    assert nodes
    for node in nodes:
        assert_contract(node, NODE, set(NODE), "node")
    assert sorted(s for n in nodes for s in n["shard_list"]) == [
        s.pk for s in database.shards.all()
    ]


def test_users(admin_api: Any, viewer_user: User) -> None:
    users = admin_api.get("/v1/users").json()
    assert {u["name"] for u in users} == {"admin", "viewer"}
    for user in users:
        assert_contract(user, USER, set(USER), "user")
    assert {u["name"]: u["role"] for u in users} == {"admin": "admin", "viewer": "cluster_viewer"}
    one = admin_api.get(f"/v1/users/{viewer_user.pk}").json()
    assert_contract(one, USER, set(USER), "user")
    assert "password" not in one


def test_certificates(viewer_api: Any) -> None:
    body = viewer_api.get("/v1/cluster/certificates").json()
    # Redis Enterprise's GET: `<name>_cert` keys with the PEM (its `<name>_key` keys never here).
    for name in ("proxy", "syncer"):
        assert body[f"{name}_cert"].startswith("-----BEGIN CERTIFICATE-----")
        assert f"{name}_key" not in body
    assert {c["name"] for c in body["certificates"]} == {"proxy", "syncer"}
    for cert in body["certificates"]:
        assert_contract(cert, CERTIFICATE, set(CERTIFICATE), "certificate")
    assert "PRIVATE KEY" not in str(body)
