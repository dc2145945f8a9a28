"""Replica Of between two clusters over a WAN, the way an operator does it: each host runs its own
console, the source URL is copied from east's REST API and pasted unchanged into west's."""

from __future__ import annotations

import time
import urllib.parse
import urllib.request
from typing import Any

import pytest

from tests.support.compare import assert_same_data
from tests.support.hosts import Bed, Host
from tests.support.load import BatchLoad, caught_up, populate
from tests.support.wait import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MB = 1024 * 1024


def create_active(host: Host, name: str, password: str) -> dict[str, Any]:
    body = {"name": name, "memory_size": 128 * MB, "authentication_redis_pass": password}
    uid = host.api.post("/v1/bdbs", body).expect(201)["uid"]
    db: dict[str, Any] = wait_for(
        lambda: (b := host.api.get(f"/v1/bdbs/{uid}").expect())["status"] != "pending" and b,
        what=f"database {name} on {host.name} to start",
    )
    assert db["status"] == "active", db
    return db


def source_of(host: Host, db: dict[str, Any]) -> dict[str, Any]:
    body = host.api.get(f"/v1/bdbs/{db['uid']}").expect()
    sources: list[dict[str, Any]] = body["replica_sources"]
    assert len(sources) == 1, body
    return sources[0]


def wait_in_sync(host: Host, db: dict[str, Any]) -> dict[str, Any]:
    return wait_for(
        lambda: (s := source_of(host, db))["status"] == "in-sync" and s,
        what=f"{db['name']} on {host.name} in-sync (now {source_of(host, db)})",
        timeout=180,
    )


def test_replica_of_from_east_to_west_over_the_wan_and_through_an_outage(wan: Bed) -> None:
    east, west = wan.east, wan.west
    wan.link.set(delay_ms=20, rate="20mbit")  # 40 ms RTT, 20 Mbit/s each way

    a = create_active(east, "a", "secret-a")
    b = create_active(west, "b", "secret-b")
    src = east.redis(a["port"], password="secret-a")
    dst = west.redis(b["port"], password="secret-b")
    populate(src, 20_000)

    # The operator copies east's source URL and pastes it, unchanged, on west.
    url = east.api.post(f"/v1/bdbs/{a['uid']}/actions/replica_source_url").expect()["uri"]
    assert url.startswith("redis://admin:") and url.endswith(f"@{east.address}:{a['port']}")
    # West reaches that address over the WAN only, and sees the latency.
    remote = west.redis(a["port"], host=east.address, password="secret-a")
    started = time.perf_counter()
    assert remote.ping()
    assert remote.ping()  # the second one: one round trip on an open connection
    assert (time.perf_counter() - started) * 1000 >= 40
    remote.close()

    crossed_before = wan.link.stats()["east>west"]["bytes"]
    started = time.monotonic()
    west.api.put(f"/v1/bdbs/{b['uid']}", {"replica_sources": [{"uri": url}]}).expect()
    synced = wait_in_sync(west, b)
    full_sync_s = time.monotonic() - started
    populate(src, 2_000, prefix="more", seed=2)
    caught_up(src, dst)
    # Compared as `admin`: applications may not run DEBUG DIGEST-VALUE.
    b_url = west.api.post(f"/v1/bdbs/{b['uid']}/actions/replica_source_url").expect()["uri"]
    src_admin = east.redis(a["port"], username="admin", password=_password_of(url))
    dst_admin = west.redis(b["port"], username="admin", password=_password_of(b_url))
    assert assert_same_data([src_admin], [dst_admin]) == 22_000
    crossed = wan.link.stats()["east>west"]["bytes"] - crossed_before
    print(
        f"\nfull sync of 20,000 keys over 40 ms RTT / 20 Mbit/s: in-sync {full_sync_s:.1f} s "
        f"after the PUT; {crossed} bytes crossed east>west; source {synced}"
    )
    assert crossed > 2 * MB  # the sync's data (20,000 values of >= 100 bytes) went over the link

    # An outage of a few seconds while east keeps taking writes.
    with BatchLoad(src) as load:
        wait_for(lambda: load.n > 1000, what="the write load to start")
        caught_up(src, dst, "before-cut")
        wan.link.cut()
        cut_at = time.monotonic()
        written_at_cut = load.n
        time.sleep(1)  # what was already past the link when it was cut gets applied
        applied_at_cut = int(dst.get("counter") or 0)
        seen = []
        while time.monotonic() - cut_at < 5:
            s = source_of(west, b)
            seen.append((time.monotonic() - cut_at, s["status"], s.get("lag")))
            time.sleep(0.5)
        applied_during_cut = int(dst.get("counter") or 0) - applied_at_cut
        wan.link.restore()
        restored_at = time.monotonic()
        written_during_cut = load.n - written_at_cut
    caught_up(src, dst, "after-cut")
    recovered_s = time.monotonic() - restored_at
    print(
        f"outage 5 s: {written_during_cut} writes on east meanwhile, {applied_during_cut} applied "
        f"on west in its last 4 s; status/lag seen during it {seen[:2]}…{seen[-2:]}; caught up "
        f"{recovered_s:.1f} s after the link came back"
    )
    assert written_during_cut > 0
    assert applied_during_cut == 0  # the link was really cut
    # Never "in sync, lag 0" while cut: past a few seconds the lag is at least the silence.
    lies = [x for x in seen if x[0] > 3 and x[1] == "in-sync" and (x[2] or 0) < 1000]
    assert lies == [], seen
    assert wan.link.stats()["east>west"]["dropped_cut"] > 0
    wait_in_sync(west, b)
    assert int(dst.get("counter") or 0) == load.n
    assert assert_same_data([src_admin], [dst_admin]) >= 22_000


def _password_of(source_url: str) -> str:
    """The internal password in a `redis://admin:<password>@host:port` source URL."""
    return urllib.parse.unquote(urllib.parse.urlsplit(source_url).password or "")


def test_a_browser_in_the_root_namespace_reaches_a_console_through_a_forward(wan: Bed) -> None:
    port = wan.east.forward()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/login/", timeout=30) as resp:
        assert resp.status == 200
        assert b"csrfmiddlewaretoken" in resp.read()
