"""Reads of the cluster domain, scoped by who asks. Views, APIs and consumers share these."""

from __future__ import annotations

from django.db.models import Count, QuerySet, Sum
from django.http import Http404

from console.models import AuditEntry, Certificate, Cluster, Database, Node, User


def database_list(*, user: User) -> QuerySet[Database]:
    # Every signed-in role may read every database; secrets are filtered by the serializers.
    del user
    return Database.objects.select_related("node").prefetch_related("shards")


def database_get_for_user(*, user: User, uid: int | str) -> Database:
    try:
        return database_list(user=user).get(pk=int(uid))
    except (Database.DoesNotExist, ValueError, TypeError):
        raise Http404("no such database") from None


def node_list() -> QuerySet[Node]:
    return Node.objects.all()


def node_list_with_usage() -> QuerySet[Node]:
    """Nodes with `databases_count` and `memory_allocated` (sum of their databases' limits)."""
    return (
        node_list()
        .annotate(
            databases_count=Count("databases"), memory_allocated=Sum("databases__memory_size")
        )
        .order_by("name")
    )


def cluster_get() -> Cluster | None:
    return Cluster.objects.first()


def certificate_list() -> QuerySet[Certificate]:
    return Certificate.objects.order_by("kind")


def audit_object_types() -> list[str]:
    """The object types that occur in the audit log, for its filter."""
    return sorted(AuditEntry.objects.order_by().values_list("object_type", flat=True).distinct())


def audit_list(*, action: str = "", object_type: str = "", actor: str = "") -> QuerySet[AuditEntry]:
    qs = AuditEntry.objects.all()
    if action:
        qs = qs.filter(action__icontains=action)
    if object_type:
        qs = qs.filter(object_type=object_type)
    if actor:
        qs = qs.filter(actor_name=actor)
    return qs
