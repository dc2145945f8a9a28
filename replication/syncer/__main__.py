"""Command line: `python -m replication.syncer SOURCE_URL [SOURCE_URL ...] --to DEST_URL`, and
`python -m replication.syncer verify SOURCE_URL [...] --to DEST_URL` (verify.py: exit status 0
when the destination holds exactly the sources' data, 1 when it differs, 2 on an error).

A progress bar while full-syncing, a status line while streaming; Ctrl-C (or SIGTERM) stops
cleanly; exit status 1 with the error on a fatal error, 3 when a full sync is needed and
`--no-auto-full-sync` was given, 2 on bad arguments.

Restarting the same command continues from the checkpoint saved in the destination (partial
sync); if that is impossible the destination is flushed and everything is loaded again (unless
`--no-auto-full-sync`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import time
from typing import Any, TextIO

from .engine import DestinationConfig, SourceConfig, SyncEngine
from .errors import FullSyncRequired, SyncError
from .gateway import DEFAULT_GATEWAY_PORT, GatewayOptions
from .resp import TlsOptions
from .status import Phase, SourceStatus
from .urls import UrlError, parse_redis_url


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m replication.syncer",
        description="Replicate one or more Redis/Valkey sources into a destination (Replica Of).",
    )
    p.add_argument("sources", nargs="+", metavar="SOURCE_URL", help="redis:// or rediss:// URL")
    p.add_argument("--to", required=True, metavar="DEST_URL", help="the destination URL")
    p.add_argument("--flush", action="store_true", help="flush the destination and full-sync")
    p.add_argument(
        "--no-auto-full-sync",
        action="store_true",
        help="exit with status 3 instead of flushing when a full sync is needed",
    )
    p.add_argument("--tls-cert", help="client certificate (PEM) presented to TLS sources")
    p.add_argument("--tls-key", help="private key of --tls-cert")
    p.add_argument("--tls-ca", help="CA bundle or server certificate to trust")
    p.add_argument("--tls-sni", help="server name to send with TLS (SNI)")
    p.add_argument(
        "--compression",
        type=int,
        default=0,
        choices=range(10),
        metavar="LEVEL",
        help="read every source through the sync gateway of its host, zlib LEVEL (1-9; 0: off)",
    )
    p.add_argument(
        "--gateway-port",
        type=int,
        default=DEFAULT_GATEWAY_PORT,
        help=f"the sources' sync gateway port (default {DEFAULT_GATEWAY_PORT})",
    )
    p.add_argument(
        "--no-dual-channel",
        action="store_true",
        help="full syncs always with the classic handshake, even from a Valkey source that "
        "offers dual-channel replication",
    )
    p.add_argument(
        "--work-dir",
        help="where the command stream buffered during a dual-channel full sync spills to disk "
        "(default: the system's temporary directory)",
    )
    p.add_argument("--name", action="append", default=[], help="stable name per source (repeat)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    return p


def _bar(pct: float | None, width: int = 30) -> str:
    if pct is None:
        return "[" + "?" * width + "]"
    filled = int(width * pct / 100)
    return "[" + "#" * filled + "-" * (width - filled) + f"] {pct:5.1f}%"


def _line(statuses: list[SourceStatus], rate: float) -> str:
    parts = []
    for st in statuses:
        d = st.as_dict()
        phase = st.phase
        if phase is Phase.SYNCING:
            size = d["rdb_size"]
            mb = f"{d['rdb_transferred'] / 1e6:.1f}" + (f"/{size / 1e6:.1f}" if size else "")
            parts.append(f"{st.source} syncing {_bar(st.progress)} {d['keys_loaded']} keys {mb} MB")
        elif phase is Phase.IN_SYNC:
            lag = "?" if d["lag"] is None else f"{d['lag']:.0f}"
            if not d["lag_exact"]:
                lag = f">= {lag}"
            parts.append(
                f"{st.source} in-sync lag {lag} ms, {d['commands_applied']} commands ({rate:.0f}/s)"
            )
        else:
            err = f" ({d['last_error']})" if d["last_error"] else ""
            lag = "" if d["lag_exact"] or d["lag"] is None else f" lag >= {d['lag']:.0f} ms"
            parts.append(f"{st.source} {phase}{lag}{err}")
    return " | ".join(parts)


class _Printer:
    def __init__(self, out: TextIO, quiet: bool) -> None:
        self.out = out
        self.quiet = quiet
        self.tty = out.isatty()
        self.last_print = 0.0
        self.last_cmds = 0
        self.last_t = time.monotonic()
        self.rate = 0.0

    def __call__(self, statuses: list[SourceStatus]) -> None:
        if self.quiet:
            return
        now = time.monotonic()
        cmds = sum(int(s.as_dict()["commands_applied"]) for s in statuses)
        if now - self.last_t >= 1.0:
            self.rate = (cmds - self.last_cmds) / (now - self.last_t)
            self.last_cmds, self.last_t = cmds, now
        if not self.tty and now - self.last_print < 5.0:
            return
        self.last_print = now
        line = _line(statuses, self.rate)
        if self.tty:
            self.out.write("\r\x1b[2K" + line[:200])
        else:
            self.out.write(line + "\n")
        self.out.flush()


class _EventLines(logging.Handler):
    """The syncer's events (events.py), one timestamped line each on stderr; on a terminal the
    status line is cleared first and drawn again by the next status."""

    def __init__(self, out: TextIO) -> None:
        super().__init__(logging.INFO)
        self.out = out
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            clear = "\r\x1b[2K" if self.out.isatty() else ""
            self.out.write(clear + self.format(record) + "\n")
            self.out.flush()
        except Exception:
            self.handleError(record)


def _verify_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m replication.syncer verify",
        description="Compare a destination with its sources key by key (type, value, TTL). "
        "Exit status 0: equal; 1: differences; 2: an error.",
    )
    p.add_argument("sources", nargs="+", metavar="SOURCE_URL", help="redis:// or rediss:// URL")
    p.add_argument("--to", required=True, metavar="DEST_URL", help="the destination URL")
    p.add_argument("--rate", type=float, help="at most this many keys per second")
    p.add_argument("--ttl-tolerance", type=int, default=1000, metavar="MS", help="default: 1000 ms")
    p.add_argument("--method", choices=("auto", "digest", "dump"), default="auto")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--tls-cert", help="client certificate (PEM) presented to TLS servers")
    p.add_argument("--tls-key", help="private key of --tls-cert")
    p.add_argument("--tls-ca", help="CA bundle or server certificate to trust")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    return p


def _verify_summary(result: dict[str, Any]) -> str:
    lines = [" ".join(f"{k} {v}" for k, v in result["totals"].items())]
    for src in result["sources"]:
        for kind, keys in src["samples"].items():
            lines.append(f"{src['source']} {kind}: " + ", ".join(repr(k) for k in keys[:10]))
    for name in ("extra", "unsettled"):
        if keys := result[f"{name}_samples"]:
            lines.append(f"{name}: " + ", ".join(repr(k) for k in keys[:10]))
    return "\n".join(lines)


def verify_main(argv: list[str]) -> int:
    # Imported here: the syncer itself (restarted after every kill) starts without it.
    from .verify import Verifier, VerifyCancelled, VerifyError, VerifyOptions, VerifyProgress

    args = _verify_parser().parse_args(argv)
    try:
        sources = [parse_redis_url(u) for u in args.sources]
        dest = parse_redis_url(args.to)
    except UrlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    tls = None
    if args.tls_cert or args.tls_key or args.tls_ca:
        tls = TlsOptions(cert=args.tls_cert, key=args.tls_key, ca=args.tls_ca)
    tty = sys.stderr.isatty()

    def progress(p: VerifyProgress) -> None:
        if args.quiet:
            return
        eta = "" if p.eta_s is None else f", about {p.eta_s:.0f} s left"
        line = f"verify {_bar(p.fraction * 100)} {p.done}/{p.total} keys{eta}"
        sys.stderr.write(("\r\x1b[2K" + line) if tty else line + "\n")
        sys.stderr.flush()

    verifier = Verifier(
        sources,
        dest,
        source_tls=[tls] * len(sources),
        destination_tls=tls,
        options=VerifyOptions(
            ttl_tolerance_ms=args.ttl_tolerance, rate=args.rate, method=args.method
        ),
        on_progress=progress,
    )

    async def run() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, verifier.cancel)
        return (await verifier.run()).as_dict()

    try:
        result = asyncio.run(run())
    except VerifyCancelled:
        print("\nverify cancelled", file=sys.stderr)
        return 2
    except VerifyError as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 2
    if tty and not args.quiet:
        sys.stderr.write("\n")
    if args.json:
        print(json.dumps(result))
    else:
        print(_verify_summary(result))
    return 0 if result["differences"] == 0 else 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["verify"]:  # a source URL is never the word verify
        return verify_main(argv[1:])
    args = _parser().parse_args(argv)
    events = logging.getLogger("replication.syncer")
    events.setLevel(logging.INFO)
    events.addHandler(_EventLines(sys.stderr))
    try:
        for u in [*args.sources, args.to]:
            parse_redis_url(u)
    except UrlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    tls = None
    if args.tls_cert or args.tls_key or args.tls_ca or args.tls_sni:
        tls = TlsOptions(cert=args.tls_cert, key=args.tls_key, ca=args.tls_ca, sni=args.tls_sni)
    names = args.name + [None] * (len(args.sources) - len(args.name))
    gateway = GatewayOptions(args.gateway_port, args.compression) if args.compression else None
    printer = _Printer(sys.stderr, args.quiet)
    engine = SyncEngine(
        [SourceConfig(u, tls, n, gateway) for u, n in zip(args.sources, names, strict=False)],
        DestinationConfig(args.to, tls),
        flush=args.flush,
        auto_full_sync=not args.no_auto_full_sync,
        on_status=printer,
        dual_channel=not args.no_dual_channel,
        work_dir=args.work_dir,
    )

    async def run() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, engine.stop)
        await engine.run()

    try:
        asyncio.run(run())
    except FullSyncRequired as exc:
        print(f"\nfull sync required: {exc}", file=sys.stderr)
        return 3
    except SyncError as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1
    if printer.tty and not args.quiet:
        sys.stderr.write("\n")
    print("stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
