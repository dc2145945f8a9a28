"""The connection check of a source: can the syncer reach it, speak TLS with it, authenticate and
read its replication state — with exactly the client the sync job uses, under one deadline.

Every failure is one of a few fixed classes (`ProbeFailure.kind`); the operator's message is
chosen by the class, never copied from the far end: whatever answers on a port must not be able
to put its text on our pages, and the wording must not tell apart more than these classes.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from pathlib import Path

import hiredis

from console.tls import TlsMaterial
from replication.syncer.errors import ErrorKind, SyncError
from replication.syncer.resp import RespConnection
from replication.syncer.urls import RedisUrl

log = logging.getLogger(__name__)

# connect + TLS + AUTH + the first reply, all of it (issue: a silent port took 60 s).
CHECK_DEADLINE_S = 5.0


class ProbeFailure(Exception):
    """The check failed; `kind` is one of `MESSAGES`."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


MESSAGES = {
    "refused": "cannot connect to {address}: nothing accepts connections there",
    "unreachable": "cannot connect to {address}: the host cannot be reached",
    "timeout": "no answer from {address} within {deadline:g} s (is it a Redis server, and does it "
    "expect TLS or plain connections?)",
    "tls_verify": "TLS: the certificate of {address} does not match the certificate configured "
    "for this source; give the source cluster's proxy certificate",
    "tls_client": "TLS: {address} refused this cluster's syncer certificate — add it to the "
    "source database's trusted certificates",
    "tls": "TLS: the handshake with {address} failed (does it speak TLS, and does it accept this "
    "cluster's syncer certificate? add it to the source database's trusted certificates)",
    "auth": "authentication failed for source {address}: check the user and password of the URL",
    "noperm": "the user of {address} may not read the replication state (NOPERM): it needs "
    "INFO, REPLCONF and PSYNC",
    "closed": "{address} closed the connection before answering",
    "not_redis": "{address} does not speak the Redis protocol",
}


def failure_message(kind: str, url: RedisUrl) -> str:
    return MESSAGES[kind].format(address=url.address, deadline=CHECK_DEADLINE_S)


async def _check(url: RedisUrl, tls: TlsMaterial | None, workdir: Path) -> None:
    options = tls.options(workdir, "check") if tls is not None else None
    conn = await RespConnection.open(url, options, select_db=False)
    try:
        reply = await conn.call_raw(b"INFO", b"replication")
    finally:
        conn.close()
    if isinstance(reply, hiredis.ReplyError):
        raise ProbeFailure("noperm" if str(reply).startswith("NOPERM") else "not_redis")
    if not isinstance(reply, bytes) or b"role:" not in reply:
        raise ProbeFailure("not_redis")


_BY_KIND = {
    ErrorKind.AUTH: "auth",
    ErrorKind.TIMEOUT: "timeout",
    ErrorKind.CLOSED: "closed",
    ErrorKind.LOST: "closed",
    ErrorKind.PROTOCOL: "not_redis",
}


def _kind_of(exc: BaseException) -> str:
    """The class of a failure, from the syncer's error kinds and exception types (never from
    their text)."""
    if isinstance(exc, ProbeFailure):
        return exc.kind
    if isinstance(exc, SyncError):
        if exc.kind is ErrorKind.TLS_CLIENT:
            return "tls_client"
        if exc.kind is ErrorKind.TLS:
            return "tls_verify" if exc.fatal else "tls"
        if exc.kind is ErrorKind.REFUSED:
            return "refused" if isinstance(exc.__cause__, ConnectionRefusedError) else "unreachable"
        return _BY_KIND.get(exc.kind, "not_redis")
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, ConnectionError):
        return "closed"
    if isinstance(exc, OSError):
        return "unreachable"
    return "not_redis"


def source_probe(url: RedisUrl, tls: TlsMaterial | None) -> None:
    """Connect, (TLS,) authenticate and read `INFO replication` within `CHECK_DEADLINE_S`;
    raise `ProbeFailure` with the class of the failure."""
    if url.tls and tls is None:
        tls = TlsMaterial()

    async def run(workdir: Path) -> None:
        await asyncio.wait_for(_check(url, tls, workdir), CHECK_DEADLINE_S)

    with tempfile.TemporaryDirectory(prefix="source-check-") as workdir:
        try:
            asyncio.run(run(Path(workdir)))
        except (ProbeFailure, SyncError, OSError, hiredis.HiredisError) as exc:
            raise ProbeFailure(_kind_of(exc)) from None
        except TimeoutError:
            raise ProbeFailure("timeout") from None
        except Exception as exc:  # whatever answers must never turn the check into a 500
            log.warning("source check of %s failed with %s", url.address, type(exc).__name__)
            raise ProbeFailure("not_redis") from None
