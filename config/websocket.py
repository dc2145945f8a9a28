"""Which pages may open the console's WebSocket: its own, compared by scheme, host and port.

Channels' `AllowedHostsOriginValidator` compares host names only, so a page of any other service
on the same host (another port: cookies are not per port) could open `ws/status/` with the
signed-in user's session (cross-site WebSocket hijacking). Here the Origin must be the address the
socket is opened on (its Host header, which ALLOWED_HOSTS must allow, with the scheme the request
came with), or one of CSRF_TRUSTED_ORIGINS (a console behind a proxy on another name).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

DEFAULT_PORTS = {"http": 80, "https": 443}
Origin = tuple[str, str, int]


def _origin(url: str) -> Origin | None:
    """(scheme, host, port) of an origin, with the scheme's default port."""
    try:
        parts = urlsplit(url.strip().lower())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return parts.scheme, parts.hostname, port or DEFAULT_PORTS[parts.scheme]


def _header(scope: dict[str, Any], name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value).decode("latin-1")
    return ""


def _own_origin(scope: dict[str, Any]) -> Origin | None:
    """The origin of the console as this socket reached it, if its Host is an allowed one."""
    host = _header(scope, b"host")
    domain, _ = split_domain_port(host)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return None
    scheme = "https" if scope.get("scheme") == "wss" else "http"
    proxy = settings.SECURE_PROXY_SSL_HEADER
    if proxy is not None:
        name = proxy[0].removeprefix("HTTP_").replace("_", "-").lower().encode()
        if _header(scope, name) == proxy[1]:
            scheme = "https"
    return _origin(f"{scheme}://{host}")


def origin_allowed(scope: dict[str, Any]) -> bool:
    origin = _origin(_header(scope, b"origin"))
    if origin is None:
        return False
    trusted = {_origin(o) for o in settings.CSRF_TRUSTED_ORIGINS}
    return origin == _own_origin(scope) or origin in trusted


class SameOriginValidator:
    """ASGI middleware: refuse the handshake of a WebSocket whose Origin is not the console's."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and not origin_allowed(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)
