"""Reads of Replica Of for pages, the API, the WebSocket and the sync job: no writes here."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db.models import Prefetch, QuerySet

from console.models import Database
from replication import control
from replication.alerts import Thresholds
from replication.live import LiveStatus, live_message
from replication.models import (
    AlertSettings,
    Cutover,
    ReplicaAlert,
    ReplicaEvent,
    ReplicaOf,
    ReplicaSource,
    ReplicaSync,
    VerifyRun,
)


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


def destinations_of(database: Database) -> list[Database]:
    """The databases of this cluster that use `database` as a source, by name."""
    return sorted(
        {s.destination for s in database.replica_destinations.select_related("destination")},
        key=lambda d: d.name,
    )


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


def cutover_of(database: Database) -> Cutover | None:
    """The database's newest migration (the one its page and the API show)."""
    return (
        Cutover.objects.filter(destination=database)
        .select_related("destination", "destination__node", "verify_run")
        .first()
    )


def syncer_state(database: Database) -> dict[str, Any] | None:
    """The state of the destination's syncer (`GET /v1/bdbs/{uid}/syncer_state/replica`): the
    wanted state and the job that runs it, and each source's position and status as saved by
    the job. None when the database never was a destination (Redis Enterprise's 404)."""
    replica_of = replica_of_state(database)
    if replica_of is None:
        return None
    desired = control.desired_read(database.pk)
    return {
        "DB": database.pk,
        "RunID": replica_of.generation,
        "replica_sync": replica_of.replica_sync,
        "generation": replica_of.generation,
        "job_running": control.lock_held(database.pk),
        "desired": (
            {"generation": desired.generation, "state": desired.state, "revision": desired.revision}
            if desired
            else None
        ),
        "last_error": replica_of.last_error,
        "sources": [
            {
                "uid": s.uid,
                "status": s.status,
                "lag": s.lag,
                "last_update": s.last_update.isoformat() if s.last_update else None,
                "rdb_size": s.rdb_size,
                "rdb_transferred": s.rdb_transferred,
                "commands_applied": s.commands_applied,
                "ingress_bytes": s.ingress_bytes,
                "retries": s.retries,
                "last_error": s.last_error,
            }
            for s in sources_of(database)
        ],
    }


def alert_settings_of(database: Database) -> AlertSettings:
    """The destination's alert settings (the defaults, unsaved, until someone changes them)."""
    found = AlertSettings.objects.filter(destination=database).first()
    return found or AlertSettings(destination=database)


def alert_thresholds(destination_id: int) -> Thresholds:
    s = AlertSettings.objects.filter(destination_id=destination_id).first() or AlertSettings()
    return Thresholds(
        lag_enabled=s.high_syncer_lag_enabled,
        lag_ms=s.high_syncer_lag_threshold_ms,
        connection_enabled=s.connection_error_enabled,
        general_enabled=s.general_error_enabled,
    )


def alerts_raised(destination_id: int) -> set[tuple[int, str]]:
    return set(
        ReplicaAlert.objects.filter(destination_id=destination_id, state=True).values_list(
            "source_uid", "name"
        )
    )


def alerts_of(*, database: Database | None = None, raised_only: bool = False) -> list[ReplicaAlert]:
    alerts = ReplicaAlert.objects.select_related("destination")
    if database is not None:
        alerts = alerts.filter(destination=database)
    if raised_only:
        alerts = alerts.filter(state=True)
    return list(alerts.order_by("-state", "-change_time"))
