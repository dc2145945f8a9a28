"""Celery tasks of Replica Of: thin shells around jobs and services, addressed by ids."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from celery.signals import worker_shutting_down

from replication import cutover, jobs, services, verify_job

log = logging.getLogger(__name__)


# Acknowledged when received (not late): a job runs for days; if its worker dies, reconcile
# re-queues it once its lock expires, instead of the broker redelivering it an hour later.
@shared_task(name="replication.tasks.sync_job_task", acks_late=False, ignore_result=True)
def sync_job_task(destination_id: int, generation: int) -> None:
    outcome = jobs.sync_job_run(destination_id=destination_id, generation=generation)
    log.info("sync job %s/%s ended: %s", destination_id, generation, outcome)


@shared_task(name="replication.tasks.replica_verify_task", acks_late=False, ignore_result=True)
def replica_verify_task(run_id: int) -> None:
    outcome = verify_job.replica_verify_run(run_id=run_id)
    log.info("verify %s ended: %s", run_id, outcome)


# The driver of a migration (replication.cutover): runs while its step does (a full sync may take
# hours); if its worker is lost, reconcile queues another once its lease expires.
@shared_task(name="replication.tasks.cutover_drive_task", acks_late=False, ignore_result=True)
def cutover_drive_task(cutover_id: int) -> None:
    outcome = cutover.cutover_drive(cutover_id=cutover_id)
    log.info("migration %s: %s", cutover_id, outcome)


@shared_task(name="replication.tasks.sync_reconcile_task", ignore_result=True)
def sync_reconcile_task() -> None:
    requeued = services.sync_jobs_reconcile()
    if requeued:
        log.info("re-queued the sync jobs of databases %s", requeued)
    drivers = cutover.cutovers_reconcile()
    if drivers:
        log.info("queued drivers of the migrations %s", drivers)


# Delivery of an alert's raise or clear (replication.services): e-mail once, the webhook retried
# with exponential backoff (1, 2, 4… s, at most a minute apart, 8 tries), both off the sync path.
@shared_task(name="replication.tasks.alert_email_task", ignore_result=True)
def alert_email_task(payload: dict[str, Any]) -> None:
    sent = services.alert_email_send(payload=payload)
    log.info(
        "alert %s %s of %s: %s e-mail(s)", payload["alert"], payload["state"], payload["bdb"], sent
    )


@shared_task(
    name="replication.tasks.alert_webhook_task",
    ignore_result=True,
    autoretry_for=(services.WebhookError,),
    retry_backoff=1,
    retry_backoff_max=60,
    retry_jitter=False,
    max_retries=8,
)
def alert_webhook_task(payload: dict[str, Any]) -> None:
    if services.alert_webhook_post(payload=payload):
        log.info(
            "alert %s %s of %s: webhook took it", payload["alert"], payload["state"], payload["bdb"]
        )


@worker_shutting_down.connect
def _end_jobs(**kwargs: Any) -> None:
    """A warm shutdown waits for running tasks, and a sync job runs until stopped: end them."""
    jobs.worker_shutting_down.set()
