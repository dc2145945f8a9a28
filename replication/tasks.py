"""Celery tasks of Replica Of: thin shells around jobs and services, addressed by ids."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from celery.signals import worker_shutting_down

from replication import jobs, services, verify_job

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


@shared_task(name="replication.tasks.sync_reconcile_task", ignore_result=True)
def sync_reconcile_task() -> None:
    requeued = services.sync_jobs_reconcile()
    if requeued:
        log.info("re-queued the sync jobs of databases %s", requeued)


@worker_shutting_down.connect
def _end_jobs(**kwargs: Any) -> None:
    """A warm shutdown waits for running tasks, and a sync job runs until stopped: end them."""
    jobs.worker_shutting_down.set()
