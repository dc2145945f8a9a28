"""A guided migration ("Migrate with Replica Of") of a 1,000,000-key database under a write load,
through a whole console (`scripts/run.sh`: HTTP, workers, beat) and its REST API: the time of
each step, the pause of writes as the application saw it, and the verify result.

    .venv/bin/python bench/cutover.py [--keys 1000000] [--rate 2000] [--pause-ms 3000]

The source holds DESIGN §6's workload; a paced writer sends `--rate` SETs per second to it as
`admin` from before the migration starts until the end (the pause shows as its slowest write).
The console runs in its own var directory with ports 30900-30999 (databases) and 30980-30982
(HTTP, control Redis, gateway); everything it started is stopped at the end. Prints a table and
writes bench/results/cutover-*.json.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis

from bench.common import REPO, machine_load, populate_workload, table, write_results

HTTP_PORT, CONTROL_PORT, GATEWAY_PORT = 30980, 30981, 30982
DB_PORTS = (30900, 30979)
PASSWORD = "bench-admin-password-1"  # noqa: S105 - a throwaway console of this run
MB = 1 << 20


class Api:
    def __init__(self) -> None:
        token = base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: Any = None) -> Any:
        request = urllib.request.Request(
            f"http://127.0.0.1:{HTTP_PORT}/v1/{path}",
            data=None if body is None else json.dumps(body).encode(),
            headers=self.headers,
            method=method,
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise SystemExit(f"{method} {path}: {exc.code} {exc.read().decode()}") from None


def wait(cond: Any, what: str, timeout: float = 1800.0, period: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(period)


class Console:
    """`scripts/run.sh` in a var directory of its own."""

    def __init__(self) -> None:
        self.var = Path(tempfile.mkdtemp(prefix="bench-cutover-"))
        env = dict(os.environ)
        env.update(
            CONSOLE_VAR_DIR=str(self.var),
            CONSOLE_HTTP_PORT=str(HTTP_PORT),
            CONSOLE_REDIS_PORT=str(CONTROL_PORT),
            CONSOLE_GATEWAY_PORT=str(GATEWAY_PORT),
            CONSOLE_DB_PORT_MIN=str(DB_PORTS[0]),
            CONSOLE_DB_PORT_MAX=str(DB_PORTS[1]),
            CONSOLE_ADMIN_PASSWORD=PASSWORD,
            CONSOLE_PYTHON=sys.executable,
            CONSOLE_SYNC_SLOTS="4",
        )
        self.log = open(self.var / "run.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            ["bash", "scripts/run.sh"],
            cwd=REPO,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
        # run.sh leaves database processes running (they are adopted on the next start).
        for pidfile in self.var.glob("databases/bdb-*/shard-*/redis.pid"):
            with contextlib.suppress(ProcessLookupError, ValueError, OSError):
                os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)
        self.log.close()
        shutil.rmtree(self.var, ignore_errors=True)


class Writer(threading.Thread):
    """`rate` SETs per second (in 20 pipelines a second) to the source; the slowest pipeline
    is what the application saw of the pause."""

    def __init__(self, port: int, password: str, rate: int) -> None:
        super().__init__(daemon=True)
        self.client = redis.Redis(port=port, username="admin", password=password)
        self.rate, self.stop = rate, threading.Event()
        self.sent, self.slowest_s, self.errors = 0, 0.0, 0

    def run(self) -> None:
        per = max(1, self.rate // 20)
        n = 0
        while not self.stop.is_set():
            tick = time.monotonic()
            pipe = self.client.pipeline(transaction=False)
            for _ in range(per):
                pipe.set(f"load:{n % 100_000}", n)
                n += 1
            try:
                pipe.execute()
                self.sent += per
            except redis.RedisError:
                self.errors += 1
            took = time.monotonic() - tick
            self.slowest_s = max(self.slowest_s, took)
            time.sleep(max(0.0, 0.05 - took))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--rate", type=int, default=2000, help="SETs per second to the source")
    parser.add_argument("--pause-ms", type=int, default=3000)
    args = parser.parse_args()

    console = Console()
    writer: Writer | None = None
    try:
        api = Api()
        wait(lambda: _answers(api), "the console", timeout=120)
        alpha = api.call("POST", "bdbs", {"name": "alpha", "memory_size": 2048 * MB})
        bravo = api.call(
            "POST",
            "bdbs",
            {"name": "bravo", "memory_size": 2048 * MB, "authentication_redis_pass": "app-pw-1"},
        )
        for db in (alpha, bravo):
            wait(lambda db=db: api.call("GET", f"bdbs/{db['uid']}")["status"] == "active", "db")
        url = api.call("POST", f"bdbs/{alpha['uid']}/actions/replica_source_url")["uri"]
        internal = urlsplit(url).password or ""
        cli = ["redis-cli", "-p", str(alpha["port"]), "--user", "admin", "--pass", internal]
        load_s = populate_workload(None, args.keys, cli=cli)
        print(f"alpha: {args.keys} keys loaded in {load_s:.1f} s", flush=True)
        writer = Writer(alpha["port"], internal, args.rate)
        writer.start()

        t0 = time.monotonic()
        uid = bravo["uid"]
        api.call(
            "POST",
            f"bdbs/{uid}/actions/replica_migrate",
            {"replica_sources": [{"bdb_uid": alpha["uid"]}], "pause_ms": args.pause_ms},
        )

        def at(step: str, state: str) -> Any:
            body = api.call("GET", f"bdbs/{uid}/replica_migrate")
            if body["state"] == "failed" or (body["state"] == "waiting" and body["error"]):
                raise SystemExit(f"the migration stopped at {body['step']}: {body['error']}")
            return body if (body["step"], body["state"]) == (step, state) else None

        wait(lambda: at("confirm_flush", "waiting"), "the pre-flight")
        t_preflight = time.monotonic() - t0
        api.call("POST", f"bdbs/{uid}/actions/replica_migrate_step", {"action": "confirm_flush"})
        wait(lambda: at("sync_complete", "waiting"), "Synchronization complete")
        t_complete = time.monotonic() - t0
        api.call("POST", f"bdbs/{uid}/actions/replica_migrate_step", {"action": "cutover"})
        body = wait(lambda: at("done", "done"), "the end of the migration")
        t_done = time.monotonic() - t0
        writer.stop.set()
        writer.join(10)
    finally:
        if writer is not None:
            writer.stop.set()
        console.stop()

    steps = {s["step"]: s for s in body["steps"]}

    def seconds(step: str) -> float:
        s = steps[step]
        return (
            datetime.fromisoformat(s["finished"]) - datetime.fromisoformat(s["started"])
        ).total_seconds()

    verify = body["verify"]["result"]
    rows = [("step", "seconds", "note")]
    notes = {
        "preflight": f"{len(body['preflight']['checks'])} lines, none failed",
        "confirm_flush": "the operator's click (this script: at once)",
        "full_sync": f"{body['progress']['rdb_size'] / MB:.0f} MB RDB; "
        f"keys {body['progress']['keys']}",
        "sync_complete": "the operator's click (this script: at once)",
        "drain": f"writes paused {body['drain']['paused_ms']} ms; caught up in "
        f"{body['drain']['drained_ms']} ms",
        "verify": f"{verify['keys_checked']} keys, {verify['differences']} differences, "
        f"unsettled {verify['totals'].get('unsettled', 0)}",
        "stop": "sources removed, ACL rewritten, bookkeeping keys deleted",
    }
    for step, note in notes.items():
        rows.append((step, f"{seconds(step):.2f}", note))
    rows.append(
        ("total", f"{t_done:.2f}", f"start → done; Synchronization complete at {t_complete:.1f} s")
    )
    print(table(rows))
    sent, slowest, errors = (writer.sent, writer.slowest_s, writer.errors) if writer else (0, 0, 0)
    print(
        f"writer: {sent} SETs at {args.rate}/s, slowest pipeline {slowest * 1000:.0f} ms, "
        f"errors {errors}; {machine_load()}"
    )
    path = write_results(
        "cutover",
        {
            "keys": args.keys,
            "write_rate": args.rate,
            "pause_ms": args.pause_ms,
            "step_seconds": {step: seconds(step) for step in notes},
            "total_s": t_done,
            "preflight_s": t_preflight,
            "sync_complete_at_s": t_complete,
            "drain": body["drain"],
            "verify": {k: verify[k] for k in ("keys_checked", "differences", "totals")},
            "writer": {"sets": sent, "slowest_pipeline_ms": slowest * 1000, "errors": errors},
            "machine": machine_load(),
        },
    )
    print(f"results: {path}")


def _answers(api: Api) -> bool:
    try:
        api.call("GET", "cluster")
    except (SystemExit, OSError):
        return False
    return True


if __name__ == "__main__":
    main()
