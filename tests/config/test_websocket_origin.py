"""Who may open `ws/status/`: pages of the console itself, by scheme, host and port."""

from __future__ import annotations

import asyncio

import pytest
from channels.testing import WebsocketCommunicator
from django.test import override_settings

from config.asgi import application
from replication.consumers import CLOSE_UNAUTHENTICATED


def _handshake(origin: str | None, host: str = "127.0.0.1:8080", scheme: str = "ws") -> object:
    """What the handshake gives: the close code the consumer sent (accepted, then closed since
    nobody signed in), or "refused" when the origin check turned it down."""
    headers = [(b"host", host.encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))

    async def run() -> object:
        communicator = WebsocketCommunicator(application, "/ws/status/?db=1", headers=headers)
        communicator.scope["scheme"] = scheme
        connected, _ = await communicator.connect()
        if not connected:
            return "refused"
        message = await communicator.receive_output()
        await communicator.disconnect()
        return message.get("code")

    return asyncio.run(run())


@pytest.mark.parametrize(
    "origin",
    [
        "http://127.0.0.1:9999",  # another service on the same host: the port differs
        "http://127.0.0.1",  # port 80
        "https://127.0.0.1:8080",  # another scheme
        "http://localhost:8080",  # another allowed host, but not the one the socket is on
        "http://evil.example:8080",
        "null",
        None,
    ],
)
def test_a_page_of_another_origin_cannot_open_the_socket(origin: str | None) -> None:
    assert _handshake(origin) == "refused"


def test_the_console_own_pages_can() -> None:
    assert _handshake("http://127.0.0.1:8080") == CLOSE_UNAUTHENTICATED
    assert _handshake("http://LOCALHOST:8080", host="localhost:8080") == CLOSE_UNAUTHENTICATED
    assert _handshake("https://127.0.0.1", host="127.0.0.1", scheme="wss") == CLOSE_UNAUTHENTICATED


def test_a_host_outside_allowed_hosts_is_refused_even_from_its_own_page() -> None:
    assert _handshake("http://evil.example:8080", host="evil.example:8080") == "refused"


@override_settings(CSRF_TRUSTED_ORIGINS=["https://console.example"])
def test_trusted_origins_of_a_proxy_are_accepted() -> None:
    assert _handshake("https://console.example") == CLOSE_UNAUTHENTICATED
    assert _handshake("https://console.example:8443") == "refused"
