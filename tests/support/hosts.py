"""Two hosts on one machine, joined by a WAN link with latency and a bandwidth limit.

Every cross-cluster test uses this bed (and `scripts/wan.sh` gives people the same one):

    root ns (the test process; nothing of the bed lives here)
    ┌────────────────┐        ┌──────────────────────────┐        ┌────────────────┐
    │ <prefix>-east  │  veth  │ <prefix>-wan             │  veth  │ <prefix>-west  │
    │ wan0 10.77.0.1 ├────────┤ east ⇄ delay bridge ⇄ west├────────┤ wan0 10.77.0.2 │
    │ lo  127.0.0.1  │        │ (tbf on each egress)     │        │ lo  127.0.0.1  │
    └────────────────┘        └──────────────────────────┘        └────────────────┘

Design, and why:
- **Latency**: the kernel has no `netem`, so a middle namespace joins the hosts' veths with a
  userspace Ethernet bridge (tests/support/delaybridge.py: asyncio, AF_PACKET) that holds each
  frame for the one-way delay. It is transparent: the hosts share one L2 segment, addresses and
  ports are what they are, so east's source URL `redis://admin:…@10.77.0.1:12000` pasted on west
  works unchanged and its traffic sees the latency. A TCP proxy would have changed the address.
  Offloads (checksum, scatter-gather, TSO/GSO, GRO) are turned off on all four veth ends, so the
  bridge moves real ≤ 1514-byte frames with finished checksums. On this 2-core machine one TCP
  stream through it ran at 390-530 Mbit/s with 20 ms one way, RTT 40.6-40.9 ms (tests/wan/
  test_bed.py prints what a run measures and requires ≥ 50 Mbit/s).
- **Bandwidth**: `tc tbf` on the bridge's two egress veths (in the wan namespace), so the hosts
  themselves carry no qdisc, and a full queue drops frames like a router's buffer would.
- **Reaching a host from the test process**: no management veth, no address or route in the root
  namespace (nothing there to clash with other runs or with the machine's own networks). Instead
  the test process creates its sockets *inside* a host's namespace: setns(2) on the calling
  thread, socket(), setns back (a socket stays in the namespace it was created in). Python 3.11
  has no `os.setns`, so libc's is called through ctypes. `host.redis(port)` connects from the
  host's own 127.0.0.1 to its WAN address (a local client, as `redis-cli` on that machine would
  be, so `DEBUG DIGEST-VALUE` for comparisons is allowed); `host.api` is a small JSON client of the
  host's console; `host.forward(port)` gives a loopback port of the root namespace for a browser.
  Neither host can reach the other's loopback or the root namespace: each has one route, the WAN
  /24.
- **A console per host**: `scripts/run.sh` (what `make run` runs) inside the namespace, with its
  own temporary `var/`, node address = the WAN address (its databases bind there), ports as on a
  normal machine (8080, 6380, 12000-12999: each namespace has its own port space).
- **Cleanup**: names are `roc-<pid>-<random>-{east,west,wan}`, so parallel runs never clash and a
  leftover of a run that was killed (SIGKILL: no finalizer) is recognised by its dead pid and
  removed by the next run. Teardown kills every process of each namespace (`ip netns pids`),
  deletes the namespaces (and with them the veths and qdiscs) and the temp dir;
  `Bed.leftovers()` then looks for anything that survived: a namespace, a process whose network
  namespace is one of ours (by inode, also after the name is gone), an interface named after the
  bed in the root namespace, the temp dir.

Use in tests. Fixtures (tests/wan/conftest.py): `wan_bed` (the hosts and the link, per test),
`wan_consoles` (plus a ready console on each host, per module) and `wan` (that, with the link
reset to no delay, no limit, not cut). A test bed's logs are kept in the run's var dir under
`wan-logs/<prefix>/`.

    bed.link.set(delay_ms=20, rate="50mbit")      # one way / per direction; rate=None: no limit
    bed.link.cut(); bed.link.restore()             # frames dropped both ways, links stay up
    bed.link.stats()                               # per-direction frames, bytes, drops
    bed.west.run(["ip", "addr"])                   # a command inside west's namespace
    bed.east.redis(port, password=pw)              # redis.Redis, a local client on east
    bed.west.redis(port, host=bed.east.address)    # from west, over the WAN
    bed.east.connect(port, host) / bed.east.listen(port)   # plain sockets inside east
    bed.east.api.post("/v1/bdbs", {...}).expect(201)       # JSON, admin basic auth
    bed.east.url("/v1/bdbs")                       # http://10.77.0.1:8080/v1/bdbs (for messages)
    bed.east.forward()                             # 127.0.0.1 port in the root ns -> east:8080
    tcp_rtt_ms(bed.west, bed.east); tcp_throughput_bps(bed.east, bed.west, nbytes=…)

From the shell: `python -m tests.support.hosts up|down|status|set` (scripts/wan.sh wraps it).
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import ctypes
import fcntl
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import redis

from tests.support.proxy import TcpProxy
from tests.support.wait import wait_for

REPO = Path(__file__).resolve().parent.parent.parent
WAN_PREFIX_LEN = 24
ADDRESSES = {"east": "10.77.0.1", "west": "10.77.0.2"}
HOST_IF = "wan0"  # the WAN interface's name inside each host
CONSOLE_HTTP_PORT = 8080
CONSOLE_ADMIN_USER = "admin"
# Test beds: roc-<owner pid>-<random>-<role>. wan.sh's bed for people is roc-<role>.
_TEST_NS = re.compile(r"^roc-(\d+)-[0-9a-f]{6}-(east|west|wan)$")
ROLES = ("east", "west", "wan")


class BedError(RuntimeError):
    pass


# ------------------------------------------------------------------ namespaces from this process

_libc = ctypes.CDLL(None, use_errno=True)
_CLONE_NEWNET = 0x40000000


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextlib.contextmanager
def netns_entered(name: str) -> Iterator[None]:
    """Run the block with the calling thread in network namespace `name` (other threads stay).

    Sockets created in the block belong to that namespace for their whole life."""
    with open(f"/run/netns/{name}") as target, open("/proc/thread-self/ns/net") as home:
        _setns(target.fileno())
        try:
            yield
        finally:
            _setns(home.fileno())


def ns_connect(
    netns: str,
    address: tuple[str, int],
    *,
    timeout: float | None = 10.0,
    source: tuple[str, int] | None = None,
) -> socket.socket:
    """A TCP connection made from inside `netns`."""
    with netns_entered(netns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        if source is not None:
            sock.bind(source)
        sock.connect(address)
    except BaseException:
        sock.close()
        raise
    return sock


def ns_listen(netns: str, address: tuple[str, int], *, backlog: int = 16) -> socket.socket:
    """A listening TCP socket inside `netns` (port 0: any free one, see getsockname())."""
    with netns_entered(netns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.listen(backlog)
    return sock


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise BedError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc


def netns_list() -> list[str]:
    out = _ip("netns", "list").stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def netns_pids(name: str) -> list[int]:
    proc = _ip("netns", "pids", name, check=False)
    return [int(p) for p in proc.stdout.split()] if proc.returncode == 0 else []


def process_start_ticks(pid: int) -> int:
    """When a process started, in clock ticks since boot (/proc/<pid>/stat, field 22)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[19])


def pids_in_netns_inode(inode: int, *, started_since: int = 0) -> list[int]:
    """Every process whose network namespace has this inode (works after the name is deleted).

    The kernel hands a freed namespace's inode number to the next namespace made, so after a
    teardown the inode may already be another bed's (parallel runs): `started_since` (clock
    ticks, `process_start_ticks` of the bed's owner) keeps only processes the owner could have
    started."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                pid = int(entry)
                in_ns = os.stat(f"/proc/{pid}/ns/net").st_ino == inode
                if in_ns and process_start_ticks(pid) >= started_since:
                    pids.append(pid)
    return pids


def _describe_pid(pid: int) -> str:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        cmd = "?"
    return f"pid {pid} ({cmd[:120]})"


def kill_netns_processes(name: str, *, timeout: float = 30.0) -> None:
    """SIGKILL every process of the namespace until none is left (children may appear meanwhile)."""
    deadline = time.monotonic() + timeout
    while pids := netns_pids(name):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            raise BedError(f"processes survive in {name}: {[_describe_pid(p) for p in pids]}")
        time.sleep(0.05)


# Legacy ethtool ioctls (`ethtool -K` without the ethtool package); the getter is setter - 1.
_SIOCETHTOOL = 0x8946
_OFFLOADS = {"tx-checksum": 0x17, "scatter-gather": 0x19, "tso": 0x1F, "gso": 0x24, "gro": 0x2C}


def _ethtool(sock: socket.socket, ifname: str, cmd: int, value: int = 0) -> int:
    data = ctypes.create_string_buffer(struct.pack("II", cmd, value), 8)
    ifreq = struct.pack("16sP16x", ifname.encode(), ctypes.addressof(data))
    fcntl.ioctl(sock.fileno(), _SIOCETHTOOL, ifreq)
    return int(struct.unpack("II", data.raw)[1])


def _offloads_off(netns: str, ifname: str) -> None:
    """Real frames on the wire: no checksum offload (the bridge would forward unfinished
    checksums), no segmentation offload (64 KiB "frames"), no GRO. Read back to be sure."""
    with netns_entered(netns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        for name, cmd in _OFFLOADS.items():
            _ethtool(sock, ifname, cmd, 0)
            if _ethtool(sock, ifname, cmd - 1):
                raise BedError(f"{netns}/{ifname}: could not turn {name} offload off")


def _rate_bits(rate: str) -> int:
    """tc's rate syntax as bits/s: 20mbit, 500kbit, 1gbit, 1000000bit."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(bit|kbit|mbit|gbit)", rate.strip().lower())
    if m is None:
        raise ValueError(f"rate {rate!r}: use e.g. 50mbit, 500kbit, 1gbit")
    scale = {"bit": 1, "kbit": 1000, "mbit": 1000**2, "gbit": 1000**3}[m.group(2)]
    return int(float(m.group(1)) * scale)


# --------------------------------------------------------------------------------- the WAN link


class Link:
    """The wire between east and west: the delay bridge plus a tbf per direction."""

    def __init__(self, netns: str, control: Path) -> None:
        self.netns = netns
        self.control_path = control
        self.delay_ms = 0.0
        self.rate: str | None = None

    def _control(self, request: dict[str, Any]) -> dict[str, Any]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            sock.connect(str(self.control_path))
            sock.sendall(json.dumps(request).encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    raise BedError("the delay bridge closed its control socket")
                buf += chunk
        reply: dict[str, Any] = json.loads(buf)
        if "error" in reply:
            raise BedError(f"delay bridge: {reply['error']}")
        return reply

    def set(self, *, delay_ms: float | None = None, rate: str | bool | None = False) -> None:
        """One-way delay in ms (both directions), and/or a rate such as "50mbit" per direction
        (None: unlimited; leave `rate` out to keep it)."""
        if delay_ms is not None:
            self._control({"delay_ms": delay_ms})
            self.delay_ms = delay_ms
        if rate is not False:
            self._shape(None if rate is None or rate is True else str(rate))

    def _tc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            ["ip", "netns", "exec", self.netns, "tc", *args],
            capture_output=True,
            text=True,
            check=False,
        )
        if check and proc.returncode != 0:
            raise BedError(f"tc {' '.join(args)}: {proc.stderr.strip()}")
        return proc

    def _shape(self, rate: str | None) -> None:
        for dev in ("east", "west"):  # each is the egress toward that host
            if rate is None:
                self._tc("qdisc", "del", "dev", dev, "root", check=False)  # none there: fine
                continue
            bits = _rate_bits(rate)
            # Bucket: 10 ms of the rate, at least 16 KiB; queue: 100 ms of the rate.
            burst = max(16384, bits // 8 // 100)
            tbf = f"tbf rate {bits}bit burst {burst} latency 100ms"
            self._tc("qdisc", "replace", "dev", dev, "root", *tbf.split())
        self.rate = rate

    def cut(self) -> None:
        """A WAN outage: every frame is dropped both ways (the hosts' links stay up)."""
        self._control({"cut": True})

    def restore(self) -> None:
        self._control({"cut": False})

    def stats(self) -> dict[str, Any]:
        """The bridge's state and per-direction counters (`east>west`, `west>east`)."""
        return self._control({})

    def qdiscs(self) -> str:
        return self._tc("qdisc", "show").stdout


# ------------------------------------------------------------------------------------ a host


class _NsHTTPConnection(http.client.HTTPConnection):
    def __init__(self, netns: str, host: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.netns = netns

    def connect(self) -> None:
        self.sock = ns_connect(self.netns, (self.host, self.port), timeout=self.timeout)


@dataclass
class ApiResponse:
    method: str
    path: str
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def expect(self, *statuses: int) -> Any:
        """The JSON body, or an AssertionError that shows what the console answered."""
        if self.status not in (statuses or (200,)):
            shown = self.body[:2000].decode(errors="replace")
            raise AssertionError(f"{self.method} {self.path}: {self.status} {shown}")
        return self.json()


class ApiClient:
    """JSON over HTTP basic auth to a console, from inside the host's namespace (stdlib only:
    the project depends on neither requests nor httpx)."""

    def __init__(self, host: Host, *, user: str, password: str, port: int = CONSOLE_HTTP_PORT):
        self.host, self.user, self.password, self.port = host, user, password, port

    def request(
        self, method: str, path: str, body: Any = None, *, timeout: float = 60.0
    ) -> ApiResponse:
        conn = _NsHTTPConnection(self.host.netns, self.host.address, self.port, timeout)
        auth = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        headers = {"Authorization": f"Basic {auth}", "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            return ApiResponse(method, path, resp.status, resp.read())
        finally:
            conn.close()

    def get(self, path: str) -> ApiResponse:
        return self.request("GET", path)

    def post(self, path: str, body: Any = None) -> ApiResponse:
        return self.request("POST", path, body if body is not None else {})

    def put(self, path: str, body: Any) -> ApiResponse:
        return self.request("PUT", path, body)

    def delete(self, path: str) -> ApiResponse:
        return self.request("DELETE", path)


class _NsConnection(redis.connection.Connection):
    """A redis-py connection whose socket is created inside a network namespace (optionally
    from a given source address)."""

    def __init__(self, *, netns: str, source_host: str | None = None, **kwargs: Any) -> None:
        self.netns = netns
        self.source_host = source_host
        super().__init__(**kwargs)

    def _connect(self) -> socket.socket:
        sock = ns_connect(
            self.netns,
            (self.host, self.port),
            timeout=self.socket_connect_timeout,
            source=(self.source_host, 0) if self.source_host else None,
        )
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(self.socket_timeout)
        return sock


class Console:
    """One console instance on a host, as `make run` starts it (scripts/run.sh in the namespace)."""

    def __init__(self, host: Host, *, admin_password: str, var_dir: Path) -> None:
        self.host = host
        self.admin_password = admin_password
        self.var_dir = var_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = var_dir.parent / f"run-{host.name}.log"

    def env(self) -> dict[str, str]:
        """run.sh's environment: a clean one (none of the test run's CONSOLE_*/REDIS_URL)."""
        address = self.host.address
        return {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8",
            "CONSOLE_PYTHON": sys.executable,
            "CONSOLE_VAR_DIR": str(self.var_dir),
            "CONSOLE_HTTP_HOST": address,
            "CONSOLE_HTTP_PORT": str(CONSOLE_HTTP_PORT),
            "CONSOLE_NODE_NAME": self.host.name,
            "CONSOLE_NODE_ADDRESS": address,
            "CONSOLE_CLUSTER_NAME": f"{self.host.name}.local",
            "CONSOLE_ADMIN_USER": CONSOLE_ADMIN_USER,
            "CONSOLE_ADMIN_PASSWORD": self.admin_password,
            "ALLOWED_HOSTS": f"{address},127.0.0.1,localhost",
            "CSRF_TRUSTED_ORIGINS": f"http://{address}:{CONSOLE_HTTP_PORT}",
            "CONSOLE_RECONCILE_INTERVAL": "1",
        }

    def start(self) -> None:
        self.var_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", self.host.netns, "bash", "scripts/run.sh"],
                cwd=REPO,
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C of the test run reaches it only through us
            )

    def wait_ready(self, timeout: float = 180.0) -> None:
        """The ASGI port answers and GET /v1/cluster with the admin login is 200."""

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise BedError(f"run.sh on {self.host.name} exited: {self.log_tail()}")
            try:
                return self.host.api.get("/v1/cluster").status == 200
            except OSError:
                return False

        wait_for(
            ready,
            what=f"the console on {self.host.name} ({self.log})",
            timeout=timeout,
            interval=0.3,
        )

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        """SIGTERM to run.sh (it stops its children), then whatever is left in the namespace:
        the database processes, which deliberately outlive run.sh, and any straggler."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=10)
            self.proc = None
        kill_netns_processes(self.host.netns)


class Host:
    """One machine of the bed: its namespace, WAN address and, once started, its console."""

    def __init__(self, name: str, netns: str, address: str, workdir: Path) -> None:
        self.name = name
        self.netns = netns
        self.address = address
        self.workdir = workdir
        self.console: Console | None = None
        self._api: ApiClient | None = None
        self._forwards: list[TcpProxy] = []

    def __repr__(self) -> str:
        return f"Host({self.name}, {self.netns}, {self.address})"

    def run(
        self, argv: Sequence[str], *, check: bool = True, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the host's namespace and wait for it (text output captured)."""
        return subprocess.run(
            ["ip", "netns", "exec", self.netns, *argv],
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )

    def connect(
        self, port: int, host: str | None = None, *, timeout: float | None = 10.0
    ) -> socket.socket:
        """A TCP connection from this host to `host` (default: itself, from its 127.0.0.1)."""
        if host is None:
            return ns_connect(
                self.netns, (self.address, port), timeout=timeout, source=("127.0.0.1", 0)
            )
        return ns_connect(self.netns, (host, port), timeout=timeout)

    def listen(self, port: int = 0, host: str | None = None) -> socket.socket:
        return ns_listen(self.netns, (host or self.address, port))

    def redis(self, port: int, host: str | None = None, **kwargs: Any) -> redis.Redis:
        """A redis-py client on this host. Without `host` it is a local client of this host's
        server at its WAN address (from 127.0.0.1: Redis allows DEBUG to it); with `host` it
        connects there from this host, over the WAN for the other host's address."""
        kwargs.setdefault("socket_timeout", 30)
        kwargs.setdefault("socket_connect_timeout", 10)
        pool = redis.ConnectionPool(
            connection_class=_NsConnection,
            netns=self.netns,
            source_host="127.0.0.1" if host is None else None,
            host=host or self.address,
            port=port,
            **kwargs,
        )
        return redis.Redis(connection_pool=pool)

    def url(self, path: str = "/") -> str:
        return f"http://{self.address}:{CONSOLE_HTTP_PORT}{path}"

    @property
    def api(self) -> ApiClient:
        if self._api is None:
            if self.console is None:
                raise BedError(f"no console on {self.name}: start_console() first")
            self._api = ApiClient(
                self, user=CONSOLE_ADMIN_USER, password=self.console.admin_password
            )
        return self._api

    def forward(self, port: int = CONSOLE_HTTP_PORT) -> int:
        """A port on 127.0.0.1 of the root namespace that leads to `port` of this host (for a
        browser, which cannot enter a namespace)."""

        def make_socket() -> socket.socket:
            with netns_entered(self.netns):
                return socket.socket(socket.AF_INET, socket.SOCK_STREAM)

        proxy = TcpProxy(port, self.address, make_socket=make_socket).start()
        self._forwards.append(proxy)
        return proxy.port

    def start_console(self, *, admin_password: str | None = None, wait: bool = True) -> Console:
        self.console = Console(
            self,
            admin_password=admin_password or f"admin-{secrets.token_hex(8)}",
            var_dir=self.workdir / self.name / "var",
        )
        self._api = None
        self.console.start()
        if wait:
            self.console.wait_ready()
        return self.console

    def pids(self) -> list[int]:
        return netns_pids(self.netns)

    def stop(self) -> None:
        for proxy in self._forwards:
            proxy.stop()
        self._forwards.clear()
        if self.console is not None:
            self.console.stop()
        kill_netns_processes(self.netns)


# ------------------------------------------------------------------------- measuring the link


def tcp_rtt_ms(client: Host, server: Host, *, count: int = 20) -> list[float]:
    """Round-trip times of 1-byte TCP ping-pongs from `client` to `server`'s WAN address, sorted."""
    listener = server.listen()
    port = listener.getsockname()[1]

    def echo() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while data := conn.recv(64):
                conn.sendall(data)

    thread = threading.Thread(target=echo, daemon=True)
    thread.start()
    times = []
    try:
        with client.connect(port, server.address) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for _ in range(count):
                started = time.perf_counter()
                sock.sendall(b"x")
                if sock.recv(1) != b"x":
                    raise BedError("the echo server closed the connection")
                times.append((time.perf_counter() - started) * 1000)
    finally:
        thread.join(30)
        listener.close()
    return sorted(times)


def tcp_throughput_bps(sender: Host, receiver: Host, *, nbytes: int) -> float:
    """Bits per second of one TCP transfer of `nbytes` from `sender` to `receiver`'s WAN address,
    timed on the receiver from its first byte to its last."""
    listener = receiver.listen()
    port = listener.getsockname()[1]
    result: dict[str, float] = {}

    def sink() -> None:
        conn, _ = listener.accept()
        got, first = 0, 0.0
        with conn:
            while chunk := conn.recv(1 << 20):
                if not got:
                    first = time.perf_counter()
                got += len(chunk)
        result["bytes"], result["seconds"] = got, time.perf_counter() - first

    thread = threading.Thread(target=sink, daemon=True)
    thread.start()
    try:
        with sender.connect(port, receiver.address, timeout=120) as sock:
            block = b"\0" * (1 << 16)
            for _ in range(nbytes // len(block)):
                sock.sendall(block)
    finally:
        thread.join(300)
        listener.close()
    if result.get("bytes") != nbytes // (1 << 16) * (1 << 16):
        raise BedError(f"the transfer was cut short: {result}")
    return result["bytes"] * 8 / result["seconds"]


# ---------------------------------------------------------------------------------- the bed


_live_beds: list[Bed] = []


class Bed:
    """east and west, the link between them, and cleanup that leaves nothing behind."""

    def __init__(
        self,
        *,
        prefix: str | None = None,
        workdir: Path | None = None,
        delay_ms: float = 0.0,
        rate: str | None = None,
        keep_logs: Path | None = None,
    ) -> None:
        self.owned = prefix is None  # a test's bed, torn down at exit and swept when orphaned
        self.prefix = prefix or f"roc-{os.getpid()}-{secrets.token_hex(3)}"
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix=f"{self.prefix}-"))
        self.netns = {role: f"{self.prefix}-{role}" for role in ROLES}
        self.east = Host("east", self.netns["east"], ADDRESSES["east"], self.workdir)
        self.west = Host("west", self.netns["west"], ADDRESSES["west"], self.workdir)
        self.link = Link(self.netns["wan"], self.workdir / "bridge.sock")
        self.initial_delay_ms = delay_ms
        self.keep_logs = keep_logs  # logs are copied to keep_logs/<prefix>/ at teardown
        self.initial_rate = rate
        self.bridge: subprocess.Popen[bytes] | None = None
        self._inodes: dict[str, int] = {}

    @property
    def hosts(self) -> tuple[Host, Host]:
        return (self.east, self.west)

    # -- up -----------------------------------------------------------------------------------

    def start(self) -> Bed:
        if self.owned:
            sweep_orphans()
        existing = set(netns_list())
        if clash := [ns for ns in self.netns.values() if ns in existing]:
            raise BedError(f"namespaces already exist: {clash} (scripts/wan.sh down?)")
        if self.owned:
            if not _live_beds:
                _trap_sigterm()
            _live_beds.append(self)
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
            self._build()
        except BaseException:
            self.stop()
            raise
        return self

    def _build(self) -> None:
        for ns in self.netns.values():
            _ip("netns", "add", ns)
            self._inodes[ns] = os.stat(f"/run/netns/{ns}").st_ino
            self._sysctl(ns, "net/ipv6/conf/all/disable_ipv6", "1")
            self._sysctl(ns, "net/ipv6/conf/default/disable_ipv6", "1")
            _ip("-n", ns, "link", "set", "lo", "up")
        wan = self.netns["wan"]
        for host in self.hosts:
            # Both ends are created in their namespaces: nothing appears in the root namespace.
            peer = ("peer", "name", host.name, "netns", wan)
            _ip("link", "add", HOST_IF, "netns", host.netns, "type", "veth", *peer)
            _offloads_off(host.netns, HOST_IF)
            _offloads_off(wan, host.name)
            _ip("-n", host.netns, "addr", "add", f"{host.address}/{WAN_PREFIX_LEN}", "dev", HOST_IF)
            _ip("-n", host.netns, "link", "set", HOST_IF, "up")
            _ip("-n", wan, "link", "set", host.name, "up")
        log = open(self.workdir / "bridge.log", "ab")  # noqa: SIM115 - closed below, the child keeps it
        control, delay = str(self.link.control_path), str(self.initial_delay_ms)
        argv = [sys.executable, "-m", "tests.support.delaybridge", "east", "west"]
        self.bridge = subprocess.Popen(
            ["ip", "netns", "exec", wan, *argv, "--control", control, "--delay-ms", delay],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

        def bridge_up() -> bool:
            if self.bridge is not None and self.bridge.poll() is not None:
                raise BedError(f"the delay bridge exited: {self._bridge_log()}")
            try:
                self.link.stats()
            except OSError:
                return False
            return True

        wait_for(bridge_up, what="the delay bridge's control socket", timeout=30, interval=0.05)
        self.link.delay_ms = self.initial_delay_ms
        if self.initial_rate:
            self.link.set(rate=self.initial_rate)

    def _bridge_log(self) -> str:
        with contextlib.suppress(OSError):
            return (self.workdir / "bridge.log").read_text(errors="replace")[-2000:]
        return "(no log)"

    @staticmethod
    def _sysctl(ns: str, key: str, value: str) -> None:
        with netns_entered(ns), open(f"/proc/sys/{key}", "w") as f:
            f.write(value)

    # -- down ---------------------------------------------------------------------------------

    def stop(self) -> None:
        """Tear everything down; never raises until it has tried every step."""
        errors: list[str] = []
        for host in self.hosts:
            try:
                host.stop()
            except Exception as exc:
                errors.append(f"{host.name}: {exc}")
        if self.bridge is not None:
            with contextlib.suppress(ProcessLookupError):
                self.bridge.terminate()
            try:
                self.bridge.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.bridge.kill()
                self.bridge.wait(timeout=10)
        for ns in self.netns.values():
            try:
                kill_netns_processes(ns)
            except BedError as exc:
                errors.append(str(exc))
            if ns in netns_list():
                proc = _ip("netns", "del", ns, check=False)
                if proc.returncode != 0:
                    errors.append(f"ip netns del {ns}: {proc.stderr.strip()}")
        self._save_logs()
        shutil.rmtree(self.workdir, ignore_errors=True)
        if self in _live_beds:
            _live_beds.remove(self)
            if not _live_beds:
                _untrap_sigterm()
        if errors:
            raise BedError("teardown: " + "; ".join(errors))

    def _save_logs(self) -> None:
        """The bridge's, run.sh's and the consoles' logs, for a failure to be read afterwards."""
        if self.keep_logs is None or not self.workdir.exists():
            return
        for log in self.workdir.rglob("*.log"):
            target = self.keep_logs / self.prefix / log.relative_to(self.workdir)
            target.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(OSError):
                shutil.copyfile(log, target)

    def leftovers(self) -> list[str]:
        """What survived teardown: empty when nothing did."""
        found = []
        existing = set(netns_list())
        for ns in self.netns.values():
            if ns in existing:
                found.append(f"namespace {ns}")
        for ns, inode in self._inodes.items():
            found += [f"{_describe_pid(pid)} in {ns}" for pid in pids_in_netns_inode(inode)]
        links = _ip("-o", "link", "show").stdout
        found += [f"root interface: {line}" for line in links.splitlines() if self.prefix in line]
        if self.bridge is not None and self.bridge.poll() is None:
            found.append(f"the delay bridge, pid {self.bridge.pid}")
        for host in self.hosts:
            if host.console and host.console.proc and host.console.proc.poll() is None:
                found.append(f"run.sh of {host.name}, pid {host.console.proc.pid}")
        if self.workdir.exists():
            found.append(f"directory {self.workdir}")
        return found

    def __enter__(self) -> Bed:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _sigterm_to_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _trap_sigterm() -> None:
    """While a test bed is up, SIGTERM to the test run becomes KeyboardInterrupt, so fixtures'
    finalizers (the beds' teardown) run instead of the process dying with its beds up."""
    with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
        if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _sigterm_to_interrupt)


def _untrap_sigterm() -> None:
    with contextlib.suppress(ValueError):
        if signal.getsignal(signal.SIGTERM) == _sigterm_to_interrupt:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


@atexit.register
def _stop_live_beds() -> None:
    for bed in list(_live_beds):
        with contextlib.suppress(Exception):
            bed.stop()


def sweep_orphans() -> list[str]:
    """Tear down test beds whose owner process is gone (it was SIGKILLed); returns their names."""
    swept = []
    for ns in netns_list():
        m = _TEST_NS.match(ns)
        if m is None or Path(f"/proc/{m.group(1)}").exists():  # owner alive
            continue
        with contextlib.suppress(BedError):
            kill_netns_processes(ns)
        _ip("netns", "del", ns, check=False)
        swept.append(ns)
        for workdir in Path(tempfile.gettempdir()).glob(f"{ns.rsplit('-', 1)[0]}-*"):
            shutil.rmtree(workdir, ignore_errors=True)
    return swept


# ------------------------------------------------------------------------ the shell's bed (wan.sh)

SHELL_PREFIX = "roc"


def _shell_bed() -> Bed:
    bed = Bed(prefix=SHELL_PREFIX, workdir=REPO / "var" / "wan")
    bed._inodes = {
        ns: os.stat(f"/run/netns/{ns}").st_ino
        for ns in bed.netns.values()
        if os.path.exists(f"/run/netns/{ns}")
    }
    return bed


def _shell_up(args: argparse.Namespace) -> None:
    workdir = REPO / "var" / "wan"
    bed = Bed(prefix=SHELL_PREFIX, workdir=workdir, delay_ms=args.delay_ms, rate=args.rate or None)
    bed.start()
    bed.bridge = None  # it runs on, detached, until `down`
    _shell_status(args)
    py = os.environ.get("CONSOLE_PYTHON") or sys.executable
    print("\nStart a console on each host, one terminal each (PASSWORD: the admin login the first")
    print("run creates; choose your own):")
    for host in bed.hosts:
        console = Console(host, admin_password="PASSWORD", var_dir=REPO / "var" / host.name)
        env = console.env()
        env["CONSOLE_PYTHON"] = py
        for key in ("PATH", "HOME", "LANG", "CONSOLE_RECONCILE_INTERVAL"):
            env.pop(key)
        assigns = " ".join(f"{k}={v}" for k, v in env.items())
        print(f"  ip netns exec {host.netns} env {assigns} make run")
    west = ADDRESSES["west"]
    print(
        f"\nThen, e.g.:  ip netns exec roc-west curl -u admin:PASSWORD http://{west}:8080/v1/cluster"
    )
    print("  ip netns exec roc-west redis-cli -h 10.77.0.1 -p 12000 ...   (crosses the WAN)")


def _shell_down(args: argparse.Namespace) -> None:
    bed = _shell_bed()
    bed.stop()
    left = bed.leftovers()
    if left:
        raise SystemExit("left behind: " + "; ".join(left))
    print("WAN bed is down (console data stays in var/east, var/west).")


def _shell_status(args: argparse.Namespace) -> None:
    bed = _shell_bed()
    existing = set(netns_list())
    if not all(ns in existing for ns in bed.netns.values()):
        print("WAN bed is down.")
        return
    print(f"WAN bed up: link {ADDRESSES['east']} <-> {ADDRESSES['west']}/{WAN_PREFIX_LEN}")
    for host in bed.hosts:
        pids = host.pids()
        print(f"  {host.name}: netns {host.netns}, address {host.address}, {len(pids)} processes")
    stats = bed.link.stats()
    print(f"  link: one-way delay {stats['delay_ms']:g} ms, {'CUT' if stats['cut'] else 'up'}")
    for way in ("east>west", "west>east"):
        print(f"    {way}: {json.dumps(stats[way])}")
    for line in bed.link.qdiscs().splitlines():
        if "tbf" in line:
            print(f"    {line.strip()}")


def _shell_set(args: argparse.Namespace) -> None:
    bed = _shell_bed()
    if args.delay_ms is not None or args.rate is not None:
        bed.link.set(
            delay_ms=args.delay_ms,
            rate=False if args.rate is None else (None if args.rate == "none" else args.rate),
        )
    if args.cut:
        bed.link.cut()
    if args.restore:
        bed.link.restore()
    _shell_status(args)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.support.hosts")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="create the bed (roc-east, roc-west, roc-wan)")
    up.add_argument("--delay-ms", type=float, default=0.0, help="one-way delay")
    up.add_argument("--rate", default="", help="e.g. 50mbit, per direction")
    sub.add_parser("down", help="stop everything in the bed and delete it")
    sub.add_parser("status")
    st = sub.add_parser("set", help="change the link of a running bed")
    st.add_argument("--delay-ms", type=float)
    st.add_argument("--rate", help="e.g. 20mbit, or none")
    st.add_argument("--cut", action="store_true")
    st.add_argument("--restore", action="store_true")
    args = parser.parse_args(argv)
    {"up": _shell_up, "down": _shell_down, "status": _shell_status, "set": _shell_set}[
        args.command
    ](args)


if __name__ == "__main__":
    main()
