"""Where a source is: the URL of one of this cluster's databases, an operator's external URL, and
which endpoints a source must never be (the console's own services).

Pure reads over the ORM; `replication.services` uses them to validate before it writes.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from urllib.parse import quote, urlsplit

import psutil
from django.conf import settings

from console.errors import ApplicationError
from console.models import Database, Shard, TlsMode
from replication.syncer.urls import RedisUrl, UrlError, parse_redis_url

LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}
ADMIN_USER = "admin"


def internal_source(database: Database) -> RedisUrl:
    """How a syncer reaches one of this cluster's databases: as `admin` with its internal
    password, over TLS whenever TLS applies to replication (on the TLS port with `replica_ssl`,
    while applications keep the plain one)."""
    return RedisUrl(
        host=database.node.address,
        port=database.replication_port,
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


LOCAL = "local"


def _local_addresses() -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The addresses of this node: every interface's, and the node address the databases bind."""
    found: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
    for addrs in psutil.net_if_addrs().values():
        for addr in addrs:
            if addr.family in (socket.AF_INET, socket.AF_INET6):
                with contextlib.suppress(ValueError):
                    found.add(_normalized(ipaddress.ip_address(addr.address.split("%")[0])))
    with contextlib.suppress(ValueError):
        found.add(_normalized(ipaddress.ip_address(settings.NODE_ADDRESS)))
    return found


def _normalized(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """IPv4-mapped (`::ffff:127.0.0.1`) and IPv4-compatible IPv6 addresses as the IPv4 address
    they reach."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if int(ip) >> 32 == 0 and int(ip) > 1:
            return ipaddress.IPv4Address(int(ip))  # deprecated IPv4-compatible ::a.b.c.d
    return ip


def _resolve(host: str) -> set[str] | None:
    """Every address `host` stands for (a literal, or what the resolver answers), or None."""
    literal = host.split("%")[0]  # an IPv6 zone (`fe80::1%eth0`) does not change the address
    try:
        ipaddress.ip_address(literal)
    except ValueError:
        pass
    else:
        return {literal}
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return None
    return {str(info[4][0]).split("%")[0] for info in infos}


def _addresses_of(host: str) -> set[str]:
    """Where a host is, normalized for comparison: `LOCAL` for anything that reaches this node
    (loopback range, the unspecified address, the node's name and addresses; IPv4-mapped IPv6
    forms included), else each IP address. A name that does not resolve stands for itself."""
    name = host.lower().rstrip(".")
    if name in LOCAL_NAMES or name == settings.NODE_NAME.lower():
        return {LOCAL}
    resolved = _resolve(host)
    if resolved is None:
        return {name}
    local = _local_addresses()
    found: set[str] = set()
    for text in resolved:
        ip = _normalized(ipaddress.ip_address(text))
        found.add(LOCAL if ip.is_loopback or ip.is_unspecified or ip in local else str(ip))
    return found


def _same_endpoint(host_a: str, port_a: int, host_b: str, port_b: int) -> bool:
    return port_a == port_b and bool(_addresses_of(host_a) & _addresses_of(host_b))


def database_at(url: RedisUrl) -> Database | None:
    """The database of this cluster listening at the URL's host:port, if any."""
    shard = Shard.objects.select_related("database__node").filter(port=url.port).first()
    db = (
        shard.database
        if shard is not None
        else Database.objects.select_related("node").filter(tls_port=url.port).first()
    )
    if db is None:
        return None
    return db if _same_endpoint(url.host, url.port, db.node.address, url.port) else None


def console_endpoints() -> list[tuple[str, int, str]]:
    """(host, port, what) of every service of the console itself, which a source must never be:
    the control Redis (Celery broker, channel layer, job locks), the SQL database, the web server
    (ASGI), and whatever `settings.SERVICE_ENDPOINTS` adds (the sync gateway adds itself there)."""
    found: list[tuple[str, int, str]] = []
    control = urlsplit(settings.REDIS_URL)
    found.append(
        (control.hostname or "127.0.0.1", control.port or 6379, "the console's control Redis")
    )
    db = settings.DATABASES["default"]
    if not str(db.get("ENGINE", "")).endswith("sqlite3"):
        host = str(db.get("HOST") or "")
        # No host, or a socket directory: the server is on this node (and usually on TCP too).
        host = "127.0.0.1" if not host or host.startswith("/") else host
        found.append((host, int(db.get("PORT") or 5432), "the console's SQL database"))
    found.append((settings.HTTP_HOST, settings.HTTP_PORT, "the console's web server"))
    found += [(host, port, what) for what, host, port in settings.SERVICE_ENDPOINTS]
    return found


def parse_external_uri(uri: str, *, field: str) -> RedisUrl:
    """An operator's source URL, refused with the reason when it cannot or must not be used."""
    try:
        url = parse_redis_url(uri)
    except UrlError as exc:
        raise ApplicationError(str(exc), field=field) from None
    for host, port, what in console_endpoints():
        if _same_endpoint(url.host, url.port, host, port):
            raise ApplicationError(f"the URL points at {what}", field=field)
    return url
