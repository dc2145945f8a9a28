"""Live Replica Of status for the pages: one WebSocket per page, one group per database shown.

The consumer is dumb (STYLE 11): it authenticates with the session, reads through the same
permission-scoped selector as the pages, joins `database-<uid>` for each database asked for, sends
a snapshot of each on connect and forwards the sync jobs' pushes. It never writes.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from console import selectors as console_selectors
from console.models import User
from replication import selectors
from replication.live import group_name

# Close code for "sign in first" (4000-4999 are the application's); the page does not retry it.
CLOSE_UNAUTHENTICATED = 4401
# A page shows a few dozen databases at most; more ids in one query string are ignored.
MAX_DATABASES = 200


def _wanted_uids(query_string: bytes) -> list[int]:
    """`?db=1&db=2…` → [1, 2]; what is not a positive integer is ignored."""
    values = parse_qs(query_string.decode("latin-1")).get("db", [])
    uids: list[int] = []
    for value in values:
        if value.isdigit() and int(value) > 0 and int(value) not in uids:
            uids.append(int(value))
    return uids[:MAX_DATABASES]


def _readable(user: User, uids: list[int]) -> list[int]:
    """The ids among `uids` of existing databases the user may read."""
    databases = console_selectors.database_list(user=user).filter(pk__in=uids)
    return sorted(databases.values_list("pk", flat=True))


def _snapshots(user: User, uids: list[int]) -> list[dict[str, Any]]:
    databases = console_selectors.database_list(user=user).filter(pk__in=uids).order_by("pk")
    return selectors.databases_live_status(selectors.with_replica_of(databases))


class StatusConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    """`ws/status/?db=<uid>&db=<uid>…`: messages `{"kind": "status", **database_live_status}`,
    first one snapshot per database (with `"snapshot": true`), then the sync jobs' pushes."""

    groups_joined: list[str]

    async def connect(self) -> None:
        self.groups_joined = []
        user = self.scope.get("user")
        await self.accept()
        if user is None or not user.is_authenticated:
            # Accepted first so that the browser sees the code (a refused handshake is 1006).
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        uids = await database_sync_to_async(_readable)(
            user, _wanted_uids(self.scope.get("query_string", b""))
        )
        # Join first, then read: no push is lost, and the pushes are forwarded only after the
        # snapshots. The snapshot comes from the rows (saved once a second), so a push that
        # raced it is usually fresher though older by `time`: the page applies pushes in order
        # after a snapshot (`"snapshot": true`), whatever their `time`.
        for uid in uids:
            await self.channel_layer.group_add(group_name(uid), self.channel_name)
            self.groups_joined.append(group_name(uid))
        for snapshot in await database_sync_to_async(_snapshots)(user, uids):
            await self.send_json({"kind": "status", **snapshot, "snapshot": True})

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        """The page only listens; anything it sends is ignored."""

    async def database_status(self, event: dict[str, Any]) -> None:
        await self.send_json({"kind": "status", **event["status"]})
