"""The sync job: one per destination, running the syncer for all of its sources (DESIGN §4).

`sync_job_run(destination_id, generation)` is what the Celery task on queue `sync` calls:

1. Exit at once when the destination is not `enabled` or the generation is stale.
2. Claim the destination with the lock in the control Redis (waiting up to the lock's TTL for a
   job that is just ending); a duplicate or redelivered task exits here.
3. Build the engine from the rows (the task only got ids; secrets are read here, decrypted, and
   written only to private temporary files for TLS material). The engine's `job_tag` is
   `<uid>:<generation>`: a new generation flushes the destination and loads everything, a re-queued
   job of the same generation resumes every source by partial sync (or, if one cannot, flushes and
   loads all: the engine's automatic full sync).
4. Run the engine in a thread and supervise it from this one, every 250 ms: push a changed status to
   the Channels group `database-<uid>`, poll the wanted state (stop/pause/restart/reload arrive
   here); every second: save the source rows, append the lag and throughput sample. The lock is
   renewed every second by a thread of its own (the heartbeat, `_Heartbeat`): a SQL database
   that makes the saves wait must not let it expire.
5. A fatal error stops Replica Of (`replica_sync = stopped`) with the error in plain words.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import queue
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
from django.conf import settings
from django.db import DatabaseError, close_old_connections
from django.db.models import Max

from console.models import Certificate, Database, TlsMode
from console.tls import TlsMaterial, own_database_client_material, source_client_material
from replication import control, endpoints, selectors
from replication import services as replica_services
from replication.alerts import AlertTracker
from replication.live import LiveSource, LiveStatus, live_message, source_status, status_push
from replication.models import ReplicaOf, ReplicaSource, ReplicaSync
from replication.services import EventInput
from replication.sources import gateway_options
from replication.syncer.engine import DestinationConfig, SourceConfig, SyncEngine
from replication.syncer.errors import AuthError, Side, SyncError
from replication.syncer.events import SyncEvent
from replication.syncer.gateway import GatewayOptions
from replication.syncer.status import Phase, SourceStatus
from replication.syncer.urls import parse_redis_url

log = logging.getLogger(__name__)

TICK_S = 0.25
SAVE_EVERY_S = 1.0

# Set when the worker shuts down: jobs end at once (their position is saved in the destination)
# and reconcile starts them again on a worker that runs.
worker_shutting_down = threading.Event()


@dataclass(slots=True)
class _Source:
    uid: int
    name: str
    source_database_id: int | None
    retries: int = 0
    last_phase: str = ""
    last_commands: int = 0
    last_ingress: int = 0
    last_inflated: int = 0


@dataclass(slots=True)
class _Plan:
    destination: Database
    generation: int
    engine: SyncEngine
    sources: list[_Source]
    workdir: Path
    destination_password: str = field(repr=False, default="")
    # The engine's events (flushes, full syncs, reconnects…), handed over from its thread.
    events: queue.SimpleQueue[SyncEvent] = field(default_factory=queue.SimpleQueue)
    # The TLS files of the job (how to build each one's material, its file prefix): written
    # again when a cluster certificate is replaced, so new connections present the new one.
    tls_files: list[tuple[Callable[[], TlsMaterial], str]] = field(default_factory=list)
    certificates_stamp: object = None

    def tls_refresh(self) -> None:
        """Write the TLS files again if a cluster certificate changed since they were written."""
        stamp = certificates_stamp()
        if stamp == self.certificates_stamp:
            return
        self.certificates_stamp = stamp
        for material, prefix in self.tls_files:
            material().options(self.workdir, prefix)


def certificates_stamp() -> object:
    """Changes whenever a cluster certificate is replaced."""
    return Certificate.objects.aggregate(latest=Max("updated"))["latest"]


@dataclass(frozen=True, slots=True)
class Endpoints:
    """What the syncer (or a verify) connects to for a destination: each source's config, in
    the order of its rows, and the destination's."""

    sources: list[SourceConfig]
    rows: list[_Source]
    destination: DestinationConfig
    # How to write each TLS file again (its material, its file prefix), see `_Plan.tls_refresh`.
    tls_files: list[tuple[Callable[[], TlsMaterial], str]]


def endpoints_of(destination: Database, workdir: Path) -> Endpoints:
    """The URLs and TLS options of a destination and its sources, from the rows (secrets
    decrypted here; TLS material only in private files under `workdir`)."""
    sources: list[_Source] = []
    configs: list[SourceConfig] = []
    tls_files: list[tuple[Callable[[], TlsMaterial], str]] = []
    for src in selectors.replica_sources_of(destination):
        internal = src.source_database is not None
        if src.source_database is not None:
            url = endpoints.internal_source(src.source_database)
        else:
            url = parse_redis_url(src.external_uri)
        tls = None
        if src.encryption:
            url = dataclasses.replace(url, tls=True)
            material = functools.partial(
                source_client_material,
                server_cert=src.server_cert,
                internal=internal,
                sni=src.replication_tls_sni,
            )
            tls = material().options(workdir, f"source-{src.uid}")
            tls_files.append((material, f"source-{src.uid}"))
        configs.append(SourceConfig(url, tls, name=f"source-{src.uid}", gateway=_gateway(src)))
        sources.append(_Source(src.uid, src.name, src.source_database_id))
    dest_tls = None
    if destination.tls_mode != TlsMode.DISABLED:
        dest_tls = own_database_client_material().options(workdir, "destination")
        tls_files.append((own_database_client_material, "destination"))
    return Endpoints(
        configs,
        sources,
        DestinationConfig(endpoints.internal_source(destination), dest_tls),
        tls_files,
    )


def job_workdir(destination: Database) -> Path:
    """A private directory for one job's TLS material (the caller removes it)."""
    return Path(tempfile.mkdtemp(prefix=f"job-{destination.pk}-", dir=_jobs_dir()))


def _plan(replica_of: ReplicaOf) -> _Plan:
    """The engine for this destination, from its rows (see `endpoints_of`)."""
    destination = replica_of.destination
    workdir = job_workdir(destination)
    stamp = certificates_stamp()
    found = endpoints_of(destination, workdir)
    configs, sources = found.sources, found.rows
    events: queue.SimpleQueue[SyncEvent] = queue.SimpleQueue()
    engine = SyncEngine(
        configs,
        found.destination,
        auto_full_sync=True,
        job_tag=f"{destination.pk}:{replica_of.generation}",
        on_event=events.put,
        work_dir=str(workdir),  # the stream a dual-channel full sync buffers spills here
    )
    return _Plan(
        destination,
        replica_of.generation,
        engine,
        sources,
        workdir,
        destination.internal_password,
        events,
        found.tls_files,
        stamp,
    )


def _names_source(source: _Source, message: str) -> bool:
    """An external source's name is its host:port, which the message says already; a database
    of this cluster is named unless the message begins with its name."""
    if source.source_database_id is None:
        return source.name in message
    return message.startswith(f"{source.name}:")


def _gateway(src: ReplicaSource) -> GatewayOptions | None:
    return gateway_options(
        compression=src.compression,
        gateway_port=src.gateway_port,
        internal=src.source_database_id is not None,
    )


def _jobs_dir() -> Path:
    d = Path(settings.VAR_DIR) / "run" / "jobs"
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    return d


def _wanted(uid: int, generation: int) -> ReplicaOf | None:
    replica_of = (
        ReplicaOf.objects.select_related("destination__node").filter(destination_id=uid).first()
    )
    if replica_of is None or replica_of.generation != generation:
        return None
    if replica_of.replica_sync != ReplicaSync.ENABLED:
        return None
    return replica_of


def sync_job_run(*, destination_id: int, generation: int) -> str:
    """Run the job of (destination, generation) until it is stopped, stale or fails.

    Returns a one-line account of why it ended (the Celery task logs it)."""
    try:
        return _run(destination_id, generation)
    finally:
        close_old_connections()


def _run(uid: int, generation: int) -> str:
    if _wanted(uid, generation) is None:
        return "not wanted (stale generation or not enabled)"
    token = uuid.uuid4().hex
    deadline = time.monotonic() + control.LOCK_TTL_MS / 1000 + 2
    while not control.lock_acquire(uid, token):
        desired = control.desired_read(uid)
        if desired is not None and (desired.generation != generation or desired.state != "enabled"):
            return "superseded while waiting for the lock"
        if time.monotonic() > deadline:
            return "another job holds the destination"
        time.sleep(0.2)
    control.queued_clear(uid)
    try:
        replica_of = _wanted(uid, generation)  # read again under the lock
        if replica_of is None:
            return "not wanted (stale generation or not enabled)"
        plan = _plan(replica_of)
        try:
            return _Supervisor(plan, token).run()
        finally:
            shutil.rmtree(plan.workdir, ignore_errors=True)
    finally:
        control.lock_release(uid, token)


class _Heartbeat:
    """Renews the job's lock every second from a thread of its own, so that a slow or
    unavailable SQL database (the supervisor's saves wait on it, up to SQLite's 30 s busy
    timeout) never lets the lock expire under a job that runs fine: reconcile would start a
    second job meanwhile. `lost` says why the job must end (its lock is gone, or the control
    Redis could not be reached for most of the lock's lifetime)."""

    def __init__(self, uid: int, token: str) -> None:
        self.uid, self.token = uid, token
        self.lost = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{uid}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        renewed = time.monotonic()
        while not self._stop.wait(SAVE_EVERY_S):
            try:
                if not control.lock_renew(self.uid, self.token):
                    self.lost = "lost the destination's lock"
                    return
                renewed = time.monotonic()
            except redis.RedisError as exc:
                log.warning("sync job %s heartbeat: %s", self.uid, type(exc).__name__)
                if time.monotonic() - renewed > control.LOCK_TTL_MS / 1000 * 0.7:
                    self.lost = "lost contact with the control Redis"
                    return


class _Supervisor:
    def __init__(self, plan: _Plan, token: str) -> None:
        self.plan = plan
        self.uid = plan.destination.pk
        self.token = token
        self.error: BaseException | None = None
        self.thread = threading.Thread(
            target=self._engine_main, name=f"syncer-{self.uid}", daemon=True
        )
        desired = control.desired_read(self.uid)
        self.revision = desired.revision if desired else 0
        self.last_push: dict[str, Any] | None = None
        # Read once: pushes go out four times a second and this rarely changes meanwhile.
        self.destinations = selectors.destinations_count(plan.destination)
        self.reason = ""
        self.job_events: list[EventInput] = []
        # Alerts go on from the states the last job left (replication.alerts).
        self.alerts = AlertTracker(raised=selectors.alerts_raised(self.uid))

    def _engine_main(self) -> None:
        try:
            asyncio.run(self.plan.engine.run())
        except BaseException as exc:  # reported by the supervisor
            self.error = exc

    def run(self) -> str:
        self._record("job_started", f"sync job of generation {self.plan.generation} started")
        heartbeat = _Heartbeat(self.uid, self.token)
        heartbeat.start()
        self.thread.start()
        try:
            self._supervise(heartbeat)
        finally:
            heartbeat.stop()
            if self.thread.is_alive():  # the supervisor itself failed: never leave a syncer behind
                self.plan.engine.stop()
                self.thread.join(60)
        statuses = self.plan.engine.statuses()
        self._track(statuses)
        if self.error is not None and not self.reason:
            return self._failed(self.error, statuses)
        self._record("job_ended", f"sync job ended: {self.reason or 'the engine ended'}")
        self._save(statuses)
        self._push(statuses, final=True)
        if self.reason == "disabled":
            replica_services.checkpoint_remove(destination=self.plan.destination)
        return self.reason or "the engine ended"

    def _supervise(self, heartbeat: _Heartbeat) -> None:
        next_save = 0.0
        while self.thread.is_alive():
            self.thread.join(TICK_S)
            now = time.monotonic()
            if heartbeat.lost:
                self._stop(heartbeat.lost)
            try:
                statuses = self.plan.engine.statuses()
                self._track(statuses)
                self._push(statuses)
                if now >= next_save:
                    next_save = now + SAVE_EVERY_S
                    self._save(statuses)
                    self.plan.tls_refresh()
                if worker_shutting_down.is_set():
                    self._stop("the worker is shutting down")
                if not self.reason:
                    self._check_wanted()
            except (redis.RedisError, DatabaseError) as exc:
                # The control Redis or the SQL database is unreachable for now: carry on (the
                # heartbeat says when the lock cannot be kept).
                log.warning("sync job %s: %s", self.uid, type(exc).__name__)
                close_old_connections()

    def _stop(self, reason: str) -> None:
        if not self.reason:
            self.reason = reason
            self.plan.engine.stop()

    def _check_wanted(self) -> None:
        desired = control.desired_read(self.uid)
        if desired is None:
            return
        if desired.generation != self.plan.generation:
            self._stop("superseded by a newer generation")
        elif desired.state != "enabled":
            self._stop(desired.state)
        elif desired.revision != self.revision:
            self._stop("reloaded")

    # -- statuses ---------------------------------------------------------------------------

    def _track(self, statuses: list[SourceStatus]) -> None:
        for src, st in zip(self.plan.sources, statuses, strict=True):
            phase = str(st.phase)
            if phase == Phase.OUT_OF_SYNC and src.last_phase != Phase.OUT_OF_SYNC:
                src.retries += 1
            elif phase == Phase.IN_SYNC:
                src.retries = 0
            src.last_phase = phase

    def _live(self, statuses: list[SourceStatus]) -> list[LiveSource]:
        live = []
        for src, st in zip(self.plan.sources, statuses, strict=True):
            last_update = st.last_update
            live.append(
                LiveSource(
                    uid=src.uid,
                    name=src.name,
                    source_database_id=src.source_database_id,
                    status=source_status(st.phase, src.retries),
                    progress=st.progress,
                    lag=int(st.lag_ms) if st.lag_ms is not None else None,
                    lag_exact=st.lag_exact,
                    last_update=(
                        datetime.fromtimestamp(last_update, tz=UTC)
                        if last_update is not None
                        else None
                    ),
                    last_error=st.last_error or "",
                    last_error_kind=str(st.last_error_kind or ""),
                    rdb_size=st.rdb_size,
                    rdb_transferred=sum(ln.rdb_transferred for ln in st.links),
                    keys_loaded=sum(ln.keys_loaded for ln in st.links),
                    commands_applied=sum(ln.commands_applied for ln in st.links),
                    ingress_bytes=sum(ln.ingress_bytes for ln in st.links),
                    ingress_bytes_decompressed=sum(
                        ln.ingress_bytes_decompressed for ln in st.links
                    ),
                    retries=src.retries,
                )
            )
        return live

    def _push(self, statuses: list[SourceStatus], *, final: bool = False) -> None:
        if final:
            # The last word comes from the saved rows: the state may be stopped or paused now.
            destination = selectors.with_replica_of(Database.objects.filter(pk=self.uid)).first()
            if destination is not None:
                status_push(self.uid, selectors.database_live_status(destination))
            return
        payload = live_message(
            LiveStatus(
                database=self.uid,
                name=self.plan.destination.name,
                replica_sync=ReplicaSync.ENABLED,
                last_error="",
                last_error_kind="",
                destinations=self.destinations,
                sources=self._live(statuses),
            )
        )
        comparable = {k: v for k, v in payload.items() if k != "time"}
        if comparable != self.last_push:
            self.last_push = comparable
            status_push(self.uid, payload)

    def _record(self, kind: str, message: str) -> None:
        """An event of the job itself (its start and end), beside the engine's."""
        self.job_events.append(EventInput(time.time(), kind, None, message))

    def _record_events(self) -> None:
        events, self.job_events = self.job_events, []
        while True:
            try:
                e = self.plan.events.get_nowait()
            except queue.Empty:
                break
            uid = self.plan.sources[e.source].uid if e.source is not None else None
            events.append(EventInput(e.time, str(e.kind), uid, e.message))
        replica_services.replica_events_record(destination_id=self.uid, events=events)

    def _save(self, statuses: list[SourceStatus]) -> None:
        self._record_events()
        live = self._live(statuses)
        replica_services.replica_sources_live_save(
            destination_id=self.uid, generation=self.plan.generation, sources=live
        )
        now = round(time.time(), 3)
        samples: dict[int, dict[str, Any]] = {}
        for src, s in zip(self.plan.sources, live, strict=True):
            samples[src.uid] = {
                "t": now,
                "lag": s.lag,
                "commands": max(0, s.commands_applied - src.last_commands),
                "ingress_bytes": max(0, s.ingress_bytes - src.last_ingress),
                "ingress_bytes_decompressed": max(
                    0, s.ingress_bytes_decompressed - src.last_inflated
                ),
                "status": s.status,
            }
            src.last_commands, src.last_ingress = s.commands_applied, s.ingress_bytes
            src.last_inflated = s.ingress_bytes_decompressed
        with contextlib.suppress(Exception):
            control.stats_append(self.uid, samples, generation=self.plan.generation)
        self._alerts(live)

    def _alerts(self, live: list[LiveSource]) -> None:
        """One sample of every source for the alerts; a failure here never stops the sync."""
        try:
            thresholds = selectors.alert_thresholds(self.uid)
            changes = [
                change
                for s in live
                for change in self.alerts.sample(
                    source_uid=s.uid, status=s.status, lag=s.lag, thresholds=thresholds
                )
            ]
            replica_services.alert_changes_save(destination_id=self.uid, changes=changes)
        except (DatabaseError, redis.RedisError, OSError) as exc:
            log.warning("alerts of %s not evaluated: %s", self.uid, type(exc).__name__)

    # -- failure ----------------------------------------------------------------------------

    def _destination_password_changed(self) -> bool:
        current = Database.objects.filter(pk=self.uid).first()
        return current is not None and current.internal_password != self.plan.destination_password

    def _failed(self, exc: BaseException, statuses: list[SourceStatus]) -> str:
        if isinstance(exc, SyncError) and not exc.fatal:
            # Not the operator's business (the engine retries these itself; one escaped):
            # end this job, reconcile starts the next one, which resumes where this one was.
            log.warning("sync job %s ended by a retryable error: %s", self.uid, exc)
            self._save(statuses)
            return f"ended by a retryable error, reconcile restarts it: {exc}"
        if isinstance(exc, AuthError) and self._destination_password_changed():
            # Its internal password was regenerated while we ran: start again with the new one.
            self._save(statuses)
            replica_services.sync_job_enqueue(self.uid, self.plan.generation)
            return "restarting with the destination's new password"
        source_uid = None
        if isinstance(exc, SyncError):
            message, kind = str(exc), str(exc.kind)
            if exc.source is not None:
                # Tied to its source even when the destination refused that source's data.
                source_uid = self.plan.sources[exc.source].uid
            if exc.side == Side.DESTINATION:
                message = f"destination {self.plan.destination.name}: {message}"
            elif exc.source is not None and not _names_source(
                self.plan.sources[exc.source], message
            ):
                message = f"source {self.plan.sources[exc.source].name}: {message}"
        else:
            message, kind = f"internal error: {exc!r}", "internal"
            log.error("sync job of database %s failed", self.uid, exc_info=exc)
        self._save(statuses)
        replica_services.replica_sync_fail(
            destination_id=self.uid,
            generation=self.plan.generation,
            message=message,
            kind=kind,
            source_uid=source_uid,
        )
        self._push(statuses, final=True)
        return f"stopped: {message}"
