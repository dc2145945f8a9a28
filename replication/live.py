"""The one live status shape of Replica Of, and how it travels.

A destination's live status is built by `LiveStatusSerializer` and nothing else: the REST API
(`replica_sources[]` uses `LiveSourceSerializer`'s fields), the WebSocket snapshot (from the saved
rows) and the sync job's pushes (from the engine, four times a second) all serialize through it, so
the page, the API and the socket cannot drift apart. A source is read from a `ReplicaSource` row or
from a `LiveSource` (the job's in-memory values): both have the same attribute names.

Also here: the Channels group a database's status goes to, the push, the order that makes a
destination show the worst of its sources, and what the page shows for each state and error kind.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.utils import timezone
from rest_framework import serializers

from replication.models import ReplicaSync, SourceStatus
from replication.syncer.status import Phase, worst_phase

log = logging.getLogger(__name__)

# What the operator reads for each state (DESIGN §3); the page's script gets the same table.
STATUS_LABELS = {
    "disabled": "Not a replica",
    "syncing": "Syncing",
    "in-sync": "Synced",
    "out-of-sync": "Reconnecting",
    "stopped": "Sync stopped",
    "paused": "Paused",
}

# What to do after a stop, by the kind of the error (replication.syncer.errors.ErrorKind).
# `auth_internal`: the source is a database of this cluster and the reader is an admin, who can
# restart with its current password from the page.
ADVICE = {
    "auth": "The source refused the password: if it was regenerated, edit the source with its new "
    "URL (Edit → Replica Of), then Start.",
    "auth_internal": "The source refused the password: it was probably regenerated. Use the new "
    "password below, or edit the source.",
    "cross_slot": "A command of the source touches keys of different hash slots, which this "
    "sharded destination cannot apply. Fix the keys on the source (hash tags) or use a "
    "destination with one shard, then Start.",
    "oom": "Out of memory. Raise the memory limit of the database that ran out (Edit), then Start.",
    "output_buffer": "The source keeps dropping the link while the full sync runs: raise its "
    "client-output-buffer-limit for replicas as the message says, then Start.",
    "tls": "The source's TLS certificate is not the one configured: paste the source cluster's "
    "proxy certificate (its Security page) in the source's settings (the pencil on its row), "
    "then Start.",
    "tls_client": "The source does not trust this cluster's syncer certificate: copy it from this "
    "cluster's Security page, add it to the source database's trusted certificates (its Edit → "
    "TLS), then Start.",
    "default": "Fix the cause, then Start (it flushes this database and syncs again).",
}


def group_name(uid: int) -> str:
    """The Channels group of the pages that show database `uid`."""
    return f"database-{uid}"


def status_push(uid: int, payload: dict[str, Any]) -> None:
    """Send a status to the pages that show this database (best effort: never stops a job)."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(
            group_name(uid), {"type": "database.status", "status": payload}
        )
    except Exception as exc:  # a channel layer hiccup must not stop replication
        log.warning("status push for database %s failed: %s", uid, type(exc).__name__)


def source_status(phase: Phase, retries: int) -> str:
    """The API status of a source (`syncing`, `in-sync`, `out-of-sync`) from its syncer phase;
    `retries` counts reconnects since it was last in sync (a link that is connecting again after a
    drop is out of sync, not syncing)."""
    if phase is Phase.IN_SYNC:
        return SourceStatus.IN_SYNC
    if phase is Phase.OUT_OF_SYNC or (phase in {Phase.CONNECTING, Phase.STOPPED} and retries):
        return SourceStatus.OUT_OF_SYNC
    return SourceStatus.SYNCING


def aggregate_status(replica_sync: str, statuses: Sequence[str]) -> str:
    """`disabled`, `paused`, `stopped`, or the worst status of the sources while enabled (the
    syncer's own order of phases decides what is worse)."""
    if not statuses:
        return ReplicaSync.DISABLED
    if replica_sync != ReplicaSync.ENABLED:
        return replica_sync
    return str(worst_phase([Phase(s) for s in statuses]))


@dataclass(slots=True)
class LiveSource:
    """A source's live values as a running job knows them (same names as `ReplicaSource`)."""

    uid: int
    name: str
    source_database_id: int | None
    status: str
    progress: float | None = None
    lag: int | None = None
    lag_exact: bool = True
    last_update: datetime | None = None
    last_error: str = ""
    last_error_kind: str = ""
    rdb_size: int | None = None
    rdb_transferred: int | None = None
    keys_loaded: int | None = None  # keys of the full sync loaded so far (None: not known here)
    commands_applied: int = 0
    ingress_bytes: int = 0  # on the wire
    ingress_bytes_decompressed: int = 0  # after inflating (equal without compression)
    retries: int = 0


@dataclass(slots=True)
class LiveStatus:
    """A destination's live values: what `LiveStatusSerializer` turns into the message."""

    database: int
    name: str
    replica_sync: str
    last_error: str
    last_error_kind: str
    destinations: int
    sources: Sequence[Any]  # ReplicaSource rows or LiveSource values
    time: datetime = field(default_factory=timezone.now)

    @property
    def status(self) -> str:
        return aggregate_status(self.replica_sync, [s.status for s in self.sources])


class LiveSourceSerializer(serializers.Serializer[Any]):
    """The live fields of one source (also part of each `replica_sources[]` item of the API)."""

    uid = serializers.IntegerField(read_only=True)
    bdb_uid = serializers.IntegerField(source="source_database_id", read_only=True, allow_null=True)
    name = serializers.CharField(read_only=True)
    status = serializers.CharField(read_only=True)
    progress = serializers.FloatField(read_only=True, allow_null=True)
    lag = serializers.IntegerField(read_only=True, allow_null=True)
    # False: the source cannot be sampled now, `lag` is only a lower bound ("at least").
    lag_exact = serializers.BooleanField(read_only=True)
    last_update = serializers.DateTimeField(read_only=True, allow_null=True)
    last_error = serializers.CharField(read_only=True)
    last_error_kind = serializers.CharField(read_only=True)
    rdb_size = serializers.IntegerField(read_only=True, allow_null=True)
    rdb_transferred = serializers.IntegerField(read_only=True, allow_null=True)
    # Only a running job knows it (its pushes); a saved row has none: null.
    keys_loaded = serializers.IntegerField(read_only=True, allow_null=True, default=None)
    commands_applied = serializers.IntegerField(read_only=True)
    ingress_bytes = serializers.IntegerField(read_only=True)
    ingress_bytes_decompressed = serializers.IntegerField(read_only=True)
    retries = serializers.IntegerField(read_only=True)


class LiveStatusSerializer(serializers.Serializer[Any]):
    """The message of `ws/status/` and of the pushes to `database-<uid>`."""

    database = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)
    replica_sync = serializers.CharField(read_only=True)
    status = serializers.CharField(read_only=True)
    last_error = serializers.CharField(read_only=True)
    last_error_kind = serializers.CharField(read_only=True)
    destinations = serializers.IntegerField(read_only=True)
    sources = LiveSourceSerializer(many=True, read_only=True)
    time = serializers.DateTimeField(read_only=True)


def live_message(status: LiveStatus) -> dict[str, Any]:
    """The JSON-ready message for `status` (the one shape, see the module doc)."""
    return dict(LiveStatusSerializer(status).data)
