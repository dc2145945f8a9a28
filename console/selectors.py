"""Reads of the cluster domain, scoped by who asks. Views, APIs and consumers share these."""

from __future__ import annotations

from django.db.models import QuerySet
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


def cluster_get() -> Cluster | None:
    return Cluster.objects.first()


def certificate_list() -> QuerySet[Certificate]:
    return Certificate.objects.order_by("kind")


def audit_list(
    *, action: str = "", object_type: str = "", actor: str = ""
) -> QuerySet[AuditEntry]:
    qs = AuditEntry.objects.all()
    if action:
        qs = qs.filter(action__icontains=action)
    if object_type:
        qs = qs.filter(object_type=object_type)
    if actor:
        qs = qs.filter(actor_name=actor)
    return qs
