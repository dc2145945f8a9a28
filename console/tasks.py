"""Celery tasks of the cluster domain: thin shells around services, addressed by ids."""

from __future__ import annotations

from celery import shared_task

from console import services
from console.models import Node


@shared_task(name="console.tasks.database_provision_task")
def database_provision_task(database_id: int) -> None:
    services.database_provision(database_id=database_id)


@shared_task(name="console.tasks.database_apply_task")
def database_apply_task(database_id: int) -> None:
    services.database_apply(database_id=database_id)


@shared_task(name="console.tasks.database_remove_task")
def database_remove_task(database_id: int) -> None:
    services.database_remove(database_id=database_id)


@shared_task(name="console.tasks.node_reconcile_task")
def node_reconcile_task(node_name: str) -> list[str]:
    return services.node_reconcile(node_name=node_name)


@shared_task(name="console.tasks.cluster_reconcile_task", ignore_result=True)
def cluster_reconcile_task() -> None:
    """Beat's entry point: fan out to every node's own queue."""
    for node in Node.objects.all():
        node_reconcile_task.apply_async(args=(node.name,), queue=node.queue, expires=30)
