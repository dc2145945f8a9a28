"""A source must never be one of the console's own services, whatever form its URL takes."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

import psutil
import pytest
from django.conf import settings
from django.test import override_settings

from console.errors import ApplicationError
from replication.endpoints import parse_external_uri


def _control_port() -> int:
    return int(urlsplit(settings.REDIS_URL).port or 6379)


def _node_ip() -> str:
    """A non-loopback address of this machine (the container's), or its loopback one."""
    for addrs in psutil.net_if_addrs().values():
        for addr in addrs:
            if addr.family == socket.AF_INET and not ipaddress.ip_address(addr.address).is_loopback:
                return addr.address
    return "127.0.0.1"


HOST_FORMS: dict[str, Callable[[], str]] = {
    "unspecified": lambda: "0.0.0.0",
    "unspecified-v6": lambda: "[::]",
    "v4-mapped": lambda: "[::ffff:127.0.0.1]",
    "v4-mapped-hex": lambda: "[::ffff:7f00:1]",
    "v4-compatible": lambda: "[::127.0.0.1]",
    "loopback-range": lambda: "127.0.0.2",
    "loopback-v6": lambda: "[::1]",
    "localhost": lambda: "localhost",
    "localhost-upper-dot": lambda: "LOCALHOST.",
    "node-name": lambda: settings.NODE_NAME,
    "node-address": _node_ip,
    "node-address-mapped": lambda: f"[::ffff:{_node_ip()}]",
}


@pytest.mark.parametrize("form", HOST_FORMS)
def test_the_control_redis_is_refused_in_every_form(form: str) -> None:
    uri = f"redis://:pw@{HOST_FORMS[form]()}:{_control_port()}"
    with pytest.raises(ApplicationError, match="control Redis") as refused:
        parse_external_uri(uri, field="replica_sources[0].uri")
    assert refused.value.field == "replica_sources[0].uri"
    assert "pw" not in refused.value.message


@pytest.mark.parametrize("form", ["unspecified", "v4-mapped", "localhost", "node-address"])
def test_the_console_web_server_is_refused(form: str) -> None:
    with pytest.raises(ApplicationError, match="web server"):
        parse_external_uri(f"redis://{HOST_FORMS[form]()}:{settings.HTTP_PORT}", field="uri")


@pytest.mark.parametrize("host", ["", "/var/run/postgresql", "localhost", "127.0.0.1"])
def test_the_sql_database_is_refused_when_it_is_postgresql(
    monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    db = settings.DATABASES["default"]
    monkeypatch.setitem(db, "ENGINE", "django.db.backends.postgresql")
    monkeypatch.setitem(db, "HOST", host)
    monkeypatch.setitem(db, "PORT", "")
    for form in ("unspecified", "v4-mapped", "loopback-range"):
        with pytest.raises(ApplicationError, match="SQL database"):
            parse_external_uri(f"redis://{HOST_FORMS[form]()}:5432", field="uri")


def test_more_console_endpoints_come_from_settings() -> None:
    gateway = [("the console's sync gateway", "0.0.0.0", 9443)]
    with (
        override_settings(SERVICE_ENDPOINTS=gateway),
        pytest.raises(ApplicationError, match="sync gateway"),
    ):
        parse_external_uri("rediss://[::ffff:127.0.0.1]:9443", field="uri")
    assert parse_external_uri("rediss://127.0.0.1:9444", field="uri").port == 9444


def test_the_sync_gateway_of_this_node_is_refused() -> None:
    with pytest.raises(ApplicationError, match="sync gateway"):
        parse_external_uri(f"redis://127.0.0.1:{settings.GATEWAY_PORT}", field="uri")


@pytest.mark.parametrize(
    "uri",
    [
        # Same host, another port: a Redis an operator runs beside the console is a fine source.
        f"redis://127.0.0.1:{_control_port() + 1}",
        f"redis://[::ffff:127.0.0.1]:{_control_port() + 1}",
        # Elsewhere on the control Redis' port (documentation addresses: never connected here).
        f"redis://192.0.2.10:{_control_port()}",
        f"redis://[2001:db8::1]:{_control_port()}",
    ],
)
def test_other_endpoints_are_accepted(uri: str) -> None:
    assert parse_external_uri(uri, field="uri").port in {_control_port(), _control_port() + 1}
