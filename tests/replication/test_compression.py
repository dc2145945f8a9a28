"""Compressed sources end to end through the REST API: a real sync gateway process, real Celery
workers and sync jobs, real servers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings

from tests.replication.test_sync_jobs import admin, bdb, put, wait_status, wait_sync_state
from tests.support.compare import assert_same_data
from tests.support.databases import create_active
from tests.support.gateway import GatewayProcess
from tests.support.load import caught_up, populate_documents
from tests.support.servers import free_port
from tests.support.wait import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def gateway() -> Iterator[GatewayProcess]:
    """This node's sync gateway (on a free port: tests run beside other consoles)."""
    with GatewayProcess(range(settings.DB_PORT_MIN, settings.DB_PORT_MAX + 1)) as gw:
        yield gw


def test_a_compressed_source_syncs_through_the_gateway_and_counts_both_byte_figures(
    admin_api: Any, live_worker: Any, gateway: GatewayProcess
) -> None:
    a = create_active(admin_api, name="a")
    b = create_active(admin_api, name="b")
    src, dst = admin(a), admin(b)
    populate_documents(src, 3000)
    source = {"bdb_uid": a.pk, "compression": 6, "gateway_port": gateway.port}
    resp = put(admin_api, b, replica_sources=[source])
    assert resp.status_code == 200, resp.content
    wait_status(admin_api, b, "in-sync")
    populate_documents(src, 2000, prefix="streamed", seed=2)
    caught_up(src, dst)
    assert assert_same_data([src], [dst]) == 5000
    assert f"database port {a.port}, zlib 6" in gateway.output()  # it came through the gateway

    def counted() -> dict[str, Any] | None:
        s: dict[str, Any] = bdb(admin_api, b)["replica_sources"][0]
        return s if s["ingress_bytes"] * 2 < s["ingress_bytes_decompressed"] else None

    shown = wait_for(counted, what="both byte counters saved")
    assert shown["compression"] == 6 and shown["gateway_port"] == gateway.port

    def stats() -> tuple[int, int] | None:
        body = admin_api.get(f"/v1/bdbs/{b.pk}/sync_source_stats/1?interval=1sec").json()
        intervals = body["sync_source_stats"][0]["intervals"]
        wire = sum(i["ingress_bytes"] for i in intervals)
        inflated = sum(i["ingress_bytes_decompressed"] for i in intervals)
        return (wire, inflated) if wire and inflated > 2 * wire else None

    wait_for(stats, what="sync_source_stats with the wire and the inflated bytes apart")
    metrics = admin_api.get("/metrics").content.decode()
    line = f'replicaof_source_ingress_bytes_decompressed_total{{bdb="{b.pk}",bdb_name="b",'
    assert line in metrics


def test_the_connection_check_goes_through_the_gateway_and_says_when_none_answers(
    admin_api: Any, live_worker: Any, gateway: GatewayProcess
) -> None:
    a = create_active(admin_api, name="a")
    b = create_active(admin_api, name="b")
    nothing = free_port()
    source = {"bdb_uid": a.pk, "compression": 6, "gateway_port": nothing}
    resp = put(admin_api, b, replica_sources=[source])
    assert resp.status_code == 400, resp.content
    assert resp.json()["replica_sources[0].uri"] == [
        f"compression is on, but no sync gateway answers at 127.0.0.1:{nothing} for "
        f"127.0.0.1:{a.port}: start the source cluster's sync gateway, set this source's "
        "gateway port if it is not the default, or turn compression off"
    ]
    # A Redis where the gateway should be: not a gateway.
    source = {"bdb_uid": a.pk, "compression": 6, "gateway_port": a.port}
    resp = put(admin_api, b, replica_sources=[source])
    assert resp.status_code == 400 and "does not serve" in resp.content.decode(), resp.content
    # The gateway is there: the check is its handshake (the database checked the password).
    assert f"database port {a.port}" not in gateway.output()
    source = {"bdb_uid": a.pk, "compression": 6, "gateway_port": gateway.port}
    resp = put(admin_api, b, replica_sources=[source])
    assert resp.status_code == 200, resp.content
    assert f"database port {a.port}, zlib 6" in gateway.output()
    wait_status(admin_api, b, "in-sync")


def test_without_a_gateway_the_source_stops_with_a_clear_error(
    admin_api: Any, live_worker: Any
) -> None:
    a = create_active(admin_api, name="a")
    b = create_active(admin_api, name="b")
    nothing = free_port()
    source = {"bdb_uid": a.pk, "compression": 6, "gateway_port": nothing}
    assert put(admin_api, b, replica_sources=[source], check_connection=False).status_code == 200
    body = wait_sync_state(admin_api, b, "stopped")
    error = body["replica_sources"][0]["last_error"] or body["last_error"]
    assert f"no sync gateway answers at 127.0.0.1:{nothing}" in error, body
    assert error.startswith("source a: "), error


def test_a_gateway_port_without_compression_is_a_field_error(
    admin_api: Any, live_worker: Any
) -> None:
    b = create_active(admin_api, name="b")
    source = {"uri": "redis://192.0.2.1:6379", "gateway_port": 9444}
    resp = put(admin_api, b, replica_sources=[source], check_connection=False)
    assert resp.status_code == 400, resp.content
    assert "gateway port is only used with compression" in resp.content.decode()
    assert "replica_sources[0].gateway_port" in resp.content.decode()
    assert bdb(admin_api, b)["replica_sources"] == []
