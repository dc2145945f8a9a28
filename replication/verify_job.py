"""The verify job: one comparison of a destination with its sources (replication.syncer.verify),
run by the Celery task on queue `sync`.

1. Claim the queued run (a redelivered or duplicate task finds it taken and exits).
2. Build the URLs and TLS options from the rows, as the sync job does (`jobs.endpoints_of`).
3. Run the `Verifier` in a thread of its own; from this one, every half second, save the
   progress and ETA to the row and hand a cancel request on to it.
4. Save the result, or the error, or "cancelled", always (`finally`), audited by the service.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import threading
from typing import Any

from django.db import close_old_connections

from replication import services
from replication.jobs import endpoints_of, job_workdir, worker_shutting_down
from replication.models import VerifyRun, VerifyState
from replication.syncer.verify import (
    Verifier,
    VerifyCancelled,
    VerifyError,
    VerifyOptions,
    VerifyProgress,
)

log = logging.getLogger(__name__)

TICK_S = 0.5


def replica_verify_run(*, run_id: int) -> str:
    """Run the verify `run_id`; returns a one-line account of how it ended."""
    try:
        return _run(run_id)
    finally:
        close_old_connections()


def _run(run_id: int) -> str:
    if not services.replica_verify_claim(run_id=run_id):
        return "not queued (taken, cancelled or gone)"
    run = VerifyRun.objects.select_related("destination").get(pk=run_id)
    workdir = job_workdir(run.destination)
    outcome: dict[str, Any] = {"state": VerifyState.FAILED, "error": "the verify did not end"}
    try:
        found = endpoints_of(run.destination, workdir)
        latest: list[VerifyProgress] = []
        verifier = Verifier(
            [c.url for c in found.sources],
            found.destination.url,
            source_tls=[c.tls for c in found.sources],
            destination_tls=found.destination.tls,
            options=VerifyOptions(rate=run.rate, ttl_tolerance_ms=run.ttl_tolerance_ms),
            on_progress=latest.append,
        )

        def work() -> None:
            try:
                report = asyncio.run(verifier.run())
                outcome.update(state=VerifyState.DONE, result=report.as_dict(), error="")
            except VerifyCancelled:
                outcome.update(state=VerifyState.CANCELLED, error="")
            except VerifyError as exc:
                outcome.update(error=str(exc))
            except Exception as exc:  # the row must say it failed, whatever it was
                log.exception("verify %s failed", run_id)
                outcome.update(error=f"internal error: {type(exc).__name__}")

        thread = threading.Thread(target=work, name=f"verify-{run_id}", daemon=True)
        thread.start()
        last = VerifyProgress(0, 0, 0.0)
        while thread.is_alive():
            thread.join(TICK_S)
            if latest:
                last = latest[-1]
                latest.clear()
            cancel = services.replica_verify_progress(
                run_id=run_id, done=last.done, total=last.total, eta_s=last.eta_s
            )
            if cancel or worker_shutting_down.is_set():
                verifier.cancel()
    except Exception as exc:
        log.exception("verify %s could not start", run_id)
        outcome.update(error=f"could not start: {type(exc).__name__}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        services.replica_verify_finish(
            run_id=run_id,
            state=outcome["state"],
            result=outcome.get("result"),
            error=outcome.get("error", ""),
        )
    differences = (outcome.get("result") or {}).get("differences")
    return f"{outcome['state']}" + ("" if differences is None else f", {differences} differences")
