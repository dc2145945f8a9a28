"""`database_replicas`: the replicas connected to a database now, from its shards' `INFO
replication` and `CLIENT LIST TYPE replica`, against a real database process and a real
`redis-server` replica."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from console import selectors
from tests.support.databases import create_active, native_replica
from tests.support.wait import wait_for

pytestmark = pytest.mark.integration


def test_a_native_replica_is_listed_with_its_offset_and_lag_and_gone_once_stopped(
    live_worker: Any, admin_api: Any
) -> None:
    db = create_active(admin_api, name="source")
    assert selectors.database_replicas(db) == []
    native = native_replica(db)
    try:
        with redis.Redis(port=db.port, username="admin", password=db.internal_password) as c:
            c.set("k", "v" * 1000)
            wait_for(
                lambda: (
                    (found := selectors.database_replicas(db))
                    and found[0].offset >= c.info("replication")["master_repl_offset"]
                ),
                what="the replica to acknowledge the write",
            )
        [r] = selectors.database_replicas(db) or []
        assert r.shard == 0
        assert r.address == f"127.0.0.1:{native.port}"
        # The only replica from that address: its connection is told apart.
        assert r.connection.startswith("127.0.0.1:") and r.connection != r.address
        assert r.state == "online"
        assert r.offset > 0 and r.behind_bytes == 0
        assert r.lag_s is not None and 0 <= r.lag_s <= 2
    finally:
        native.stop()
    wait_for(lambda: selectors.database_replicas(db) == [], what="the replica to be gone")


def test_a_database_that_does_not_answer_lists_nothing_known(
    live_worker: Any, admin_api: Any
) -> None:
    db = create_active(admin_api, name="source")
    db.internal_password = "not-its-password-1"  # the console cannot sign in: no answer
    assert selectors.database_replicas(db) is None
