"""Where a source is: the URL of one of this cluster's databases, an operator's external URL, and
which endpoints a source must never be (the console's own services).

Pure reads over the ORM; `replication.services` uses them to validate before it writes.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import quote, urlsplit

from django.conf import settings

from console.errors import ApplicationError
from console.models import Database, Shard, TlsMode
from replication.syncer.urls import RedisUrl, UrlError, parse_redis_url

LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}
ADMIN_USER = "admin"


def internal_source(database: Database) -> RedisUrl:
    """How a syncer reaches one of this cluster's databases: as `admin` with its internal
    password, over TLS when the database requires it."""
    return RedisUrl(
        host=database.node.address,
        port=database.port,
        tls=database.tls_mode != TlsMode.DISABLED,
        username=ADMIN_USER,
        password=database.internal_password,
    )


def internal_source_url(database: Database, *, redact: bool = False) -> str:
    """`redis://admin:<internal password>@host:port` (`rediss://` with TLS): the "Replica Of
    source URL" an operator copies to another cluster; with `redact`, the password is `***`."""
    url = internal_source(database)
    if redact:
        return url.redacted()
    scheme = "rediss" if url.tls else "redis"
    return f"{scheme}://{ADMIN_USER}:{quote(url.password or '', safe='')}@{url.address}"


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
    """An operator's source URL, refused with the reason when it cannot or must not be used."""
    try:
        url = parse_redis_url(uri)
    except UrlError as exc:
        raise ApplicationError(str(exc), field=field) from None
    for host, port, what in _forbidden_endpoints():
        if _same_endpoint(url.host, url.port, host, port):
            raise ApplicationError(f"the URL points at {what}", field=field)
    return url
