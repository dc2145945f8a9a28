"""The source check against things that are not the Redis a source should be: every case is a
400 naming the URL field with a fixed message (never a 500, never the far end's own text), from
the API and from the Add source dialog alike."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from console.models import Database
from replication.models import ReplicaSource
from tests.support.servers import free_port, redis_server

MARKUP = b"<script>alert('x')</script>"


class _Http(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(MARKUP)

    def log_message(self, *args: Any) -> None:
        pass


def _tcp(behaviour: Callable[[socket.socket], None]) -> type[socketserver.BaseRequestHandler]:
    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            behaviour(self.request)

    return Handler


def _silent(conn: socket.socket) -> None:
    conn.settimeout(8)
    try:
        while conn.recv(4096):
            pass
    except OSError:
        pass


def _reply(data: bytes) -> Callable[[socket.socket], None]:
    def reply(conn: socket.socket) -> None:
        conn.recv(4096)
        conn.sendall(data)

    return reply


def _close(conn: socket.socket) -> None:
    conn.close()


# name -> (server factory, the words of the fixed message)
TCP_CASES: dict[str, tuple[Callable[[socket.socket], None], str]] = {
    "closes at once": (_close, "closed the connection"),
    "answers garbage": (_reply(b"\x00\xff garbage " + MARKUP + b"\r\n"), "Redis protocol"),
    "answers an error with markup": (_reply(b"-ERR " + MARKUP + b"\r\n"), "Redis protocol"),
    "answers a huge bulk": (_reply(b"$999999999\r\n" + MARKUP), "closed the connection"),
    "never answers": (_silent, "no answer"),
}


@pytest.fixture
def impostors() -> Iterator[dict[str, tuple[str, str]]]:
    """name -> (URL, expected words): servers on loopback that are not a usable Redis source."""
    servers: list[socketserver.BaseServer] = []
    cases: dict[str, tuple[str, str]] = {}
    for name, (behaviour, words) in TCP_CASES.items():
        tcp = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _tcp(behaviour))
        tcp.daemon_threads = True
        servers.append(tcp)
        cases[name] = (f"redis://127.0.0.1:{tcp.server_address[1]}", words)
    http = ThreadingHTTPServer(("127.0.0.1", 0), _Http)
    http.daemon_threads = True
    servers.append(http)
    cases["an HTTP server"] = (f"redis://127.0.0.1:{http.server_address[1]}", "Redis protocol")
    cases["TLS to an HTTP server"] = (f"rediss://127.0.0.1:{http.server_address[1]}", "TLS")
    cases["nothing listens"] = (f"redis://127.0.0.1:{free_port()}", "nothing accepts")
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    with redis_server(password="right-password") as real:
        cases["a Redis, wrong password"] = (
            f"redis://:wrong-password@127.0.0.1:{real.port}",
            "authentication failed",
        )
        cases["TLS to a plain Redis"] = (f"rediss://127.0.0.1:{real.port}", "TLS")
        try:
            yield cases
        finally:
            for server in servers:
                server.shutdown()
                server.server_close()


def _plain(text: str) -> None:
    assert "<script" not in text and "alert" not in text and "garbage" not in text, text
    assert "right-password" not in text and "wrong-password" not in text, text


def test_api_and_dialog_answer_400_with_a_fixed_message(
    admin_api: Any,
    admin_client: Client,
    pair: tuple[Database, Database],
    impostors: dict[str, tuple[str, str]],
) -> None:
    _, b = pair
    check = reverse("replica-source-check", kwargs={"uid": b.pk})
    for name, (uri, words) in impostors.items():
        api = admin_api.put(f"/v1/bdbs/{b.pk}", {"replica_sources": [{"uri": uri}]}, format="json")
        assert api.status_code == 400, (name, api.content)
        message = api.json()["replica_sources[0].uri"][0]
        assert words in message, (name, message)
        _plain(api.content.decode())

        dialog = admin_client.post(check, {"kind": "external", "uri": uri})
        assert dialog.status_code == 400, (name, dialog.content)
        assert dialog.json()["errors"]["uri"] == [message], name
        _plain(dialog.content.decode())
    assert not ReplicaSource.objects.filter(destination=b).exists()
