"""The WAN link's wire: an Ethernet bridge in userspace that holds every frame for a one-way delay.

The kernel here has no `netem`, and a TCP proxy would not be transparent (an operator on west must
be able to paste east's source URL, `redis://admin:…@<east address>:<port>`, unchanged). So the
link between the two hosts of tests/support/hosts.py is two veth pairs meeting in a middle network
namespace, and this process, running there, is the only thing that joins them:

    east ns: wan0 ══ veth ══ `east` ┐                    ┌ `west` ══ veth ══ wan0 :west ns
                                    └─ AF_PACKET ⇄ delay ⇄ AF_PACKET ─┘
                                          (this process, in the wan ns)

Each frame read from one veth is sent out of the other one `delay` seconds later, in arrival
order (a frame never overtakes an earlier one, also while the delay changes). The hosts see one
Ethernet segment: ARP, TCP, everything passes, addresses unchanged.

Why frames stay frame-sized: veths offload checksums and segmentation by default, so a packet
socket would read 64 KiB "frames" with unfinished checksums that the other side drops. The bed
turns those offloads off on all four veth ends (hosts.py, `_offloads_off`); `max_frame` in the
stats shows what actually came through.

Control: a Unix socket (the path given with `--control`), one JSON object per line, answered
with the current state and counters: `{"delay_ms": 20}`, `{"cut": true}` (drop every frame, both
ways, the link stays up: a WAN outage), `{"cut": false}`, `{}` (just the stats).

A frame that the egress veth refuses (its `tbf` queue is full: ENOBUFS) is dropped, as a router
drops at a full buffer; TCP then backs off, as it would on a real bottleneck.

Run it (hosts.py does):
`python -m tests.support.delaybridge IF_A IF_B --control PATH [--delay-ms N]`.
Standard library only, so that it starts fast and runs anywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import errno
import json
import signal
import socket
from typing import Any

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_IGNORE_OUTGOING = 23  # Linux 4.20: our own sends are not read back
_BUFFER = 16 * 1024 * 1024
_READ_BURST = 256  # frames read per wake-up before the loop serves the other side
_MAX_FRAME = 65536


def packet_socket(ifname: str) -> socket.socket:
    """A non-blocking raw socket that reads and writes whole Ethernet frames on `ifname`."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    # Room for a burst while the loop is busy elsewhere (FORCE: above rmem_max, we are root).
    sock.setsockopt(socket.SOL_SOCKET, 33, _BUFFER)  # SO_RCVBUFFORCE
    sock.setsockopt(socket.SOL_SOCKET, 32, _BUFFER)  # SO_SNDBUFFORCE
    sock.bind((ifname, ETH_P_ALL))
    sock.setblocking(False)
    return sock


class Direction:
    """One way of the wire: frames read from `rx` wait in a FIFO until due, then go out on `tx`."""

    def __init__(self, name: str, rx: socket.socket, tx: socket.socket, link: Bridge) -> None:
        self.name = name
        self.rx = rx
        self.tx = tx
        self.link = link
        self.queue: collections.deque[tuple[float, bytes]] = collections.deque()
        self.timer: asyncio.TimerHandle | None = None
        self.frames = 0
        self.bytes = 0
        self.max_frame = 0
        self.dropped_cut = 0
        self.dropped_full = 0  # the egress queue (tbf) refused the frame
        self.dropped_other = 0

    def readable(self) -> None:
        loop = self.link.loop
        now = loop.time()
        delay = self.link.delay_s
        for _ in range(_READ_BURST):
            try:
                frame = self.rx.recv(_MAX_FRAME)
            except (BlockingIOError, InterruptedError):
                break
            if self.link.cut:
                self.dropped_cut += 1
                continue
            self.frames += 1
            self.bytes += len(frame)
            self.max_frame = max(self.max_frame, len(frame))
            if delay <= 0 and not self.queue:
                self.send(frame)
                continue
            # Never before an earlier frame: keeps the order when the delay is lowered.
            due = now + delay
            if self.queue and self.queue[-1][0] > due:
                due = self.queue[-1][0]
            self.queue.append((due, frame))
        if self.queue and self.timer is None:
            self.timer = loop.call_at(self.queue[0][0], self.release)

    def release(self) -> None:
        self.timer = None
        now = self.link.loop.time()
        queue = self.queue
        while queue and queue[0][0] <= now:
            self.send(queue.popleft()[1])
        if queue:
            self.timer = self.link.loop.call_at(queue[0][0], self.release)

    def send(self, frame: bytes) -> None:
        try:
            self.tx.send(frame)
        except OSError as exc:
            if exc.errno in (errno.ENOBUFS, errno.EAGAIN):
                self.dropped_full += 1
            else:
                self.dropped_other += 1

    def drop_queued(self) -> None:
        self.dropped_cut += len(self.queue)
        self.queue.clear()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def stats(self) -> dict[str, int]:
        return {
            "frames": self.frames,
            "bytes": self.bytes,
            "max_frame": self.max_frame,
            "queued": len(self.queue),
            "dropped_cut": self.dropped_cut,
            "dropped_full": self.dropped_full,
            "dropped_other": self.dropped_other,
        }


class Bridge:
    def __init__(self, if_a: str, if_b: str, *, delay_ms: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.delay_s = delay_ms / 1000
        self.cut = False
        a, b = packet_socket(if_a), packet_socket(if_b)
        self.sockets = (a, b)
        self.ways = (
            Direction(f"{if_a}>{if_b}", a, b, self),
            Direction(f"{if_b}>{if_a}", b, a, self),
        )
        for way in self.ways:
            self.loop.add_reader(way.rx.fileno(), way.readable)

    def control(self, request: dict[str, Any]) -> dict[str, Any]:
        if "delay_ms" in request:
            delay_ms = float(request["delay_ms"])
            if delay_ms < 0:
                raise ValueError("delay_ms must be >= 0")
            self.delay_s = delay_ms / 1000
        if "cut" in request:
            self.cut = bool(request["cut"])
            if self.cut:
                for way in self.ways:
                    way.drop_queued()
        return {
            "delay_ms": self.delay_s * 1000,
            "cut": self.cut,
            **{way.name: way.stats() for way in self.ways},
        }

    def close(self) -> None:
        for way in self.ways:
            self.loop.remove_reader(way.rx.fileno())
            way.drop_queued()
        for sock in self.sockets:
            sock.close()


async def serve(if_a: str, if_b: str, *, control: str, delay_ms: float) -> None:
    bridge = Bridge(if_a, if_b, delay_ms=delay_ms)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        bridge.loop.add_signal_handler(sig, stop.set)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while line := await reader.readline():
                try:
                    reply = bridge.control(json.loads(line))
                except (ValueError, TypeError) as exc:
                    reply = {"error": str(exc)}
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        writer.close()

    server = await asyncio.start_unix_server(handle, control)
    print(f"delay bridge {if_a} <-> {if_b}, {delay_ms} ms one way, control {control}", flush=True)
    try:
        await stop.wait()
    finally:
        server.close()
        bridge.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("if_a")
    parser.add_argument("if_b")
    parser.add_argument("--control", required=True, help="path of the control Unix socket")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="one-way delay")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.if_a, args.if_b, control=args.control, delay_ms=args.delay_ms))


if __name__ == "__main__":
    main()
