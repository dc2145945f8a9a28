"""The replication graph: who copies from whom, and what would close a cycle.

Pure reads over the ORM; `replication.services` uses them to validate before it writes.
"""

from __future__ import annotations

from console.models import Database
from replication.endpoints import database_at
from replication.models import ReplicaSource
from replication.syncer.urls import UrlError, parse_redis_url


def replication_edges() -> dict[int, set[int]]:
    """destination uid -> uids of this cluster's databases it copies from (external URLs too)."""
    edges: dict[int, set[int]] = {}
    for src in ReplicaSource.objects.select_related("source_database"):
        upstream: int | None = src.source_database_id
        if upstream is None and src.external_uri:
            try:
                target = database_at(parse_redis_url(src.external_uri))
            except UrlError:
                target = None
            upstream = target.pk if target else None
        if upstream is not None:
            edges.setdefault(src.destination_id, set()).add(upstream)
    return edges


def cycle_reason(destination: Database, upstream_uids: set[int]) -> str | None:
    """Why making `destination` copy from `upstream_uids` would replicate it into itself."""
    if destination.pk in upstream_uids:
        return "a database cannot be a source of itself"
    edges = replication_edges()
    edges[destination.pk] = set(upstream_uids)
    for uid in upstream_uids:
        # Walk up from the new source; reaching the destination means a loop.
        seen: set[int] = set()
        stack = [uid]
        while stack:
            cur = stack.pop()
            if cur == destination.pk:
                name = Database.objects.filter(pk=uid).values_list("name", flat=True).first()
                return (
                    f"{name} already replicates from {destination.name} (directly or through "
                    "a chain): this would make a cycle"
                )
            if cur in seen:
                continue
            seen.add(cur)
            stack.extend(edges.get(cur, set()))
    return None


def cycle_candidates(destination: Database) -> dict[int, str]:
    """For the 'Current cluster' picker: databases that cannot be added, with the reason."""
    current = {
        s.source_database_id
        for s in ReplicaSource.objects.filter(destination=destination)
        if s.source_database_id
    }
    refused: dict[int, str] = {}
    for db in Database.objects.exclude(pk__in=current):
        reason = cycle_reason(destination, {*current, db.pk})
        if reason:
            refused[db.pk] = reason
    return refused
