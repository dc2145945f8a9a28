"""Reads of Replica Of for pages, the API, the WebSocket and the sync job: no writes here."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone

from console.models import Database
from replication.models import ReplicaOf, ReplicaSource, ReplicaSync
from replication.syncer.urls import UrlError, parse_redis_url

# Worst first: a destination shows the worst of its sources.
_SOURCE_ORDER = ("out-of-sync", "syncing", "in-sync")


def source_name(source: ReplicaSource) -> str:
    """What the operator sees for a source: the database's name or the redacted URL."""
    if source.source_database_id is not None:
        return source.source_database.name if source.source_database else "?"
    try:
        return parse_redis_url(source.external_uri).redacted()
    except UrlError:
        return "(invalid URL)"


def aggregate_status(replica_sync: str, source_statuses: list[str]) -> str:
    """`disabled`, `paused`, `stopped`, or the worst status of the sources while enabled."""
    if replica_sync != ReplicaSync.ENABLED or not source_statuses:
        return replica_sync if source_statuses else ReplicaSync.DISABLED
    for status in _SOURCE_ORDER:
        if status in source_statuses:
            return status
    return "syncing"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def source_live(source: ReplicaSource) -> dict[str, Any]:
    return {
        "uid": source.uid,
        "name": source_name(source),
        "status": source.status,
        "progress": source.progress,
        "lag": source.lag,
        "last_update": _iso(source.last_update),
        "last_error": source.last_error,
        "rdb_size": source.rdb_size,
        "rdb_transferred": source.rdb_transferred,
        "commands_applied": source.commands_applied,
        "ingress_bytes": source.ingress_bytes,
        "retries": source.retries,
    }


def live_payload(
    database: Database,
    *,
    replica_sync: str,
    last_error: str,
    destinations: int,
    sources: list[dict[str, Any]],
) -> dict[str, Any]:
    """The shape pushed to `database-<uid>` and sent as a snapshot (see replication.consumers)."""
    return {
        "database": database.pk,
        "name": database.name,
        "replica_sync": replica_sync,
        "status": aggregate_status(replica_sync, [s["status"] for s in sources]),
        "last_error": last_error,
        "destinations": destinations,
        "sources": sources,
        "time": timezone.now().isoformat(),
    }


def destinations_count(database: Database) -> int:
    """How many databases of this cluster use `database` as a source."""
    return ReplicaSource.objects.filter(source_database=database).count()


def database_live_status(database: Database) -> dict[str, Any]:
    """The Replica Of state of a database as saved (the sync job saves it every second)."""
    replica_of = ReplicaOf.objects.filter(destination=database).first()
    sources = ReplicaSource.objects.filter(destination=database).select_related("source_database")
    return live_payload(
        database,
        replica_sync=replica_of.replica_sync if replica_of else ReplicaSync.DISABLED,
        last_error=replica_of.last_error if replica_of else "",
        destinations=destinations_count(database),
        sources=[source_live(s) for s in sources],
    )


def replica_sources_of(database: Database) -> list[ReplicaSource]:
    return list(
        ReplicaSource.objects.filter(destination=database).select_related(
            "source_database", "source_database__node"
        )
    )
