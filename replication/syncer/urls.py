"""Parse `redis://` and `rediss://` URLs given by operators, strictly.

We never hand user input to `redis.from_url`: it accepts dozens of query parameters (some of which
change security settings) and silently ignores typos. This parser accepts only what the syncer and
the control plane understand, and says exactly what is wrong otherwise.

    redis://[[user]:password@]host[:port][/db][?param=value&...]
    rediss://...                      (TLS)

host is an IPv4 address, a bracketed IPv6 address (`[::1]`) or a DNS name. The password (and user)
may be percent-encoded (`%40` for `@`). Allowed query parameters:

    db=N                  the database number (same as the path)
    sni=name              TLS server name indication (rediss only)
    cluster=yes|no        force (or forbid) Redis Cluster handling instead of auto-detection
    connect_timeout=S     connection timeout in seconds (float)
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote

__all__ = ["ALLOWED_PARAMS", "RedisUrl", "UrlError", "is_hostname", "parse_redis_url"]

ALLOWED_PARAMS = frozenset({"db", "sni", "cluster", "connect_timeout"})
_DEFAULT_PORT = 6379
# RFC 1123 host names: labels of letters, digits and hyphens, not starting/ending with a hyphen.
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)


def is_hostname(value: str) -> bool:
    """True for an RFC 1123 host name (what TLS SNI carries)."""
    return bool(_HOSTNAME.match(value))


class UrlError(ValueError):
    """The URL cannot be used; the message says why (never contains the password)."""


@dataclass(frozen=True, slots=True)
class RedisUrl:
    """A parsed Redis URL. `password` is decoded; `__repr__` hides it."""

    host: str
    port: int = _DEFAULT_PORT
    tls: bool = False
    username: str | None = None
    password: str | None = None
    db: int = 0
    sni: str | None = None
    cluster: bool | None = None
    connect_timeout: float = 10.0

    def __repr__(self) -> str:
        return f"RedisUrl({self.redacted()!r})"

    @property
    def address(self) -> str:
        """host:port, with IPv6 hosts bracketed."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def redacted(self) -> str:
        """The URL with the password replaced by `***` (for logs and status)."""
        scheme = "rediss" if self.tls else "redis"
        auth = ""
        if self.username or self.password:
            auth = (self.username or "") + (":***" if self.password else "") + "@"
        return f"{scheme}://{auth}{self.address}" + (f"/{self.db}" if self.db else "")


def _parse_host_port(hostport: str) -> tuple[str, int]:
    if not hostport:
        raise UrlError("the URL has no host")
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise UrlError("unterminated '[' in IPv6 host")
        host, rest = hostport[1:end], hostport[end + 1 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise UrlError(f"{host!r} is not a valid IPv6 address") from None
        if rest and not rest.startswith(":"):
            raise UrlError(f"unexpected {rest!r} after the IPv6 host")
        port_s = rest[1:] if rest else ""
    else:
        if hostport.count(":") > 1:
            raise UrlError("IPv6 addresses must be written in brackets, e.g. redis://[::1]:6379")
        host, _, port_s = hostport.partition(":")
        if not host:
            raise UrlError("the URL has no host")
        if re.fullmatch(r"[0-9.]+", host):
            try:
                ipaddress.IPv4Address(host)
            except ValueError:
                raise UrlError(f"{host!r} is not a valid IPv4 address") from None
        elif not _HOSTNAME.match(host):
            raise UrlError(f"{host!r} is not a valid host name")
        if ":" in hostport and not port_s:
            raise UrlError("empty port after ':'")
    if not port_s:
        return host, _DEFAULT_PORT
    if not port_s.isdigit():
        raise UrlError(f"port {port_s!r} is not a number")
    port = int(port_s)
    if not 1 <= port <= 65535:
        raise UrlError(f"port {port} is out of range 1-65535")
    return host, port


def _parse_db(value: str, what: str) -> int:
    if not value.isdigit() or len(value) > 5:
        raise UrlError(f"{what} {value!r} is not a database number")
    return int(value)


def parse_redis_url(url: str) -> RedisUrl:
    """Parse and validate `url`; raise `UrlError` with a clear message when it is not usable."""
    if not isinstance(url, str):
        raise UrlError("the URL must be a string")
    if any(c.isspace() for c in url) or any(ord(c) < 32 for c in url):
        raise UrlError("the URL contains whitespace or control characters")
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise UrlError("the URL must start with redis:// or rediss://")
    scheme = scheme.lower()
    if scheme not in ("redis", "rediss"):
        raise UrlError(f"unsupported scheme {scheme!r}: use redis:// or rediss://")
    if "#" in rest:
        raise UrlError("fragments ('#') are not allowed in a Redis URL; percent-encode '#' as %23")
    rest, _, query = rest.partition("?")
    netloc, slash, path = rest.partition("/")
    userinfo, at, hostport = netloc.rpartition("@")
    username: str | None = None
    password: str | None = None
    if at:
        user_raw, colon, pass_raw = userinfo.partition(":")
        try:
            username = unquote(user_raw, errors="strict") or None
            password = unquote(pass_raw, errors="strict") if colon else None
        except UnicodeDecodeError:
            raise UrlError("the user or password is not valid percent-encoded UTF-8") from None
        if colon and not pass_raw:
            raise UrlError("empty password after ':' (omit the ':' for no password)")
        if not colon and username:
            # redis://secret@host is ambiguous; redis-py treats it as a user without password,
            # which then fails with a confusing error. Say what to write instead.
            raise UrlError(
                "credentials without ':' — write redis://:PASSWORD@host or redis://USER:PASSWORD@host"
            )
    host, port = _parse_host_port(hostport)
    db = 0
    if slash and path:
        db = _parse_db(path, "path")
    sni: str | None = None
    cluster: bool | None = None
    timeout = 10.0
    seen: set[str] = set()
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise UrlError(f"malformed query string {query!r}") from None
    for name, value in pairs:
        if name not in ALLOWED_PARAMS:
            allowed = ", ".join(sorted(ALLOWED_PARAMS))
            raise UrlError(f"unknown URL parameter {name!r} (allowed: {allowed})")
        if name in seen:
            raise UrlError(f"URL parameter {name!r} given twice")
        seen.add(name)
        if name == "db":
            if slash and path:
                raise UrlError("the database is given both in the path and as ?db=")
            db = _parse_db(value, "db")
        elif name == "sni":
            if scheme != "rediss":
                raise UrlError("sni= only makes sense with rediss:// (TLS)")
            if not _HOSTNAME.match(value):
                raise UrlError(f"sni {value!r} is not a valid host name")
            sni = value
        elif name == "cluster":
            if value.lower() not in ("yes", "no", "true", "false", "1", "0"):
                raise UrlError(f"cluster={value!r}: use yes or no")
            cluster = value.lower() in ("yes", "true", "1")
        elif name == "connect_timeout":
            try:
                timeout = float(value)
            except ValueError:
                raise UrlError(f"connect_timeout={value!r} is not a number") from None
            if not 0 < timeout <= 3600:
                raise UrlError("connect_timeout must be between 0 and 3600 seconds")
    return RedisUrl(
        host=host,
        port=port,
        tls=scheme == "rediss",
        username=username,
        password=password,
        db=db,
        sni=sni,
        cluster=cluster,
        connect_timeout=timeout,
    )
