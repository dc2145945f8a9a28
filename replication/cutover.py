"""The guided migration ("Migrate with Replica Of", issue 14): the state machine of a `Cutover`,
the operator's actions on it, and the driver that runs its long steps (a Celery task on queue
`sync`).

The steps (`CutoverStep`), each audited as `replica_migrate.<step>` when it is reached:
1. preflight — the pre-flight of the sources into the destination (driver). Failures wait for the
   operator: fix and retry, or override (audited).
2. confirm_flush — waits for the operator: the flush of the destination is confirmed, then the
   sources are set (or, when none were given, the current ones synced again from scratch).
3. full_sync — the driver follows the sync job's saved status once a second: bytes, %, the
   destination's keys and an ETA.
4. sync_complete — every source in sync with a lag under the threshold; waits for the operator to
   cut over.
5. drain — writes paused on every source (`CLIENT PAUSE <ms> WRITE`, bounded by itself, so that a
   crashed console never leaves a source paused), the destination's checkpoint waited for until it
   holds every source's offset, `CLIENT UNPAUSE`; without a pause, only the wait.
6. verify — a verify run (replication.verify_job) compares every key; differences wait for the
   operator (verify again, or proceed: audited).
7. stop — the sources are removed, the data kept: the destination becomes writable.
8. done — the connection details to hand to applications.

Everything lives in the row: the page survives reloads, and a console restart loses only the
driver, whose lease (`Cutover.LEASE_S`) then expires; reconcile (beat) queues a new one, which
continues from the saved step. A step a driver repeats after a crash is harmless: pre-flight and
drain only read (a pause expires by itself), a verify run already started is waited for, and the
stop is a no-op once the sources are gone.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import secrets
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import hiredis
from celery import current_app
from django.db import close_old_connections, transaction
from django.db.models import Q
from django.utils import timezone

from console import provisioning
from console import selectors as console_selectors
from console.errors import ApplicationError
from console.models import Database, DatabaseStatus, User
from console.selectors import database_spec
from console.services import audit_record
from replication import control, selectors, services
from replication.jobs import endpoints_of, job_workdir, worker_shutting_down
from replication.models import (
    Cutover,
    CutoverState,
    CutoverStep,
    ReplicaSync,
    SourceStatus,
    VerifyState,
)
from replication.sources import SourceInput, source_input_of
from replication.syncer.checkpoint import BOOKKEEPING_PREFIX, CHECKPOINT_KEY, Checkpoint
from replication.syncer.engine import DestinationConfig, SourceConfig
from replication.syncer.errors import Side, SyncError
from replication.syncer.resp import RespConnection
from replication.syncer.source import discover_primaries
from replication.syncer.urls import RedisUrl

log = logging.getLogger(__name__)

DRIVE_TASK = "replication.tasks.cutover_drive_task"
TICK_S = 1.0
MAX_PAUSE_MS = 60_000
# Without a pause, how long the drain waits for the destination to reach the sources' offsets.
DRAIN_WAIT_S = 30.0
DRAIN_POLL_S = 0.01
PAUSE_MIN_VERSION = (6, 2)

# The moves of `step` (staying at a step is always allowed).
MOVES: dict[str, set[str]] = {
    CutoverStep.PREFLIGHT: {CutoverStep.CONFIRM_FLUSH},
    CutoverStep.CONFIRM_FLUSH: {CutoverStep.FULL_SYNC},
    CutoverStep.FULL_SYNC: {CutoverStep.SYNC_COMPLETE},
    CutoverStep.SYNC_COMPLETE: {CutoverStep.DRAIN},
    CutoverStep.DRAIN: {CutoverStep.VERIFY},
    CutoverStep.VERIFY: {CutoverStep.STOP},
    CutoverStep.STOP: {CutoverStep.DONE},
    CutoverStep.DONE: set(),
}
ACTIONS = ("retry", "override", "confirm_flush", "cutover", "proceed", "cancel")


# ---------------------------------------------------------------- the state machine


def _now_iso() -> str:
    return timezone.now().isoformat()


def _move(
    cutover: Cutover,
    *,
    step: str | None = None,
    state: str,
    error: str = "",
    actor: User | None = None,
    detail: str = "",
    fields: Sequence[str] = (),
    enqueue: bool = True,
) -> None:
    """The one place a cutover's step and state change.

    1. A new step must be the next one (`MOVES`); the times of the old step's end and the new
       one's start are kept. 2. Ending states set `finished`. 3. The change is saved with the
    `fields` the caller changed, and audited (`replica_migrate.<step>` when the step changes,
    else `replica_migrate.<state>`)."""
    old_step = cutover.step
    new_step = step or old_step
    if new_step != old_step and new_step not in MOVES[old_step]:
        raise ApplicationError(f"the migration cannot move from {old_step} to {new_step}")
    times = dict(cutover.times)
    if new_step != old_step:
        times.setdefault(old_step, {})["finished"] = _now_iso()
        times[new_step] = {"started": _now_iso()}
    if state in {CutoverState.DONE, CutoverState.FAILED, CutoverState.CANCELLED}:
        cutover.finished = timezone.now()
        times.setdefault(new_step, {}).setdefault("finished", _now_iso())
    cutover.step, cutover.state, cutover.error, cutover.times = new_step, state, error[:2000], times
    cutover.save(
        update_fields=[
            "step",
            "state",
            "error",
            "times",
            "finished",
            "updated",
            *fields,
        ]
    )
    action = f"replica_migrate.{new_step}" if new_step != old_step else f"replica_migrate.{state}"
    text = detail or error or f"{CutoverStep(new_step).label}: {CutoverState(state).label.lower()}"
    audit_record(actor=actor, action=action, obj=cutover.destination, detail=text[:2000])
    # An operator's move queues a driver; the driver's own moves go on in the same driver.
    if state == CutoverState.RUNNING and enqueue:
        transaction.on_commit(lambda: _enqueue(cutover.pk))


def _enqueue(cutover_id: int) -> None:
    """Queue a driver; the grace of one lease lets it start before reconcile queues another."""
    Cutover.objects.filter(pk=cutover_id).update(
        lease_token="", lease_until=timezone.now() + timedelta(seconds=Cutover.LEASE_S)
    )
    current_app.send_task(DRIVE_TASK, args=[cutover_id], queue="sync", expires=Cutover.LEASE_S * 3)


def _locked(destination: Database) -> Cutover:
    cutover = (
        Cutover.objects.select_for_update()
        .select_related("destination")
        .filter(destination=destination)
        .first()
    )
    if cutover is None or cutover.state not in Cutover.ACTIVE:
        raise ApplicationError("no migration of this database is in progress", field="action")
    return cutover


def _wanted(cutover: Cutover) -> list[SourceInput] | None:
    if not cutover.wanted_sources:
        return None
    return [SourceInput(**item) for item in json.loads(cutover.wanted_sources)]


def _sources_for(cutover: Cutover) -> list[SourceInput]:
    wanted = _wanted(cutover)
    if wanted is not None:
        return wanted
    return [source_input_of(s) for s in selectors.replica_sources_of(cutover.destination)]


# ---------------------------------------------------------------- the operator's side


def cutover_start(
    *,
    actor: User,
    destination: Database,
    sources: Sequence[SourceInput] | None,
    lag_threshold_ms: int,
    pause_ms: int,
) -> Cutover:
    """Begin a migration into `destination` from `sources` (None: its current sources). Checks
    the sources' shape and connections first (network: outside any transaction)."""
    if not 1 <= lag_threshold_ms <= 3_600_000:
        raise ApplicationError(
            "the lag threshold must be between 1 and 3600000 ms", field="lag_threshold_ms"
        )
    if not 0 <= pause_ms <= MAX_PAUSE_MS:
        raise ApplicationError(
            f"the pause must be between 0 and {MAX_PAUSE_MS} ms", field="pause_ms"
        )
    wanted = list(sources) if sources else None
    check = wanted or [source_input_of(s) for s in selectors.replica_sources_of(destination)]
    if not check:
        raise ApplicationError(
            "give the sources to migrate from (the database has none)", field="replica_sources"
        )
    services.replica_sources_check(destination=destination, sources=check)
    with transaction.atomic():
        Database.objects.select_for_update().filter(pk=destination.pk).first()
        if Cutover.objects.filter(destination=destination, state__in=Cutover.ACTIVE).exists():
            raise ApplicationError("a migration of this database is already in progress")
        cutover = Cutover.objects.create(
            destination=destination,
            actor=actor,
            actor_name=actor.username,
            lag_threshold_ms=lag_threshold_ms,
            pause_ms=pause_ms,
            wanted_sources=json.dumps([dataclasses.asdict(s) for s in wanted]) if wanted else "",
            times={CutoverStep.PREFLIGHT: {"started": _now_iso()}},
        )
        audit_record(
            actor=actor,
            action="replica_migrate.start",
            obj=destination,
            detail=f"migration {cutover.pk}: {len(check)} source(s); lag threshold "
            f"{lag_threshold_ms} ms; pause {pause_ms} ms",
        )
        cutover_id = cutover.pk
        transaction.on_commit(lambda: _enqueue(cutover_id))
    return cutover


def cutover_act(
    *, actor: User, destination: Database, action: str, pause_ms: int | None = None
) -> Cutover:
    """An operator's move of the migration in progress (`ACTIONS`):

    - retry: run the waiting step again (pre-flight, drain, verify);
    - override: go on although the pre-flight failed (audited with the failed lines);
    - confirm_flush: the destination may be flushed: set the sources (or sync again), full sync;
    - cutover: at "Synchronization complete": pause and drain, verify, stop (`pause_ms` may
      change the pause);
    - proceed: go on although the verify found differences (audited);
    - cancel: end the migration here; Replica Of stays as it is."""
    if action not in ACTIONS:
        raise ApplicationError(f"unknown action {action!r}", field="action")
    if pause_ms is not None and not 0 <= pause_ms <= MAX_PAUSE_MS:
        raise ApplicationError(
            f"the pause must be between 0 and {MAX_PAUSE_MS} ms", field="pause_ms"
        )
    with transaction.atomic():
        cutover = _locked(destination)
        step, waiting = cutover.step, cutover.state == CutoverState.WAITING
        if action == "cancel":
            _move(cutover, state=CutoverState.CANCELLED, actor=actor, detail="cancelled")
        elif action == "retry" and waiting and step in {"preflight", "drain", "verify"}:
            cutover.verify_run = None
            _move(
                cutover,
                state=CutoverState.RUNNING,
                actor=actor,
                detail=f"{step} again",
                fields=["verify_run"],
            )
        elif action == "override" and waiting and step == CutoverStep.PREFLIGHT:
            if not cutover.preflight.get("failed"):
                raise ApplicationError("the pre-flight did not fail", field="action")
            cutover.preflight_overridden = True
            _move(
                cutover,
                step=CutoverStep.CONFIRM_FLUSH,
                state=CutoverState.WAITING,
                actor=actor,
                detail="pre-flight overridden: " + _failed_lines(cutover.preflight),
                fields=["preflight_overridden"],
            )
        elif action == "confirm_flush" and waiting and step == CutoverStep.CONFIRM_FLUSH:
            _sources_apply(cutover, actor)
            _move(
                cutover,
                step=CutoverStep.FULL_SYNC,
                state=CutoverState.RUNNING,
                actor=actor,
                detail=f"flush of {destination.name} confirmed: full sync",
            )
        elif action == "cutover" and waiting and step == CutoverStep.SYNC_COMPLETE:
            if pause_ms is not None:
                cutover.pause_ms = pause_ms
            _move(
                cutover,
                step=CutoverStep.DRAIN,
                state=CutoverState.RUNNING,
                actor=actor,
                detail=f"cut over: pause {cutover.pause_ms} ms, drain, verify, stop",
                fields=["pause_ms"],
            )
        elif action == "proceed" and waiting and step == CutoverStep.VERIFY:
            run = cutover.verify_run
            cutover.verify_overridden = True
            _move(
                cutover,
                step=CutoverStep.STOP,
                state=CutoverState.RUNNING,
                actor=actor,
                detail="verify overridden: "
                + (cutover.error or (f"run {run.pk}: {run.state}" if run else "no verify result")),
                fields=["verify_overridden"],
            )
        else:
            raise ApplicationError(
                f"{action} is not possible now ({CutoverStep(step).label}, "
                f"{CutoverState(cutover.state).label.lower()})",
                field="action",
            )
    return cutover


def _failed_lines(report: dict[str, Any]) -> str:
    """The failed lines of a saved pre-flight, as the audit log says them."""
    return "; ".join(
        f"{c['subject']}: {c['name']}: {c['message']}"
        for c in report.get("checks", [])
        if c["level"] == "fail"
    )


def _sources_apply(cutover: Cutover, actor: User) -> None:
    """The flush is confirmed: the wanted sources are set (a new generation flushes and loads
    them), or the current ones synced again from scratch."""
    wanted = _wanted(cutover)
    destination = cutover.destination
    if wanted is not None:
        services.replica_sources_set(actor=actor, destination=destination, sources=wanted)
    else:
        services.replica_sync_restart(actor=actor, destination=destination)
    if cutover.preflight_overridden:
        audit_record(
            actor=actor,
            action="replica_sources.preflight_override",
            obj=destination,
            detail=_failed_lines(cutover.preflight),
        )


# ---------------------------------------------------------------- the driver


def cutover_drive(*, cutover_id: int) -> str:
    """Run the cutover's steps while it is `running`; returns how it ended (for the log)."""
    token = secrets.token_hex(8)
    try:
        if not _claim(cutover_id, token):
            return "not claimed (another driver has it, or it does not run)"
        while True:
            if worker_shutting_down.is_set():
                return "the worker is shutting down (reconcile queues another driver)"
            cutover = Cutover.objects.select_related("destination", "verify_run").get(pk=cutover_id)
            if cutover.state != CutoverState.RUNNING or cutover.lease_token != token:
                return f"{cutover.step}: {cutover.state}"
            if not _renew(cutover_id, token):
                return "lease lost"
            try:
                moved = STEPS[cutover.step](cutover)
            except ApplicationError as exc:
                moved = _wait(cutover, exc.message)
            if not moved:
                time.sleep(TICK_S)
    except Exception as exc:
        log.exception("migration %s failed", cutover_id)
        with transaction.atomic():
            row = Cutover.objects.select_for_update().filter(pk=cutover_id).first()
            if row is not None and row.state == CutoverState.RUNNING:
                _move(row, state=CutoverState.FAILED, error=f"internal error: {type(exc).__name__}")
        return f"failed: {type(exc).__name__}"
    finally:
        Cutover.objects.filter(pk=cutover_id, lease_token=token).update(
            lease_token="", lease_until=None
        )
        close_old_connections()


def _claim(cutover_id: int, token: str) -> bool:
    """A conditional UPDATE: one driver per cutover (a queued one, or one whose lease expired)."""
    now = timezone.now()
    return bool(
        Cutover.objects.filter(pk=cutover_id, state=CutoverState.RUNNING)
        .filter(Q(lease_token="") | Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .update(lease_token=token, lease_until=now + timedelta(seconds=Cutover.LEASE_S))
    )


def _renew(cutover_id: int, token: str) -> bool:
    until = timezone.now() + timedelta(seconds=Cutover.LEASE_S)
    return bool(Cutover.objects.filter(pk=cutover_id, lease_token=token).update(lease_until=until))


def _advance(cutover: Cutover, step: str, state: str, **kwargs: Any) -> bool:
    """The driver's move, if the row is still running (an operator may have cancelled)."""
    with transaction.atomic():
        row = Cutover.objects.select_for_update().select_related("destination").get(pk=cutover.pk)
        if row.state != CutoverState.RUNNING or row.step != cutover.step:
            return True
        for name in kwargs.get("fields", ()):
            setattr(row, name, getattr(cutover, name))
        _move(row, step=step, state=state, enqueue=False, **kwargs)
    return True


def _wait(cutover: Cutover, error: str, fields: Sequence[str] = ()) -> bool:
    """The step needs the operator (retry, override, cancel): say why."""
    return _advance(cutover, cutover.step, CutoverState.WAITING, error=error, fields=fields)


def _step_preflight(cutover: Cutover) -> bool:
    report = services.replica_preflight(
        destination=cutover.destination, sources=_sources_for(cutover)
    )
    cutover.preflight = report.as_dict()
    if report.failures:
        return _wait(
            cutover,
            f"pre-flight failed ({len(report.failures)} line(s)): fix and retry, or override",
            fields=["preflight"],
        )
    return _advance(
        cutover,
        CutoverStep.CONFIRM_FLUSH,
        CutoverState.WAITING,
        detail=f"pre-flight passed ({len(report.checks)} lines)",
        fields=["preflight"],
    )


def _step_full_sync(cutover: Cutover) -> bool:
    destination = cutover.destination
    replica_of = selectors.replica_of_state(destination)
    if replica_of is None or replica_of.replica_sync == ReplicaSync.STOPPED:
        error = replica_of.last_error if replica_of else "Replica Of is not configured"
        return _advance(
            cutover,
            cutover.step,
            CutoverState.FAILED,
            error=f"the sync stopped: {error or 'stopped by an operator'}",
        )
    sources = selectors.replica_sources_of(destination)
    started = cutover.times.get(CutoverStep.FULL_SYNC, {}).get("started")
    elapsed = (timezone.now() - datetime.fromisoformat(started)).total_seconds() if started else 0.0
    size = sum(s.rdb_size or 0 for s in sources)
    done = sum(s.rdb_transferred or 0 for s in sources)
    eta = None
    if size and 0 < done < size and elapsed > 0:
        eta = (size - done) / (done / elapsed)
    cutover.progress = {
        "sources": [
            {
                "uid": s.uid,
                "name": s.name,
                "status": s.status,
                "progress": s.progress,
                "rdb_size": s.rdb_size,
                "rdb_transferred": s.rdb_transferred,
                "lag": s.lag,
            }
            for s in sources
        ],
        "rdb_size": size,
        "rdb_transferred": done,
        "percent": round(100.0 * done / size, 1) if size else None,
        "keys": console_selectors.database_key_count(destination),
        "eta_s": round(eta, 1) if eta is not None else None,
        "elapsed_s": round(elapsed, 1),
    }
    Cutover.objects.filter(pk=cutover.pk).update(progress=cutover.progress)
    complete = replica_of.replica_sync == ReplicaSync.ENABLED and all(
        s.status == SourceStatus.IN_SYNC
        and s.lag is not None
        and s.lag_exact
        and s.lag < cutover.lag_threshold_ms
        for s in sources
    )
    if not (sources and complete):
        return False
    lags = ", ".join(f"{s.name} {s.lag} ms" for s in sources)
    return _advance(
        cutover,
        CutoverStep.SYNC_COMPLETE,
        CutoverState.WAITING,
        detail=f"Synchronization complete: every source in sync (lag {lags})",
    )


def _step_drain(cutover: Cutover) -> bool:
    workdir = job_workdir(cutover.destination)
    try:
        found = endpoints_of(cutover.destination, workdir)
        result = asyncio.run(drain(found.sources, found.destination, pause_ms=cutover.pause_ms))
    except DrainRefused as exc:
        cutover.drain = {"error": str(exc)}
        return _wait(cutover, str(exc), fields=["drain"])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    cutover.drain = result
    paused = (
        "without a pause" if not cutover.pause_ms else f"writes paused {result['paused_ms']} ms"
    )
    return _advance(
        cutover,
        CutoverStep.VERIFY,
        CutoverState.RUNNING,
        detail=f"drained ({paused}; caught up in {result['drained_ms']} ms)",
        fields=["drain"],
    )


def _step_verify(cutover: Cutover) -> bool:
    run = cutover.verify_run
    if run is None:
        if cutover.actor is None:
            raise ApplicationError("the user who started the migration no longer exists")
        run = services.replica_verify_start(
            actor=cutover.actor,
            destination=cutover.destination,
            rate=None,
            ttl_tolerance_ms=1000,
        )
        Cutover.objects.filter(pk=cutover.pk).update(verify_run=run)
        return False
    if run.state in (VerifyState.QUEUED, VerifyState.RUNNING):
        return False
    if run.state != VerifyState.DONE:
        return _wait(
            cutover, f"the verify did not end: {run.state}{': ' + run.error if run.error else ''}"
        )
    differences = int(run.result.get("differences", 0))
    if differences:
        return _wait(
            cutover,
            f"the verify found {differences} difference(s): verify again, or proceed anyway",
        )
    keys = run.result.get("keys_checked", 0)
    return _advance(
        cutover,
        CutoverStep.STOP,
        CutoverState.RUNNING,
        detail=f"verify run {run.pk}: equal ({keys} keys checked)",
    )


def _step_stop(cutover: Cutover) -> bool:
    """Remove the sources (the data stays), then wait until the node has rewritten the ACL of
    the running processes: only then do applications' writes pass, and only then is it done."""
    destination = cutover.destination
    if selectors.replica_sources_of(destination):
        if cutover.actor is None:
            raise ApplicationError("the user who started the migration no longer exists")
        services.replica_sources_set(actor=cutover.actor, destination=destination, sources=[])
        return False
    destination.refresh_from_db()
    if destination.status == DatabaseStatus.ERROR:
        return _advance(
            cutover,
            cutover.step,
            CutoverState.FAILED,
            error=f"making {destination.name} writable failed: {destination.status_reason}",
        )
    if destination.read_only or destination.status != DatabaseStatus.ACTIVE:
        return False
    if control.lock_held(destination.pk):
        return False  # the sync job is ending; its bookkeeping keys go once it has
    removed = bookkeeping_remove(destination)
    return _advance(
        cutover,
        CutoverStep.DONE,
        CutoverState.DONE,
        detail=f"Replica Of removed, data kept: {destination.name} is writable "
        f"({removed} bookkeeping key(s) of the syncer deleted)",
    )


def bookkeeping_remove(destination: Database) -> int:
    """Delete the syncer's checkpoint and epoch markers from a destination that is no longer a
    replica (the applications' keyspace holds only their data again); returns how many."""
    spec = database_spec(destination)
    pattern = BOOKKEEPING_PREFIX.decode() + "*"
    removed = 0
    for shard in spec.shards:
        client = provisioning.admin_client(spec, shard)
        try:
            keys = list(client.scan_iter(match=pattern, count=1000))
            if keys:
                removed += sum(int(client.delete(k)) for k in keys)
        finally:
            client.close()
    return removed


STEPS: dict[str, Callable[[Cutover], bool]] = {
    CutoverStep.PREFLIGHT: _step_preflight,
    CutoverStep.FULL_SYNC: _step_full_sync,
    CutoverStep.DRAIN: _step_drain,
    CutoverStep.VERIFY: _step_verify,
    CutoverStep.STOP: _step_stop,
}


def cutovers_reconcile() -> list[int]:
    """Beat: queue a driver for every running cutover whose lease expired (its worker was lost
    or restarted). Returns their ids."""
    now = timezone.now()
    lost = list(
        Cutover.objects.filter(state=CutoverState.RUNNING)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .values_list("pk", flat=True)
    )
    for cutover_id in lost:
        _enqueue(cutover_id)
    return lost


# ---------------------------------------------------------------- the drain (asyncio)


class DrainRefused(Exception):
    """The drain cannot be done as asked (old server, no permission, no catch-up): the operator
    decides (retry, a pause of 0, cancel). The message never holds a secret."""


@dataclass(slots=True)
class _Primary:
    url: RedisUrl
    conn: RespConnection
    replid: str = ""
    offset: int = 0
    paused: bool = False


def server_version(info: dict[str, str]) -> tuple[int, int, int]:
    """The Redis version a server is compatible with (Valkey reports one too)."""
    raw = info.get("redis_version", "0.0.0")
    parts = [int(p) if p.isdigit() else 0 for p in raw.split(".")[:3]]
    major, minor, patch = [*parts, 0, 0, 0][:3]
    return major, minor, patch


def pause_refusal(address: str, info: dict[str, str]) -> str | None:
    """Why `CLIENT PAUSE … WRITE` cannot be used on this server (None: it can)."""
    version = server_version(info)
    if version[:2] >= PAUSE_MIN_VERSION:
        return None
    shown = info.get("redis_version", "unknown")
    return (
        f"{address} runs Redis {shown}: pausing writes (CLIENT PAUSE … WRITE) needs Redis 6.2 "
        "or later; stop the applications' writes yourself and cut over with a pause of 0 ms"
    )


def _info(raw: Any) -> dict[str, str]:
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
    out: dict[str, str] = {}
    for line in text.splitlines():
        if ":" in line and not line.startswith("#"):
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


async def _checkpoints(dest: list[RespConnection]) -> dict[str, Checkpoint]:
    """The destination's checkpoints by replication id (the shard that holds the key answers;
    the others answer MOVED)."""
    found: dict[str, Checkpoint] = {}
    for conn in dest:
        reply = await conn.call_raw(b"HGETALL", CHECKPOINT_KEY)
        if isinstance(reply, hiredis.ReplyError) or not reply:
            continue
        pairs = (
            reply.items() if isinstance(reply, dict) else zip(reply[::2], reply[1::2], strict=True)
        )
        for _, raw in pairs:
            ckpt = Checkpoint.decode(raw)
            if ckpt is not None:
                found[ckpt.replid] = ckpt
    return found


async def _offsets(primaries: Sequence[_Primary]) -> bool:
    """Read every primary's replication id and offset; True when one moved since last read."""
    moved = False
    for p in primaries:
        info = _info(await p.conn.call(b"INFO", b"replication"))
        replid, offset = info.get("master_replid", ""), int(info.get("master_repl_offset", 0))
        moved = moved or (p.replid, p.offset) != (replid, offset)
        p.replid, p.offset = replid, offset
    return moved


async def drain(
    sources: Sequence[SourceConfig], destination: DestinationConfig, *, pause_ms: int
) -> dict[str, Any]:
    """Pause writes on every primary of every source for `pause_ms` (0: no pause), take their
    replication offsets, wait until the destination's checkpoints hold them, unpause.

    1. Every primary is connected and, with a pause, checked for Redis >= 6.2 before any is
       paused (a refusal leaves nothing paused).
    2. `CLIENT PAUSE <pause_ms> WRITE`: the server ends it by itself after `pause_ms`, whatever
       happens to us; `CLIENT UNPAUSE` in `finally` ends it as soon as the drain is done.
    3. The offsets are read after the pause, so they are final while it lasts; the wait is
       bounded by the pause (or `DRAIN_WAIT_S` without one)."""
    primaries: list[_Primary] = []
    dest: list[RespConnection] = []
    result: dict[str, Any] = {"sources": []}
    try:
        for i, src in enumerate(sources):
            url = src.url if isinstance(src.url, RedisUrl) else None
            assert url is not None, "the console passes parsed URLs"
            if src.tls is not None:
                url = dataclasses.replace(url, tls=True)
            for shard in await discover_primaries(url, src.tls, source=i):
                conn = await RespConnection.open(shard, src.tls, select_db=False, side=Side.SOURCE)
                primaries.append(_Primary(shard, conn))
        dest_url = destination.url if isinstance(destination.url, RedisUrl) else None
        assert dest_url is not None, "the console passes parsed URLs"
        for shard in await discover_primaries(dest_url, destination.tls):
            dest.append(
                await RespConnection.open(
                    shard, destination.tls, select_db=False, side=Side.DESTINATION
                )
            )
        if pause_ms:
            for p in primaries:
                refusal = pause_refusal(p.url.address, _info(await p.conn.call(b"INFO", b"server")))
                if refusal:
                    raise DrainRefused(refusal)
        started = time.time()
        if pause_ms:
            for p in primaries:
                reply = await p.conn.call_raw(b"CLIENT", b"PAUSE", pause_ms, b"WRITE")
                if isinstance(reply, hiredis.ReplyError):
                    raise DrainRefused(
                        f"{p.url.address} refused CLIENT PAUSE ({str(reply).split(' ')[0]}): "
                        "its user needs +client|pause and +client|unpause, or cut over with a "
                        "pause of 0 ms"
                    )
                p.paused = True
        # Every source answered its PAUSE: a write sent from now on waits for the UNPAUSE.
        result["paused_at"] = started
        result["pause_effective_at"] = time.time()
        await _offsets(primaries)
        limit = (pause_ms / 1000.0) if pause_ms else DRAIN_WAIT_S
        deadline = time.monotonic() + limit
        while True:
            ckpts = await _checkpoints(dest)
            behind = [
                p for p in primaries if p.replid not in ckpts or ckpts[p.replid].offset < p.offset
            ]
            # Reached: with a pause, the offsets are read once more to be sure that it held (a
            # source whose offset moved, e.g. a write from a client the pause exempts, is
            # waited for again).
            if not behind and (not pause_ms or not await _offsets(primaries)):
                break
            if time.monotonic() > deadline:
                names = ", ".join(p.url.address for p in behind) or "the sources"
                raise DrainRefused(
                    f"the destination did not reach the offsets of {names} within "
                    f"{limit * 1000:.0f} ms: raise the pause, or retry when the lag is lower"
                )
            if behind:
                await asyncio.sleep(DRAIN_POLL_S)
        result["drained_ms"] = round((time.time() - started) * 1000, 1)
        result["sources"] = [
            {"address": p.url.address, "replid": p.replid, "offset": p.offset} for p in primaries
        ]
    except SyncError as exc:
        raise DrainRefused(f"drain: {exc}") from None
    finally:
        result["unpause_sent_at"] = time.time()
        for p in primaries:
            if p.paused:
                try:
                    await p.conn.call_raw(b"CLIENT", b"UNPAUSE")
                except (SyncError, OSError):
                    log.warning(
                        "%s: CLIENT UNPAUSE failed; the pause expires by itself", p.url.address
                    )
        result["unpaused_at"] = time.time()
        if "paused_at" in result:
            result["paused_ms"] = (
                round((result["unpaused_at"] - result["paused_at"]) * 1000, 1) if pause_ms else 0
            )
        for c in [p.conn for p in primaries] + dest:
            c.close()
    return result
