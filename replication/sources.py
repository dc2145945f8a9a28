"""Source URLs and the replication graph: who copies from whom, and what would close a cycle.

Pure reads over the ORM; `replication.services` uses them to validate before it writes.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from django.conf import settings

from console.errors import ApplicationError
from console.models import Database, Shard, TlsMode
from replication.models import ReplicaSource
from replication.syncer.urls import RedisUrl, UrlError, parse_redis_url

MAX_SOURCES = 32
LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


@dataclass(frozen=True, slots=True)
class SourceInput:
    """One wanted source, as the operator gave it (shape already checked)."""

    source_database_uid: int | None = None
    uri: str = ""
    compression: int = 0
    encryption: bool = False
    server_cert: str = ""
    client_cert: str = ""
    replication_tls_sni: str = ""


def source_input_of(source: ReplicaSource) -> SourceInput:
    """A saved source as the input that would save it again (to compare or keep it)."""
    return SourceInput(
        source_database_uid=source.source_database_id,
        uri="" if source.source_database_id else source.external_uri,
        compression=source.compression,
        encryption=source.encryption,
        server_cert=source.server_cert,
        client_cert=source.client_cert,
        replication_tls_sni=source.replication_tls_sni,
    )


def internal_source_url(database: Database, *, redact: bool = False) -> str:
    """`redis://admin:<internal password>@host:port`; `rediss://` when the database needs TLS."""
    scheme = "redis" if database.tls_mode == TlsMode.DISABLED else "rediss"
    password = "***" if redact else quote(database.internal_password, safe="")
    host = database.node.address
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://admin:{password}@{host}:{database.port}"


def _is_local(host: str) -> bool:
    if host.lower() in LOCAL_NAMES or host.lower() == settings.NODE_NAME.lower():
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _addresses_of(host: str) -> set[str]:
    """Every IP a host name or literal stands for; loopback names collapse to 'local'."""
    if _is_local(host):
        return {"local"}
    try:
        ipaddress.ip_address(host)
        addrs = {host}
    except ValueError:
        try:
            addrs = {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
        except OSError:
            return {host.lower()}
    return {"local" if _is_local(str(a)) else str(a) for a in addrs}


def _same_endpoint(host_a: str, port_a: int, host_b: str, port_b: int) -> bool:
    return port_a == port_b and bool(_addresses_of(host_a) & _addresses_of(host_b))


def database_at(url: RedisUrl) -> Database | None:
    """The database of this cluster listening at the URL's host:port, if any."""
    shard = Shard.objects.select_related("database__node").filter(port=url.port).first()
    if shard is None:
        return None
    db = shard.database
    return db if _same_endpoint(url.host, url.port, db.node.address, shard.port) else None


def _forbidden_endpoints() -> list[tuple[str, int, str]]:
    """Endpoints a source must never point at: the control Redis and the SQL database."""
    found: list[tuple[str, int, str]] = []
    control = urlsplit(settings.REDIS_URL)
    found.append(
        (control.hostname or "127.0.0.1", control.port or 6379, "the console's control Redis")
    )
    db = settings.DATABASES["default"]
    if db.get("HOST"):
        found.append((str(db["HOST"]), int(db.get("PORT") or 5432), "the console's SQL database"))
    return found


def parse_external_uri(uri: str, *, field: str) -> RedisUrl:
    try:
        url = parse_redis_url(uri)
    except UrlError as exc:
        raise ApplicationError(str(exc), field=field) from None
    for host, port, what in _forbidden_endpoints():
        if _same_endpoint(url.host, url.port, host, port):
            raise ApplicationError(f"the URL points at {what}", field=field)
    return url


def replication_edges() -> dict[int, set[int]]:
    """destination uid -> uids of this cluster's databases it copies from (external URLs too)."""
    edges: dict[int, set[int]] = {}
    for src in ReplicaSource.objects.select_related("source_database"):
        upstream: int | None = src.source_database_id
        if upstream is None and src.external_uri:
            try:
                target = database_at(parse_redis_url(src.external_uri))
            except UrlError:
                target = None
            upstream = target.pk if target else None
        if upstream is not None:
            edges.setdefault(src.destination_id, set()).add(upstream)
    return edges


def cycle_reason(destination: Database, upstream_uids: set[int]) -> str | None:
    """Why making `destination` copy from `upstream_uids` would replicate it into itself."""
    if destination.pk in upstream_uids:
        return "a database cannot be a source of itself"
    edges = replication_edges()
    edges[destination.pk] = set(upstream_uids)
    for uid in upstream_uids:
        # Walk up from the new source; reaching the destination means a loop.
        seen: set[int] = set()
        stack = [uid]
        while stack:
            cur = stack.pop()
            if cur == destination.pk:
                name = Database.objects.filter(pk=uid).values_list("name", flat=True).first()
                return (
                    f"{name} already replicates from {destination.name} (directly or through "
                    "a chain): this would make a cycle"
                )
            if cur in seen:
                continue
            seen.add(cur)
            stack.extend(edges.get(cur, set()))
    return None


def cycle_candidates(destination: Database) -> dict[int, str]:
    """For the 'Current cluster' picker: databases that cannot be added, with the reason."""
    current = {
        s.source_database_id
        for s in ReplicaSource.objects.filter(destination=destination)
        if s.source_database_id
    }
    refused: dict[int, str] = {}
    for db in Database.objects.exclude(pk__in=current):
        reason = cycle_reason(destination, {*current, db.pk})
        if reason:
            refused[db.pk] = reason
    return refused
