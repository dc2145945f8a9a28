"""Replica Of across a WAN: native REPLICAOF, our syncer plain, TLS, compression 6 through the
sync gateway, TLS + compression 6, on the two-host bed (tests/support/hosts.py).

    .venv/bin/python bench/wan.py [--scale 1.0] [--rate 50mbit] [--delay-ms 20] [--lag-seconds 15]

East runs the source (plain port and TLS port, a test certificate from tests/support/pki.py) and
the sync gateway; west runs the destination, the native replica and the syncer; the link between
them is limited to `--rate` each way with `--delay-ms` one way (40 ms round trip by default).
For each workload (DESIGN §6: 1,000,000 keys of mixed types; text: 200,000 JSON-like documents of
1 KB; both times `--scale`), every method loads the whole source into an empty destination:
seconds until loaded, bytes that crossed the link east→west, CPU seconds of the syncer and of the
gateway. Then, on the text workload, the streaming lag (marker written to the source every 10 ms,
polled on the destination) under a modest write load (`--docs-per-second` documents), plain and
compressed. Prints a table and writes bench/results/wan-*.json.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    Syncer,
    loaded,
    machine_load,
    native_in_sync,
    pipe_commands,
    populate_workload,
    table,
    wait,
    write_results,
)
from bench.streaming import MARKER, Marker
from replication.syncer.checkpoint import BOOKKEEPING_PREFIX
from replication.syncer.resp import pack
from tests.support.gateway import GatewayProcess
from tests.support.hosts import Bed, Host
from tests.support.load import document
from tests.support.pki import make_certificate

PASSWORD = "bench-source-password"  # noqa: S105 - a throwaway server of the bench
SRC_PORT, SRC_TLS_PORT, DST_PORT, NATIVE_PORT, GATEWAY_PORT = 12000, 12001, 13000, 13001, 9443
METHODS = ("native REPLICAOF", "syncer plain", "syncer TLS", "compression 6", "TLS + compression 6")


class NsRedis:
    """A redis-server inside a host's namespace, bound to its address (and its loopback)."""

    def __init__(self, host: Host, port: int, workdir: Path, *args: str) -> None:
        self.host, self.port = host, port
        self.dir = workdir / f"{host.name}-{port}"
        self.dir.mkdir(parents=True)
        argv = ["redis-server", "--port", str(port), "--bind", f"{host.address} 127.0.0.1"]
        argv += ["--dir", str(self.dir), "--save", "", "--appendonly", "no"]
        argv += ["--logfile", str(self.dir / "log"), "--enable-debug-command", "yes"]
        argv += ["--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0", *args]
        self.proc = subprocess.Popen(["ip", "netns", "exec", host.netns, *argv])
        self.password = PASSWORD if "--requirepass" in args else None
        wait(self._up, f"redis-server {host.name}:{port}", timeout=30, period=0.05)

    def _up(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def client(self) -> redis.Redis:
        return self.host.redis(self.port, password=self.password, socket_timeout=120)

    def cli(self) -> list[str]:
        argv = ["ip", "netns", "exec", self.host.netns, "redis-cli", "-p", str(self.port)]
        return argv + (["--no-auth-warning", "-a", self.password] if self.password else [])

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


def populate_text(src: NsRedis, n: int, seed: int = 11) -> float:
    """`n` JSON-like documents of about 1 KB (tests.support.load.document) via redis-cli --pipe."""
    t0 = time.monotonic()
    rnd = random.Random(seed)
    pipe_commands(src.cli(), (pack(b"SET", b"doc:%d" % i, document(rnd, i)) for i in range(n)))
    return time.monotonic() - t0


def user_keys(client: redis.Redis) -> int:
    """Keys of the destination other than the syncer's bookkeeping (a handful)."""
    extra = sum(1 for _ in client.scan_iter(match=BOOKKEEPING_PREFIX + b"*", count=1000))
    return int(client.dbsize()) - extra


class Run:
    """One method loading the source on east into an empty destination on west."""

    def __init__(self, bed: Bed, src: NsRedis, dst: NsRedis, gateway: GatewayProcess, pki: Path):
        self.bed, self.src, self.dst, self.gateway, self.pki = bed, src, dst, gateway, pki

    def crossed(self) -> int:
        return int(self.bed.link.stats()["east>west"]["bytes"])

    def native(self, native: NsRedis) -> dict[str, Any]:
        c = native.client()
        c.flushall()
        before, t0 = self.crossed(), time.monotonic()
        c.config_set("masterauth", PASSWORD)
        c.execute_command("REPLICAOF", self.bed.east.address, SRC_PORT)

        wait(lambda: native_in_sync(c), "the native replica in sync", timeout=3600, period=0.05)
        seconds = time.monotonic() - t0
        row = {"seconds": seconds, "wire_bytes": self.crossed() - before, "keys": c.dbsize()}
        c.execute_command("REPLICAOF", "NO", "ONE")
        return row

    def syncer_args(self, *, tls: bool, compression: bool) -> list[str]:
        east = self.bed.east.address
        url = f"rediss://:{PASSWORD}@{east}:{SRC_TLS_PORT}" if tls else self.src_url()
        args = [url, "--to", f"redis://127.0.0.1:{DST_PORT}", "--flush"]
        if tls:
            args += ["--tls-ca", str(self.pki / "proxy.crt")]
        if compression:
            args += ["--compression", "6", "--gateway-port", str(GATEWAY_PORT)]
        return args

    def src_url(self) -> str:
        return f"redis://:{PASSWORD}@{self.bed.east.address}:{SRC_PORT}"

    def ours(self, *, tls: bool, compression: bool) -> tuple[dict[str, Any], Syncer]:
        dst = self.dst.client()
        dst.flushall()
        before, t0 = self.crossed(), time.monotonic()
        gw_cpu = self.gateway.cpu_seconds()
        syncer = Syncer(
            *self.syncer_args(tls=tls, compression=compression),
            prefix=["ip", "netns", "exec", self.bed.west.netns],
        )
        wait(lambda: loaded(dst), "the syncer loaded", timeout=3600, period=0.05)
        seconds = time.monotonic() - t0
        row = {
            "seconds": seconds,
            "wire_bytes": self.crossed() - before,
            "keys": user_keys(dst),
            "syncer_cpu_s": syncer.cpu_seconds(),
            "syncer_peak_rss_bytes": syncer.peak_rss,
            "gateway_cpu_s": self.gateway.cpu_seconds() - gw_cpu if compression else None,
        }
        return row, syncer


def streaming_lag(run: Run, syncer: Syncer, seconds: float, docs_per_second: int) -> dict[str, Any]:
    """Lag p50/p99 under a write load of documents, with `syncer` streaming (and stopped after)."""
    src, dst = run.src.client(), run.dst.client()
    stop = threading.Event()
    written = [0]

    def load() -> None:
        rnd = random.Random(5)
        client = run.src.client()
        period = 0.05
        per_tick = max(1, int(docs_per_second * period))
        while not stop.wait(period):
            pipe = client.pipeline(transaction=False)
            for _ in range(per_tick):
                written[0] += 1
                pipe.set(b"live:%d" % (written[0] % 20000), document(rnd, written[0]))
            pipe.execute()

    # A marker left by an earlier run (copied by this full sync) would read as a huge lag.
    src.delete(MARKER)
    wait(lambda: not dst.exists(MARKER), "the old marker gone from the destination", timeout=120)
    gw_cpu, sy_cpu = run.gateway.cpu_seconds(), syncer.cpu_seconds()
    writer = threading.Thread(target=load)
    writer.start()
    try:
        with Marker(src, dst) as marker:
            time.sleep(seconds)
    finally:
        stop.set()
        writer.join()
    lags = sorted(marker.lags_ms)
    syncer_cpu = syncer.cpu_seconds() - sy_cpu
    events = syncer.stop()  # its event lines: a reconnect during the window explains a spike
    return {
        "samples": len(lags),
        "p50_ms": statistics.median(lags) if lags else None,
        "p99_ms": lags[int(len(lags) * 0.99) - 1] if lags else None,
        "max_ms": lags[-1] if lags else None,
        "docs_written": written[0],
        "reconnects": events.count(" reconnect "),
        "syncer_cpu_s": syncer_cpu,
        "gateway_cpu_s": run.gateway.cpu_seconds() - gw_cpu,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=1.0, help="times 1,000,000 / 200,000 keys")
    ap.add_argument("--rate", default="50mbit")
    ap.add_argument("--delay-ms", type=float, default=20.0, help="one way")
    ap.add_argument("--lag-seconds", type=float, default=15.0)
    ap.add_argument("--docs-per-second", type=int, default=500)
    ap.add_argument("--workloads", default="design,text")
    args = ap.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-wan-"))
    pki = workdir / "pki"
    pki.mkdir()
    pem = make_certificate(common_name="east.example")
    (pki / "proxy.crt").write_text(pem.certificate)
    (pki / "proxy.key").write_text(pem.key)
    crt, key = str(pki / "proxy.crt"), str(pki / "proxy.key")
    results: dict[str, Any] = {"scale": args.scale, "rate": args.rate, "delay_ms": args.delay_ms}
    bed = Bed().start()
    servers: list[NsRedis] = []
    gateway: GatewayProcess | None = None
    try:
        bed.link.set(delay_ms=args.delay_ms, rate=args.rate)
        tls_args = ["--tls-port", str(SRC_TLS_PORT), "--tls-cert-file", crt]
        tls_args += ["--tls-key-file", key, "--tls-ca-cert-file", crt, "--tls-auth-clients", "no"]
        src = NsRedis(bed.east, SRC_PORT, workdir, "--requirepass", PASSWORD, *tls_args)
        dst = NsRedis(bed.west, DST_PORT, workdir)
        native = NsRedis(bed.west, NATIVE_PORT, workdir)
        servers += [src, dst, native]
        gateway = GatewayProcess(
            range(SRC_PORT, SRC_TLS_PORT + 1),
            host=bed.east.address,
            port=GATEWAY_PORT,
            database_host=bed.east.address,
            tls=(crt, key),
            database_tls_ca=crt,
            prefix=["ip", "netns", "exec", bed.east.netns],
        ).start()
        wait(lambda: "sync gateway on" in gateway.output(), "the gateway", timeout=30)
        run = Run(bed, src, dst, gateway, pki)
        for workload in args.workloads.split(","):
            src.client().flushall()
            if workload == "design":
                n = int(1_000_000 * args.scale)
                fill = populate_workload(None, n, cli=src.cli())
            else:
                n = int(200_000 * args.scale)
                fill = populate_text(src, n)
            keys = int(src.client().dbsize())
            mem = int(src.client().info("memory")["used_memory"])
            print(f"{workload}: {keys} keys, {mem / 1e6:.0f} MB, filled in {fill:.1f} s")
            rows: dict[str, Any] = {"keys": keys, "used_memory": mem}
            rows["native REPLICAOF"] = run.native(native)
            for name, tls, comp in (
                ("syncer plain", False, False),
                ("syncer TLS", True, False),
                ("compression 6", False, True),
                ("TLS + compression 6", True, True),
            ):
                expected = int(src.client().dbsize())  # a streaming run before added keys
                row, syncer = run.ours(tls=tls, compression=comp)
                if workload == "text" and name in ("syncer plain", "compression 6"):
                    row["streaming"] = streaming_lag(
                        run, syncer, args.lag_seconds, args.docs_per_second
                    )
                else:
                    syncer.stop()
                rows[name] = row
                print(f"  {name}: {row['seconds']:.1f} s, {row['wire_bytes'] / 1e6:.1f} MB")
                if row["keys"] != expected:
                    raise SystemExit(
                        f"{name}: {row['keys']} keys on the destination, not {expected}"
                    )
            results[workload] = rows
    finally:
        for s in servers:
            s.stop()
        if gateway is not None:
            gateway.stop()
        bed.stop()
        left = bed.leftovers()
        shutil.rmtree(workdir, ignore_errors=True)
        if left:
            print("the bed left behind:", left, file=sys.stderr)
    report(results)


def report(results: dict[str, Any]) -> None:
    head = ("workload", "method", "seconds", "vs native", "MB on the wire", "syncer CPU s")
    rows: list[tuple[str, ...]] = [(*head, "gateway CPU s")]
    for workload in ("design", "text"):
        if workload not in results:
            continue
        w = results[workload]
        base = w["native REPLICAOF"]["seconds"]
        for method in METHODS:
            r = w[method]
            rows.append(
                (
                    f"{workload} ({w['keys']} keys)",
                    method,
                    f"{r['seconds']:.1f}",
                    f"{r['seconds'] / base:.2f}",
                    f"{r['wire_bytes'] / 1e6:.1f}",
                    f"{r['syncer_cpu_s']:.1f}" if "syncer_cpu_s" in r else "-",
                    f"{r['gateway_cpu_s']:.1f}" if r.get("gateway_cpu_s") is not None else "-",
                )
            )
    print(table(rows))
    if "text" in results:
        lag_rows = [
            (
                "streaming (text)",
                "samples",
                "p50 ms",
                "p99 ms",
                "max ms",
                "syncer CPU s",
                "gateway CPU s",
            )
        ]
        for method in ("syncer plain", "compression 6"):
            s = results["text"][method]["streaming"]
            lag_rows.append(
                (
                    method,
                    str(s["samples"]),
                    f"{s['p50_ms']:.1f}",
                    f"{s['p99_ms']:.1f}",
                    f"{s['max_ms']:.1f}",
                    f"{s['syncer_cpu_s']:.1f}",
                    f"{s['gateway_cpu_s']:.1f}",
                )
            )
        print(table(lag_rows))
    print(machine_load())
    results["machine"] = machine_load()
    print(f"wrote {write_results('wan', results)}")


if __name__ == "__main__":
    main()
