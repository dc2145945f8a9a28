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
from typing import Any

import hiredis

from console.tls import TlsMaterial
from replication.syncer.errors import (
    AuthError,
    ErrorKind,
    FatalSyncError,
    RetryableError,
    SyncError,
)
from replication.syncer.gateway import GatewayOptions, GatewayUnreachable, open_gateway
from replication.syncer.resp import RespConnection, TlsOptions, pack
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
    # Compression on: the check goes through the sync gateway, as the sync job will.
    "gateway_missing": "compression is on, but no sync gateway answers at {gateway} for "
    "{address}: start the source cluster's sync gateway, set this source's gateway port if it is "
    "not the default, or turn compression off",
    "gateway_refused": "{gateway} does not serve {address} as a sync gateway (compression is "
    "on): check this source's gateway port and URL",
    "gateway_busy": "the sync gateway at {gateway} cannot serve {address} now (it serves its "
    "limit of sessions, or the database does not answer it); try again",
}


def failure_message(kind: str, url: RedisUrl, gateway: GatewayOptions | None = None) -> str:
    where = f"{url.host}:{gateway.port}" if gateway is not None else "its sync gateway"
    if ":" in url.host and gateway is not None:
        where = f"[{url.host}]:{gateway.port}"
    return MESSAGES[kind].format(address=url.address, deadline=CHECK_DEADLINE_S, gateway=where)


async def _check(
    url: RedisUrl, tls: TlsMaterial | None, workdir: Path, gateway: GatewayOptions | None
) -> None:
    options = tls.options(workdir, "check") if tls is not None else None
    if gateway is not None:
        reply = await _through_gateway(url, options, gateway)
    else:
        conn = await RespConnection.open(url, options, select_db=False)
        try:
            reply = await conn.call_raw(b"INFO", b"replication")
        finally:
            conn.close()
    if isinstance(reply, hiredis.ReplyError):
        raise ProbeFailure("noperm" if str(reply).startswith("NOPERM") else "not_redis")
    if not isinstance(reply, bytes) or b"role:" not in reply:
        raise ProbeFailure("not_redis")


async def _through_gateway(
    url: RedisUrl, options: TlsOptions | None, gateway: GatewayOptions
) -> Any:
    """The gateway handshake the syncer makes (the database checks the password behind it),
    then `INFO replication` through the relay, inflated."""
    try:
        reader, writer = await open_gateway(url, options, gateway)
    except GatewayUnreachable:
        raise ProbeFailure("gateway_missing") from None
    except AuthError:
        raise ProbeFailure("auth") from None
    except FatalSyncError as exc:
        if exc.kind in (ErrorKind.TLS, ErrorKind.TLS_CLIENT):
            raise
        raise ProbeFailure("gateway_refused") from None
    except RetryableError as exc:
        if exc.kind in (ErrorKind.TLS, ErrorKind.TLS_CLIENT, ErrorKind.TIMEOUT):
            raise
        raise ProbeFailure("gateway_busy") from None
    try:
        writer.write(pack(b"INFO", b"replication"))
        parser = hiredis.Reader()
        while (reply := parser.gets()) is False:
            data = await reader.read(1 << 16)
            if not data:
                raise ProbeFailure("closed")
            parser.feed(data)
        return reply
    finally:
        writer.close()


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


def source_probe(
    url: RedisUrl, tls: TlsMaterial | None, gateway: GatewayOptions | None = None
) -> None:
    """Connect, (TLS,) authenticate and read `INFO replication` within `CHECK_DEADLINE_S`;
    raise `ProbeFailure` with the class of the failure. With `gateway` (compression on), all of
    it through the sync gateway of the source's host, as the sync job will connect."""
    if url.tls and tls is None:
        tls = TlsMaterial()

    async def run(workdir: Path) -> None:
        await asyncio.wait_for(_check(url, tls, workdir, gateway), CHECK_DEADLINE_S)

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
