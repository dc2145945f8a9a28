"""Writes of Replica Of: the only code that changes sources and sync state."""

from __future__ import annotations

from collections.abc import Sequence

import redis
from django.db import transaction

from console.errors import ApplicationError
from console.models import Database, DatabaseStatus, User
from console.services import audit_record
from replication import sources as graph
from replication.models import ReplicaOf, ReplicaSource, ReplicaSync
from replication.sources import MAX_SOURCES, SourceInput
from replication.syncer.urls import RedisUrl, parse_redis_url

CHECK_TIMEOUT_S = 5.0


def replica_of_get(*, destination: Database) -> ReplicaOf:
    replica_of, _ = ReplicaOf.objects.get_or_create(destination=destination)
    return replica_of


def _field(index: int, name: str) -> str:
    return f"replica_sources[{index}].{name}"


def _resolve(
    destination: Database, wanted: Sequence[SourceInput]
) -> list[tuple[SourceInput, Database | None, RedisUrl]]:
    """Validate every wanted source; return it with its database (if internal) and URL."""
    if len(wanted) > MAX_SOURCES:
        raise ApplicationError(
            f"a destination has at most {MAX_SOURCES} sources ({len(wanted)} given)",
            field="replica_sources",
        )
    resolved: list[tuple[SourceInput, Database | None, RedisUrl]] = []
    seen: set[str] = set()
    for i, item in enumerate(wanted):
        if not 0 <= item.compression <= 6:
            raise ApplicationError(
                "compression must be between 0 and 6", field=_field(i, "compression")
            )
        if (item.source_database_uid is None) == (not item.uri):
            raise ApplicationError(
                "give either a database of this cluster or a URL", field=_field(i, "uri")
            )
        if item.source_database_uid is not None:
            db = Database.objects.select_related("node").filter(pk=item.source_database_uid).first()
            if db is None:
                raise ApplicationError(
                    f"no database with uid {item.source_database_uid}", field=_field(i, "uri")
                )
            url = parse_redis_url(graph.internal_source_url(db))
        else:
            url = graph.parse_external_uri(item.uri, field=_field(i, "uri"))
            db = graph.database_at(url)
        if db is not None and db.status == DatabaseStatus.DELETE_PENDING:
            raise ApplicationError(f"database {db.name} is being deleted", field=_field(i, "uri"))
        key = f"db:{db.pk}" if db is not None else url.address
        if key in seen:
            raise ApplicationError("the same source is listed twice", field=_field(i, "uri"))
        seen.add(key)
        resolved.append((item, db, url))
    upstream = {db.pk for _, db, _ in resolved if db is not None}
    reason = graph.cycle_reason(destination, upstream)
    if reason:
        raise ApplicationError(reason, field="replica_sources")
    return resolved


def source_check(url: RedisUrl, *, field: str) -> None:
    """Connect and authenticate to a source; refuse with a clear reason (never the password)."""
    client = redis.Redis(
        host=url.host,
        port=url.port,
        username=url.username,
        password=url.password,
        ssl=url.tls,
        ssl_cert_reqs="none" if url.tls else "required",
        socket_connect_timeout=CHECK_TIMEOUT_S,
        socket_timeout=CHECK_TIMEOUT_S,
    )
    try:
        client.ping()
        client.execute_command("INFO", "replication")
    except redis.AuthenticationError:
        raise ApplicationError(
            f"authentication failed for source {url.redacted()}", field=field
        ) from None
    except redis.ResponseError as exc:
        if "NOPERM" in str(exc):
            raise ApplicationError(
                f"the user of {url.redacted()} may not read replication state (NOPERM)",
                field=field,
            ) from None
        raise ApplicationError(f"source {url.redacted()} answered: {exc}", field=field) from None
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        raise ApplicationError(
            f"cannot connect to {url.address}: {type(exc).__name__}", field=field
        ) from None
    finally:
        client.close()


def replica_sources_set(
    *,
    actor: User,
    destination: Database,
    sources: Sequence[SourceInput],
    check_connection: bool = True,
) -> ReplicaOf:
    """Replace the destination's sources; any change restarts the sync from scratch."""
    if destination.status == DatabaseStatus.DELETE_PENDING:
        raise ApplicationError("the destination is being deleted")
    resolved = _resolve(destination, sources)
    if check_connection:
        for i, (_, _, url) in enumerate(resolved):
            source_check(url, field=_field(i, "uri"))
    with transaction.atomic():
        replica_of = ReplicaOf.objects.select_for_update().filter(destination=destination).first()
        if replica_of is None:
            replica_of = ReplicaOf.objects.create(destination=destination)
        ReplicaSource.objects.filter(destination=destination).delete()
        ReplicaSource.objects.bulk_create(
            ReplicaSource(
                destination=destination,
                uid=n,
                source_database=db if item.source_database_uid is not None else None,
                external_uri=item.uri if item.source_database_uid is None else "",
                compression=item.compression,
                encryption=item.encryption or url.tls,
                server_cert=item.server_cert,
                client_cert=item.client_cert,
                replication_tls_sni=item.replication_tls_sni or (url.sni or ""),
            )
            for n, (item, db, url) in enumerate(resolved, start=1)
        )
        replica_of.generation += 1
        replica_of.last_error = ""
        replica_of.replica_sync = ReplicaSync.ENABLED if resolved else ReplicaSync.DISABLED
        replica_of.save(update_fields=["generation", "last_error", "replica_sync", "updated"])
        names = ", ".join(u.redacted() for _, _, u in resolved) or "none"
        audit_record(
            actor=actor,
            action="replica_sources.set",
            obj=destination,
            detail=f"sources: {names}; generation {replica_of.generation}",
        )
    return replica_of


def replica_sync_set(*, actor: User, destination: Database, state: str) -> ReplicaOf:
    """Move `replica_sync` along the transitions Redis Enterprise allows.

    1. disabled -> enabled needs sources; 2. enabled <-> paused keeps the position;
    3. -> stopped ends the job; 4. stopped -> enabled restarts from scratch (flush + full sync).
    """
    with transaction.atomic():
        replica_of = ReplicaOf.objects.select_for_update().filter(destination=destination).first()
        if replica_of is None:
            replica_of = ReplicaOf.objects.create(destination=destination)
        current = replica_of.replica_sync
        if state == current:
            return replica_of
        if state not in ReplicaOf.TRANSITIONS.get(current, set()):
            raise ApplicationError(
                f"replica_sync cannot move from {current} to {state}", field="replica_sync"
            )
        if (
            state == ReplicaSync.ENABLED
            and not ReplicaSource.objects.filter(destination=destination).exists()
        ):
            raise ApplicationError("add a source before enabling Replica Of", field="replica_sync")
        if current == ReplicaSync.STOPPED and state == ReplicaSync.ENABLED:
            replica_of.generation += 1
            replica_of.last_error = ""
        replica_of.replica_sync = state
        replica_of.save(update_fields=["replica_sync", "generation", "last_error", "updated"])
        audit_record(
            actor=actor,
            action=f"replica_sync.{state}",
            obj=destination,
            detail=f"{current} -> {state}",
        )
    return replica_of


def replica_sync_restart(*, actor: User, destination: Database) -> ReplicaOf:
    """Flush the destination and sync every source again from scratch."""
    with transaction.atomic():
        replica_of = ReplicaOf.objects.select_for_update().filter(destination=destination).first()
        if replica_of is None or not ReplicaSource.objects.filter(destination=destination).exists():
            raise ApplicationError("the database has no Replica Of sources", field="replica_sync")
        replica_of.generation += 1
        replica_of.last_error = ""
        replica_of.replica_sync = ReplicaSync.ENABLED
        replica_of.save(update_fields=["replica_sync", "generation", "last_error", "updated"])
        audit_record(
            actor=actor,
            action="replica_sync.restart",
            obj=destination,
            detail=f"generation {replica_of.generation}",
        )
    return replica_of
