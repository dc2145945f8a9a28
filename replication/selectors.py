"""Reads of Replica Of for pages, the API, the WebSocket and the sync job: no writes here."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db.models import Prefetch, QuerySet

from console.models import Database
from replication.live import LiveStatus, live_message
from replication.models import ReplicaEvent, ReplicaOf, ReplicaSource, ReplicaSync, VerifyRun


def replica_sources_of(database: Database) -> list[ReplicaSource]:
    return list(
        ReplicaSource.objects.filter(destination=database).select_related(
            "source_database", "source_database__node"
        )
    )


def with_replica_of(databases: QuerySet[Database]) -> QuerySet[Database]:
    """`databases` with their Replica Of state and sources fetched in two queries, whatever their
    number (what the list pages and `GET /v1/bdbs` read: `replica_of_state`, `sources_of`)."""
    return databases.select_related("replica_of").prefetch_related(
        Prefetch(
            "replica_sources",
            queryset=ReplicaSource.objects.select_related(
                "source_database", "source_database__node"
            ),
        ),
        "replica_destinations",
    )


def replica_of_state(database: Database) -> ReplicaOf | None:
    """The database's ReplicaOf row (None when it never was a destination)."""
    try:
        return database.replica_of
    except ReplicaOf.DoesNotExist:
        return None


def replica_sync_of(database: Database) -> str:
    replica_of = replica_of_state(database)
    return replica_of.replica_sync if replica_of else ReplicaSync.DISABLED


def sources_of(database: Database) -> list[ReplicaSource]:
    """The database's sources (prefetched by `with_replica_of`, else one query)."""
    return list(database.replica_sources.all())


def destinations_count(database: Database) -> int:
    """How many databases of this cluster use `database` as a source."""
    return len(database.replica_destinations.all())


def database_live(database: Database) -> LiveStatus:
    """The Replica Of state of a database as saved (the sync job saves it every second)."""
    replica_of = replica_of_state(database)
    return LiveStatus(
        database=database.pk,
        name=database.name,
        replica_sync=replica_of.replica_sync if replica_of else ReplicaSync.DISABLED,
        last_error=replica_of.last_error if replica_of else "",
        last_error_kind=replica_of.last_error_kind if replica_of else "",
        destinations=destinations_count(database),
        sources=sources_of(database),
    )


def database_live_status(database: Database) -> dict[str, Any]:
    """`database_live` as the live message (WebSocket snapshot, page's first render)."""
    return live_message(database_live(database))


def databases_live_status(databases: Iterable[Database]) -> list[dict[str, Any]]:
    return [database_live_status(db) for db in databases]


def replica_events_of(database: Database, *, limit: int = 50) -> list[ReplicaEvent]:
    """The destination's newest sync events first (what its sync jobs did and why)."""
    return list(ReplicaEvent.objects.filter(destination=database)[:limit])


def verify_runs_of(database: Database) -> list[VerifyRun]:
    """The database's last verify runs, newest first."""
    return list(VerifyRun.objects.filter(destination=database)[: VerifyRun.KEEP])
