"""The source connection check: one deadline, a fixed message per class of failure, nothing
reflected from the far end, and no transaction held while it waits (real listeners)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from replication.probe import CHECK_DEADLINE_S, ProbeFailure, failure_message, source_probe
from replication.syncer.urls import parse_redis_url
from tests.support.servers import RedisServer, free_port


class Listener:
    """A TCP server on loopback that answers every connection with `reply` (or stays silent)."""

    def __init__(self, reply: bytes | None) -> None:
        self.reply = reply
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            if self.reply is not None:
                conn.recv(4096)
                conn.sendall(self.reply)

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            c.close()


@pytest.fixture
def listener() -> Iterator[type[Listener]]:
    made: list[Listener] = []

    def make(reply: bytes | None) -> Listener:
        made.append(Listener(reply))
        return made[-1]

    yield make  # type: ignore[misc]
    for each in made:
        each.close()


def _kind(url: str) -> tuple[str, str]:
    parsed = parse_redis_url(url)
    with pytest.raises(ProbeFailure) as failed:
        source_probe(parsed, None)
    return failed.value.kind, failure_message(failed.value.kind, parsed)


def test_a_silent_listener_times_out_at_the_deadline(listener):
    silent = listener(None)
    kind, message = _kind(f"redis://127.0.0.1:{silent.port}")
    assert kind == "timeout"
    assert f"within {CHECK_DEADLINE_S:g} s" in message


def test_tls_against_a_plaintext_redis_fails_within_the_deadline():
    with RedisServer() as plain:
        kind, message = _kind(f"rediss://127.0.0.1:{plain.port}")
    assert kind in {"tls", "timeout", "closed"}, kind
    assert f"127.0.0.1:{plain.port}" in message


def test_nothing_listening_is_refused():
    kind, message = _kind(f"redis://127.0.0.1:{free_port()}")
    assert kind == "refused" and "cannot connect" in message


def test_a_service_that_is_not_redis_is_named_so(listener):
    http = listener(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    assert _kind(f"redis://127.0.0.1:{http.port}")[0] == "not_redis"


def test_error_text_from_the_far_end_is_never_reflected(listener):
    liar = listener(b"-ERR internal-secret=hunter2\r\n")
    for url in (f"redis://127.0.0.1:{liar.port}", f"redis://:pw@127.0.0.1:{liar.port}"):
        kind, message = _kind(url)
        assert kind in {"not_redis", "auth"}
        assert "hunter2" not in message and "internal-secret" not in message


def test_wrong_password_and_missing_permission():
    with RedisServer(password="right") as src:
        assert _kind(f"redis://:wrong@127.0.0.1:{src.port}")[0] == "auth"
        src.client().execute_command("ACL", "SETUSER", "reader", "on", ">pw", "+ping", "~*")
        assert _kind(f"redis://reader:pw@127.0.0.1:{src.port}")[0] == "noperm"
        source_probe(parse_redis_url(f"redis://:right@127.0.0.1:{src.port}"), None)


@pytest.mark.django_db(transaction=True)
def test_a_slow_check_holds_no_lock_other_writes_go_through(admin_api, listener):
    silent = listener(None)
    dest = admin_api.post("/v1/bdbs", {"name": "dest", "memory_size": 1 << 20}, format="json")
    assert dest.status_code == 201
    outcome: dict[str, object] = {}

    def put() -> None:
        body = {"replica_sources": [{"uri": f"redis://127.0.0.1:{silent.port}"}]}
        response = admin_api.put(f"/v1/bdbs/{dest.json()['uid']}", body, format="json")
        outcome["status"], outcome["body"] = response.status_code, response.json()

    checking = threading.Thread(target=put)
    checking.start()
    try:
        while not silent.conns:  # the check has connected and waits for an answer
            checking.join(0.05)
            assert checking.is_alive(), outcome
        other = admin_api.post("/v1/bdbs", {"name": "other", "memory_size": 1 << 20}, format="json")
        assert other.status_code == 201
        assert checking.is_alive()  # that write did not wait for the check
    finally:
        checking.join()
    assert outcome["status"] == 400
    assert "no answer" in str(outcome["body"])
