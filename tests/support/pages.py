"""Helpers of the page tests: rows as the node worker would leave them, form data."""

from __future__ import annotations

import json
import socket

from django.conf import settings

from console import services
from console.models import Database, DatabaseStatus

MB = 1024 * 1024
DEFAULT_PASSWORD = "default-user-secret-7f3a"


def activate(database: Database) -> Database:
    """What the node worker does when the processes answer."""
    services.database_status_set(database=database, status=DatabaseStatus.ACTIVE)
    return database


def create_data(**overrides: object) -> dict[str, object]:
    """The Create database form's fields, with `overrides`."""
    data: dict[str, object] = {
        "name": "cache-1",
        "memory_mb": 64,
        "shards_count": 1,
        "port": "",
        "password": "",
        "persistence": "disabled",
    }
    data.update(overrides)
    return data


def occupied_port() -> socket.socket:
    """A listening socket on a port inside the database range (the test closes it)."""
    for port in range(settings.DB_PORT_MAX, settings.DB_PORT_MIN - 1, -1):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            sock.close()
            continue
        sock.listen(1)
        return sock
    raise RuntimeError("no free port in the database range")


def edit_data(sources: object, **extra: object) -> dict[str, object]:
    """Database → Edit's fields with the Replica Of source rows `sources` (as JSON)."""
    return {"memory_mb": 100, "sources": json.dumps(sources), **extra}
