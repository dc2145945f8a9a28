"""The two-host bed itself: isolation, latency, bandwidth, and a teardown that leaves nothing."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading

import pytest

from tests.support.hosts import (
    REPO,
    Bed,
    Host,
    netns_list,
    pids_in_netns_inode,
    process_start_ticks,
    sweep_orphans,
    tcp_rtt_ms,
    tcp_throughput_bps,
)
from tests.support.wait import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MBIT = 1_000_000


def echo(client: Host, listener: socket.socket, address: str, payload: bytes) -> bytes:
    """Send `payload` from `client` to `listener` (at `address`), which sends it back once."""

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.sendall(conn.recv(100))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with client.connect(listener.getsockname()[1], address) as sock:
        sock.sendall(payload)
        got = sock.recv(100)
    thread.join(10)
    return got


def test_hosts_reach_each_other_only_over_the_wan_link(wan_bed: Bed) -> None:
    east, west = wan_bed.east, wan_bed.west
    # Each host has one route: the WAN /24 (no default route, nothing toward the root namespace).
    for host in (east, west):
        routes = host.run(["ip", "-4", "route", "show"]).stdout.strip().splitlines()
        assert routes == [f"10.77.0.0/24 dev wan0 proto kernel scope link src {host.address}"]

    # west reaches east's WAN address, and the frames cross the bridge.
    before = wan_bed.link.stats()["west>east"]["frames"]
    with east.listen() as listener:
        assert echo(west, listener, east.address, b"over the wan") == b"over the wan"
    assert wan_bed.link.stats()["west>east"]["frames"] > before

    # east's management side (its loopback, where its control Redis listens) is not west's:
    # 127.0.0.1 on west is west's own loopback.
    local = east.listen(host="127.0.0.1")
    port = local.getsockname()[1]
    with pytest.raises(ConnectionRefusedError):
        west.connect(port, "127.0.0.1", timeout=5)
    local.close()
    # Any other address is unreachable from a host: refused locally, no packet is sent.
    with pytest.raises(OSError) as exc_info:
        west.connect(80, "10.78.0.1", timeout=5)
    assert exc_info.value.errno == errno.ENETUNREACH

    # Cut the link: west no longer reaches east; restore it: it does again.
    with east.listen() as listener:
        wan_bed.link.cut()
        with pytest.raises(TimeoutError):
            west.connect(listener.getsockname()[1], east.address, timeout=2)
        wan_bed.link.restore()
        assert echo(west, listener, east.address, b"back") == b"back"
    assert wan_bed.link.stats()["west>east"]["dropped_cut"] > 0


def test_round_trip_time_with_and_without_the_delay(wan_bed: Bed) -> None:
    east, west = wan_bed.east, wan_bed.west
    off = tcp_rtt_ms(west, east)
    wan_bed.link.set(delay_ms=20)
    on = tcp_rtt_ms(west, east)
    print(
        f"\nRTT without delay: min {off[0]:.2f} median {statistics.median(off):.2f} ms; "
        f"with 20 ms one way: min {on[0]:.2f} median {statistics.median(on):.2f} "
        f"max {on[-1]:.2f} ms"
    )
    assert on[0] >= 40.0
    assert statistics.median(on) < 60.0  # the delay, not a stall
    assert statistics.median(off) < 5.0


def test_throughput_through_tbf_and_through_the_delay_bridge(wan_bed: Bed) -> None:
    east, west = wan_bed.east, wan_bed.west
    # The delay bridge alone, 20 ms one way: it must carry at least 50 Mbit/s.
    wan_bed.link.set(delay_ms=20)
    bridge = tcp_throughput_bps(east, west, nbytes=64 * 1024 * 1024)
    # tbf at 20 Mbit/s on the link, with the delay on: within ±25 %.
    wan_bed.link.set(rate="20mbit")
    assert "tbf" in wan_bed.link.qdiscs()
    limited = tcp_throughput_bps(east, west, nbytes=12 * 1024 * 1024)
    back = tcp_throughput_bps(west, east, nbytes=6 * 1024 * 1024)
    stats = wan_bed.link.stats()
    print(
        f"\nthrough the delay bridge (20 ms one way): {bridge / MBIT:.0f} Mbit/s; "
        f"tbf 20mbit east>west {limited / MBIT:.1f}, west>east {back / MBIT:.1f} Mbit/s; "
        f"frames dropped at tbf {stats['east>west']['dropped_full']}"
    )
    assert bridge >= 50 * MBIT
    assert 15 * MBIT <= limited <= 25 * MBIT
    assert 15 * MBIT <= back <= 25 * MBIT
    # Offloads are off: the bridge saw real Ethernet frames, never GSO super-frames.
    assert 1400 < stats["east>west"]["max_frame"] <= 1514
    wan_bed.link.set(rate=None)
    assert "tbf" not in wan_bed.link.qdiscs()


def test_teardown_leaves_no_namespace_veth_or_process() -> None:
    bed = Bed(delay_ms=5, rate="100mbit").start()
    namespaces = list(bed.netns.values())
    assert set(namespaces) <= set(netns_list())
    # A process per host that detaches from its parent, as daemonized databases do.
    for host in bed.hosts:
        host.run(["bash", "-c", "setsid sleep 600 >/dev/null 2>&1 < /dev/null &"])
        assert len(wait_for(host.pids, what=f"the daemon on {host.name}")) == 1
    bridge_pid = bed.bridge.pid if bed.bridge else 0
    assert bed.link.stats()["delay_ms"] == 5
    bed.stop()
    assert bed.leftovers() == []
    assert not set(namespaces) & set(netns_list())
    assert not os.path.exists(f"/proc/{bridge_pid}")
    assert (
        bed.prefix
        not in subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    )


OWNER = """
import json, time
from tests.support.hosts import Bed
bed = Bed().start()
print(json.dumps({"prefix": bed.prefix, "inodes": list(bed._inodes.values()),
                  "workdir": str(bed.workdir)}), flush=True)
try:
    time.sleep(600)
except KeyboardInterrupt:  # the bed's SIGTERM handler; atexit then tears the bed down
    pass
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_killed_owner_leaves_nothing(sig: signal.Signals) -> None:
    """SIGTERM: the owner tears its bed down itself. SIGKILL: nothing runs in the owner, and the
    next bed's start (sweep_orphans) removes the orphan."""
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert owner.stdout is not None
    owner_start = process_start_ticks(owner.pid)
    started = json.loads(owner.stdout.readline())
    prefix = started["prefix"]
    namespaces = [f"{prefix}-{role}" for role in ("east", "west", "wan")]
    assert set(namespaces) <= set(netns_list())
    owner.send_signal(sig)
    owner.wait(60)
    if sig == signal.SIGKILL:
        assert set(namespaces) <= set(netns_list())  # orphaned
        assert sorted(sweep_orphans()) == sorted(namespaces)
    assert not set(namespaces) & set(netns_list())
    inodes = started["inodes"]
    assert [p for i in inodes for p in pids_in_netns_inode(i, started_since=owner_start)] == []
    assert not os.path.exists(started["workdir"])
