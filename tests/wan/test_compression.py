"""Compressed Replica Of between two clusters over the WAN: west's syncer reads east's database
through east's sync gateway (started by east's `make run`), the source URL pasted unchanged."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.support.compare import assert_same_data
from tests.support.hosts import Bed
from tests.support.load import BatchLoad, caught_up, populate_documents
from tests.support.oracle import Recovery
from tests.support.wait import wait_for
from tests.wan.test_replica_of import _password_of, create_active, source_of, wait_in_sync

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def settled(host: Any, db: dict[str, Any]) -> dict[str, Any]:
    """The source row once its byte counters stopped moving (saved about once a second; the
    source's PINGs still add a few bytes)."""
    last: list[int] = [-(1 << 40)]

    def same() -> dict[str, Any] | None:
        s = source_of(host, db)
        if s["ingress_bytes_decompressed"] - last[0] < 1000:
            return s
        last[0] = s["ingress_bytes_decompressed"]
        return None

    return wait_for(same, what="the byte counters to settle", interval=1.5)


def test_compression_6_across_the_hosts_equal_data_a_third_on_the_wire_and_partial_resync(
    wan: Bed,
) -> None:
    east, west = wan.east, wan.west
    wan.link.set(delay_ms=20, rate="50mbit")  # 40 ms RTT, 50 Mbit/s each way
    a = create_active(east, "docs", "secret-a")
    b = create_active(west, "docs-copy", "secret-b")
    url = east.api.post(f"/v1/bdbs/{a['uid']}/actions/replica_source_url").expect()["uri"]
    src = east.redis(a["port"], username="admin", password=_password_of(url))
    b_url = west.api.post(f"/v1/bdbs/{b['uid']}/actions/replica_source_url").expect()["uri"]
    dst = west.redis(b["port"], username="admin", password=_password_of(b_url))
    # A dead link is noticed after 2 x this + 1 s (source.py), so the cut below really drops it.
    src.config_set("repl-ping-replica-period", 2)
    populate_documents(src, 20_000)

    crossed = wan.link.stats()["east>west"]["bytes"]
    started = time.monotonic()
    west.api.put(
        f"/v1/bdbs/{b['uid']}", {"replica_sources": [{"uri": url, "compression": 6}]}
    ).expect()
    wait_in_sync(west, b)
    caught_up(src, dst, "full")
    full_s = time.monotonic() - started
    full = settled(west, b)
    full_crossed = wan.link.stats()["east>west"]["bytes"] - crossed
    assert full["compression"] == 6 and full["uri"].startswith("redis://admin:***@")

    populate_documents(src, 20_000, prefix="streamed", seed=2)  # the command stream
    caught_up(src, dst, "streamed")
    streamed = settled(west, b)
    assert assert_same_data([src], [dst]) == 40_000
    wire = streamed["ingress_bytes"] - full["ingress_bytes"]
    inflated = streamed["ingress_bytes_decompressed"] - full["ingress_bytes_decompressed"]
    full_ratio = full["ingress_bytes_decompressed"] / full["ingress_bytes"]
    print(
        f"\nfull sync of 20,000 documents over 40 ms / 50 Mbit/s: {full_s:.1f} s, "
        f"{full['ingress_bytes']} bytes on the wire for {full['ingress_bytes_decompressed']} "
        f"of snapshot (LZF undone) = {full_ratio:.2f}x, {full_crossed} bytes crossed east>west; "
        f"streaming 20,000 documents: {wire} bytes on the wire for {inflated} = "
        f"{inflated / wire:.2f}x"
    )
    assert wire * 3 < inflated  # text as the application wrote it
    # The snapshot's strings are LZF-compressed by the source (rdbcompression yes, the default):
    # the gateway sends them raw under zlib (rdbrewrite.py), so zlib sees the text.
    assert full["ingress_bytes"] * 3 < full["ingress_bytes_decompressed"]
    assert full_crossed < full["ingress_bytes_decompressed"]  # the link carried the deflated form

    # Cut the link mid-stream, long enough for the syncer to give the connection up.
    with BatchLoad(src) as load:
        wait_for(lambda: load.n > 1000, what="the write load to start")
        caught_up(src, dst, "before-cut")
        with Recovery(src) as recovery:
            wan.link.cut()
            wait_for(
                lambda: source_of(west, b)["status"] == "out-of-sync",
                what="west to notice the dead link",
            )
            wan.link.restore()
            wait_in_sync(west, b)
    caught_up(src, dst, "after-cut")
    assert recovery.partial >= 1 and recovery.full == 0, recovery.__dict__
    assert int(dst.get("counter") or 0) == load.n
    assert [int(x) for x in dst.lrange("log", 0, -1)] == list(range(1, load.n + 1))
    assert assert_same_data([src], [dst]) >= 40_000


def test_no_gateway_on_the_source_host_stops_the_source_with_a_clear_error(wan: Bed) -> None:
    east, west = wan.east, wan.west
    a = create_active(east, "nogw", "secret-a")
    b = create_active(west, "nogw-copy", "secret-b")
    url = east.api.post(f"/v1/bdbs/{a['uid']}/actions/replica_source_url").expect()["uri"]
    source = {"uri": url, "compression": 6, "gateway_port": 9444}  # nothing listens there
    refused = west.api.put(f"/v1/bdbs/{b['uid']}", {"replica_sources": [source]})
    assert refused.status == 400, refused.body
    assert f"no sync gateway answers at {east.address}:9444" in refused.body.decode()
    forced = {"replica_sources": [source], "check_connection": False}  # saved: the job says it
    west.api.put(f"/v1/bdbs/{b['uid']}", forced).expect()
    body = wait_for(
        lambda: (
            (x := west.api.get(f"/v1/bdbs/{b['uid']}").expect())["replica_sync"] == "stopped" and x
        ),
        what="the sync to stop",
    )
    error = body["replica_sources"][0]["last_error"] or body["last_error"]
    assert f"no sync gateway answers at {east.address}:9444" in error, body
    assert f"{east.address}:{a['port']}" in error  # named by host:port, never by its URL
    assert "secret" not in str(body)
