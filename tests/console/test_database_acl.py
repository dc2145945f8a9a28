"""What an application user (`default`) may run on a database, and on a Replica Of destination:
databases made through the API, started by the real worker, commands sent to the real servers."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from console.models import Database
from tests.support.databases import create_active, database_status
from tests.support.wait import wait_for

pytestmark = pytest.mark.integration

FUNCTION = "#!lua name=lib\nredis.register_function('f', function() return 1 end)"
WRITING_SCRIPT = "return redis.call('set', KEYS[1], 'x')"
READING_SCRIPT = "return redis.call('get', KEYS[1])"

# Never for an application user, writable database or destination.
ADMIN_COMMANDS = [
    ("ACL", "SETUSER", "default", "+@all"),
    ("ACL", "SETUSER", "default", "+@write"),
    ("ACL", "GETUSER", "admin"),
    ("ACL", "LIST"),
    ("CONFIG", "SET", "maxmemory", "0"),
    ("CONFIG", "GET", "*"),
    ("FLUSHALL",),
    ("FLUSHDB",),
    ("FUNCTION", "LOAD", FUNCTION),
    ("FUNCTION", "FLUSH"),
    ("MODULE", "LIST"),
    ("REPLICAOF", "127.0.0.1", "1"),
    ("REPLICAOF", "NO", "ONE"),
    ("DEBUG", "SLEEP", "0"),
    ("SHUTDOWN", "NOSAVE"),
    ("CLIENT", "LIST"),
    ("CLIENT", "KILL", "USER", "admin"),
    ("SAVE",),
    ("MIGRATE", "127.0.0.1", "1", "k", "0", "1"),
]
# Refused on a destination only.
WRITE_COMMANDS = [
    ("SET", "k", "v"),
    ("DEL", "k"),
    ("SCRIPT", "LOAD", "return 1"),
    ("FCALL", "f", "0"),
]


def _app(db: Database, password: str) -> redis.Redis:
    return redis.Redis(port=db.port, username="default", password=password)


def _refused(client: redis.Redis, command: tuple[str, ...]) -> bool:
    try:
        client.execute_command(*command)
    except redis.exceptions.NoPermissionError:
        return True
    return False


def _works_for_an_application(client: redis.Redis, key: str) -> None:
    """What an application of either kind of database does, and gets."""
    assert client.ping()
    assert client.execute_command("CLIENT", "SETNAME", "app-1") == b"OK"
    assert client.client_getname() == "app-1"
    assert "redis_version" in client.info("server")
    assert client.get(key) == b"seeded"
    assert client.eval(READING_SCRIPT, 1, key) == b"seeded"
    with client.pipeline(transaction=True) as tx:  # MULTI ... EXEC
        tx.get(key)
        tx.exists(key)
        tx.ttl(key)
        assert tx.execute() == [b"seeded", 1, -1]
    assert list(client.scan_iter(match=key)) == [key.encode()]
    subscriber = client.pubsub()
    subscriber.subscribe("news")
    wait_for(lambda: subscriber.get_message(timeout=0.1), what="the subscription")
    assert client.publish("news", "hello") == 1
    got = wait_for(lambda: subscriber.get_message(timeout=0.1), what="the message")
    assert got["data"] == b"hello"
    subscriber.close()


def test_application_users_never_get_admin_commands_and_a_destination_is_read_only(
    admin_api: Any, live_worker: Any
) -> None:
    writable = create_active(admin_api, name="app-writable", authentication_redis_pass="app-pw-1")
    dest = create_active(admin_api, name="app-dest", authentication_redis_pass="app-pw-2")
    resp = admin_api.put(
        f"/v1/bdbs/{dest.pk}", {"replica_sources": [{"bdb_uid": writable.pk}]}, format="json"
    )
    assert resp.status_code == 200, resp.content
    wait_for(
        lambda: Database.objects.get(pk=dest.pk).read_only and database_status(dest.pk) == "active",
        what="the destination's read-only ACL to be applied",
    )

    app = _app(writable, "app-pw-1")
    ro = _app(dest, "app-pw-2")
    # A writable database: writes, scripts that write, MULTI/EXEC with writes, SCRIPT LOAD.
    assert app.set("seed", "seeded")
    assert app.eval(WRITING_SCRIPT, 1, "by-script") == b"OK"
    sha = app.script_load(READING_SCRIPT)
    assert app.evalsha(sha, 1, "seed") == b"seeded"
    with app.pipeline(transaction=True) as tx:
        tx.incr("counter")
        tx.incr("counter")
        assert tx.execute() == [1, 2]
    _works_for_an_application(app, "seed")
    # The destination received the key from its source (the syncer writes as admin).
    admin = redis.Redis(port=dest.port, username="admin", password=dest.internal_password)
    # Waiting for it (not writing it as admin): a write could land before the sync's first
    # flush, which would delete it.
    wait_for(lambda: admin.get("seed") == b"seeded", what="the source's key on the destination")
    _works_for_an_application(ro, "seed")

    for command in ADMIN_COMMANDS:
        assert _refused(app, command), command
        assert _refused(ro, command), command
    for command in WRITE_COMMANDS:
        assert _refused(ro, command), command
    with pytest.raises(redis.ResponseError, match="can't run this command"):
        ro.eval(WRITING_SCRIPT, 1, "seed")
    assert ro.get("seed") == b"seeded"
    # Nothing of the above changed the servers: ACL as written, still serving, still writable.
    for db, expected in ((writable, " ~* &* +@all -@admin "), (dest, " ~* &* -@all +@")):
        users = redis.Redis(port=db.port, username="admin", password=db.internal_password)
        lines = users.execute_command("ACL", "LIST")
        assert expected in next(u for u in lines if u.startswith(b"user default")).decode()
    assert app.set("still", "writable")
