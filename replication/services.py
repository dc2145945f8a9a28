"""Writes of Replica Of: the only code that changes sources and sync state.

Connection checks (`replica_source_check`) reach the network and so never run inside a
transaction: callers check first, then open the transaction that saves (`replica_sources_set`
validates again, without the network, under the row lock).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import secrets
import tempfile
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
from celery import current_app
from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from console import certificates, provisioning
from console import selectors as console_selectors
from console import services as console_services
from console.errors import ApplicationError
from console.models import Database, DatabaseStatus, TlsMode, User
from console.selectors import database_spec
from console.services import INTERNAL_PASSWORD_CHARS, audit_record
from console.tls import TlsMaterial, own_database_client_material, source_client_material
from replication import control, endpoints, graph
from replication.alerts import Change
from replication.live import LiveSource
from replication.models import (
    AlertName,
    AlertSettings,
    ReplicaAlert,
    ReplicaEvent,
    ReplicaOf,
    ReplicaSource,
    ReplicaSync,
    SourceStatus,
    VerifyRun,
    VerifyState,
)
from replication.probe import ProbeFailure, failure_message, source_probe
from replication.sources import MAX_SOURCES, SourceInput, gateway_options
from replication.syncer.checkpoint import CHECKPOINT_KEY
from replication.syncer.preflight import PreflightReport, preflight
from replication.syncer.urls import RedisUrl, is_hostname

log = logging.getLogger(__name__)

SYNC_TASK = "replication.tasks.sync_job_task"
VERIFY_TASK = "replication.tasks.replica_verify_task"


def replica_of_get(*, destination: Database) -> ReplicaOf:
    replica_of, _ = ReplicaOf.objects.get_or_create(destination=destination)
    return replica_of


def _field(index: int, name: str) -> str:
    return f"replica_sources[{index}].{name}"


@dataclass(frozen=True, slots=True)
class ResolvedSource:
    """A wanted source after validation: the database of this cluster it is (if any), the URL the
    syncer will use and the TLS material it will present and trust (None: no TLS)."""

    input: SourceInput
    database: Database | None
    url: RedisUrl
    tls: TlsMaterial | None

    @property
    def internal(self) -> bool:
        """Chosen from this cluster's databases (its URL is built at use time)."""
        return self.input.source_database_uid is not None


def _resolve_one(destination: Database, item: SourceInput, index: int) -> ResolvedSource:
    """Validate one wanted source (no network)."""
    if not 0 <= item.compression <= 6:
        raise ApplicationError(
            "compression must be between 0 and 6", field=_field(index, "compression")
        )
    if item.gateway_port is not None and not item.compression:
        raise ApplicationError(
            "a gateway port is only used with compression", field=_field(index, "gateway_port")
        )
    if (item.source_database_uid is None) == (not item.uri):
        raise ApplicationError(
            "give either a database of this cluster or a URL", field=_field(index, "uri")
        )
    if item.source_database_uid is not None:
        db = Database.objects.select_related("node").filter(pk=item.source_database_uid).first()
        if db is None:
            raise ApplicationError(
                f"no database with uid {item.source_database_uid}", field=_field(index, "uri")
            )
        url = endpoints.internal_source(db)
    else:
        url = endpoints.parse_external_uri(item.uri, field=_field(index, "uri"))
        db = endpoints.database_at(url)
    if db is not None and db.status == DatabaseStatus.DELETE_PENDING:
        raise ApplicationError(f"database {db.name} is being deleted", field=_field(index, "uri"))
    _validate_source_tls(item, url, index)
    tls = None
    if item.encryption or url.tls:
        tls = source_client_material(
            server_cert=item.server_cert,
            internal=item.source_database_uid is not None,
            sni=item.replication_tls_sni or url.sni or "",
        )
    return ResolvedSource(item, db, url, tls)


def _validate_source_tls(item: SourceInput, url: RedisUrl, index: int) -> None:
    """The TLS fields of a source: each certificate one checked PEM block (stored as given, so
    that sending the same source again changes nothing), the server name a host name, and all of
    them only with TLS."""
    tls = item.encryption or url.tls
    for name, pem in (("server_cert", item.server_cert), ("client_cert", item.client_cert)):
        if not pem:
            continue
        if not tls:
            raise ApplicationError(
                f"{name} needs TLS: set encryption or use rediss://", field=_field(index, name)
            )
        certificates.load_certificate(pem, field=_field(index, name))
    sni = item.replication_tls_sni
    if sni and not is_hostname(sni):
        raise ApplicationError(
            "the server name (SNI) must be a host name", field=_field(index, "replication_tls_sni")
        )
    if sni and not tls:
        raise ApplicationError(
            "a server name (SNI) needs TLS: set encryption or use rediss://",
            field=_field(index, "replication_tls_sni"),
        )


def _resolve(destination: Database, wanted: Sequence[SourceInput]) -> list[ResolvedSource]:
    """Validate every wanted source: count, duplicates, cycles (no network)."""
    if len(wanted) > MAX_SOURCES:
        raise ApplicationError(
            f"a destination has at most {MAX_SOURCES} sources ({len(wanted)} given)",
            field="replica_sources",
        )
    resolved: list[ResolvedSource] = []
    seen: set[str] = set()
    for i, item in enumerate(wanted):
        source = _resolve_one(destination, item, i)
        key = f"db:{source.database.pk}" if source.database is not None else source.url.address
        if key in seen:
            raise ApplicationError("the same source is listed twice", field=_field(i, "uri"))
        seen.add(key)
        resolved.append(source)
    upstream = {s.database.pk for s in resolved if s.database is not None}
    reason = graph.cycle_reason(destination, upstream)
    if reason:
        raise ApplicationError(reason, field="replica_sources")
    return resolved


def replica_source_check(
    *, destination: Database, source: SourceInput, field: str = "uri", index: int = 0
) -> ResolvedSource:
    """Everything about one wanted source before it is saved: its shape and place (cycles,
    deletion), then a connection with exactly the URL and TLS material the sync job will use
    (connect, TLS, AUTH, `INFO replication`, under one deadline). Runs outside any transaction.
    A refusal names `field` (`replica_sources[i].uri` with `index` when `field` is "uri")."""
    name = _field(index, "uri") if field == "uri" else field
    try:
        resolved = _resolve_one(destination, source, index)
        if resolved.database is not None:
            reason = graph.cycle_reason(destination, {resolved.database.pk})
            if reason:
                raise ApplicationError(reason, field=name)
    except ApplicationError as exc:
        if exc.field and not exc.field.endswith(".uri") and exc.field != "replica_sources":
            raise  # a TLS field of the source: it keeps its own name
        raise ApplicationError(exc.message, field=name) from None
    gateway = gateway_options(
        compression=source.compression,
        gateway_port=source.gateway_port,
        internal=source.source_database_uid is not None,
    )
    try:
        source_probe(resolved.url, resolved.tls, gateway)
    except ProbeFailure as exc:
        message = failure_message(exc.kind, resolved.url, gateway)
        raise ApplicationError(message, field=name) from None
    return resolved


def replica_sources_check(*, destination: Database, sources: Sequence[SourceInput]) -> None:
    """`replica_source_check` for every wanted source (each refusal names its row)."""
    _resolve(destination, sources)
    for i, source in enumerate(sources):
        replica_source_check(destination=destination, source=source, index=i)


# ---------------------------------------------------------------- pre-flight


def replica_preflight(*, destination: Database, sources: Sequence[SourceInput]) -> PreflightReport:
    """Pre-flight of `sources` into `destination` (replication.syncer.preflight): pass / warn /
    fail lines with their fixes. Reaches the network: never inside a transaction."""
    resolved = _resolve(destination, sources)
    if not resolved:
        raise ApplicationError("give at least one source", field="replica_sources")
    with tempfile.TemporaryDirectory(prefix="preflight-", dir=_private_run_dir()) as tmp:
        workdir = Path(tmp)
        source_tls = [
            None if s.tls is None else s.tls.options(workdir, f"source-{i}")
            for i, s in enumerate(resolved)
        ]
        urls = [dataclasses.replace(s.url, tls=True) if s.tls else s.url for s in resolved]
        dest_tls = None
        if destination.tls_mode != TlsMode.DISABLED:
            dest_tls = own_database_client_material().options(workdir, "destination")
        return asyncio.run(
            preflight(
                urls,
                endpoints.internal_source(destination),
                source_tls=source_tls,
                destination_tls=dest_tls,
                # A compressed source goes through a gateway: the classic handshake there.
                dual_channel=[not s.compression for s in sources],
            )
        )


def _private_run_dir() -> Path:
    d = Path(settings.VAR_DIR) / "run"
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    return d


def preflight_refusal(report: PreflightReport) -> str:
    """The failed lines of a pre-flight, as the refusal of a Save says them."""
    lines = [
        f"{c.subject}: {c.name}: {c.message}" + (f" (fix: {c.fix})" if c.fix else "")
        for c in report.failures
    ]
    return "pre-flight failed: " + "; ".join(lines) + " — set preflight_override to save anyway"


def preflight_override_record(
    *, actor: User, destination: Database, report: PreflightReport
) -> None:
    """An operator saved sources whose pre-flight failed: say who and what was overridden."""
    audit_record(
        actor=actor,
        action="replica_sources.preflight_override",
        obj=destination,
        detail="; ".join(f"{c.subject}: {c.name}: {c.message}" for c in report.failures),
    )


# ---------------------------------------------------------------- the state machine


def _replica_sync_move(
    replica_of: ReplicaOf,
    state: str,
    *,
    new_generation: bool = False,
    error: str = "",
    error_kind: str = "",
) -> None:
    """The one place `replica_sync` changes (the row must be locked by the caller's transaction).

    1. The move must be in `ReplicaOf.TRANSITIONS` (staying in a state is always allowed).
    2. A new generation (sources changed, restart, start after a stop) ends the running job and
       starts from scratch: its sources' live fields are reset.
    3. The error (stopped) or its absence is saved with the state; a stopped destination's
       sources no longer follow anything, so none of them shows `syncing` (or `in-sync`): they
       are `out-of-sync` until a start makes a new generation.
    4. After commit, the running job learns the wanted state and, when enabled, a job is queued.
    """
    current = replica_of.replica_sync
    if state != current and state not in ReplicaOf.TRANSITIONS.get(current, set()):
        raise ApplicationError(
            f"replica_sync cannot move from {current} to {state}", field="replica_sync"
        )
    if new_generation:
        replica_of.generation += 1
        _sources_reset(replica_of.destination_id)
    if state == ReplicaSync.STOPPED:
        ReplicaSource.objects.filter(destination_id=replica_of.destination_id).update(
            status=SourceStatus.OUT_OF_SYNC
        )
    replica_of.replica_sync = state
    replica_of.last_error = error[:2000]
    replica_of.last_error_kind = error_kind
    replica_of.save(
        update_fields=["replica_sync", "generation", "last_error", "last_error_kind", "updated"]
    )
    _sync_publish(replica_of)


def _locked_replica_of(destination: Database) -> ReplicaOf:
    replica_of = ReplicaOf.objects.select_for_update().filter(destination=destination).first()
    return replica_of or ReplicaOf.objects.create(destination=destination)


def _sources_reset(destination_id: int) -> None:
    """A new generation starts from scratch: the live fields of its sources too."""
    ReplicaSource.objects.filter(destination_id=destination_id).update(
        status=SourceStatus.SYNCING,
        progress=None,
        lag=None,
        lag_exact=True,
        last_error="",
        last_error_kind="",
        rdb_size=None,
        rdb_transferred=None,
        commands_applied=0,
        ingress_bytes=0,
        retries=0,
    )


def _sync_publish(replica_of: ReplicaOf, *, reload: bool = False) -> None:
    """After commit: tell a running job the wanted state; enqueue a job when it should run."""
    uid, generation, state = (
        replica_of.destination_id,
        replica_of.generation,
        replica_of.replica_sync,
    )

    def publish() -> None:
        control.desired_publish(uid, generation=generation, state=state)
        if reload:
            control.desired_reload(uid)
        if state == ReplicaSync.ENABLED:
            sync_job_enqueue(uid, generation)

    transaction.on_commit(publish)


def sync_job_enqueue(uid: int, generation: int) -> None:
    """Send the job of (destination, generation) to queue `sync` (ids only, never secrets)."""
    control.queued_set(uid, generation)
    current_app.send_task(
        SYNC_TASK, args=[uid, generation], queue="sync", expires=control.QUEUED_TTL_S
    )


# ---------------------------------------------------------------- sources


def replica_sources_set(
    *, actor: User, destination: Database, sources: Sequence[SourceInput]
) -> ReplicaOf:
    """Replace the destination's sources; any change restarts the sync from scratch.

    Validates again (no network: check with `replica_sources_check` before the transaction)."""
    if destination.status == DatabaseStatus.DELETE_PENDING:
        raise ApplicationError("the destination is being deleted")
    resolved = _resolve(destination, sources)
    with transaction.atomic():
        replica_of = _locked_replica_of(destination)
        ReplicaSource.objects.filter(destination=destination).delete()
        ReplicaSource.objects.bulk_create(
            ReplicaSource(
                destination=destination,
                uid=n,
                source_database=s.database if s.internal else None,
                external_uri="" if s.internal else s.input.uri,
                compression=s.input.compression,
                gateway_port=s.input.gateway_port,
                encryption=s.input.encryption or s.url.tls,
                server_cert=s.input.server_cert,
                client_cert=s.input.client_cert,
                replication_tls_sni=s.input.replication_tls_sni or (s.url.sni or ""),
            )
            for n, s in enumerate(resolved, start=1)
        )
        _replica_sync_move(
            replica_of,
            ReplicaSync.ENABLED if resolved else ReplicaSync.DISABLED,
            new_generation=True,
        )
        names = ", ".join(s.url.redacted() for s in resolved) or "none"
        audit_record(
            actor=actor,
            action="replica_sources.set",
            obj=destination,
            detail=f"sources: {names}; generation {replica_of.generation}",
        )
        console_services.database_read_only_set(database=destination, read_only=bool(resolved))
        uid = destination.pk
        # New sources start new series and counters (source 1 may now be another source).
        transaction.on_commit(lambda: control.history_clear(uid, range(1, MAX_SOURCES + 1)))
        if not resolved:
            transaction.on_commit(lambda: _checkpoint_remove_if_idle(destination))
    return replica_of


def replica_sync_set(*, actor: User, destination: Database, state: str) -> ReplicaOf:
    """Move `replica_sync` along the transitions Redis Enterprise allows an operator.

    1. disabled -> enabled needs sources; 2. enabled <-> paused keeps the position;
    3. -> stopped ends the job; 4. stopped -> enabled restarts from scratch (flush + full sync).
    """
    with transaction.atomic():
        replica_of = _locked_replica_of(destination)
        current = replica_of.replica_sync
        if state == current:
            return replica_of
        if state not in ReplicaOf.OPERATOR_MOVES.get(current, set()):
            raise ApplicationError(
                f"replica_sync cannot move from {current} to {state}", field="replica_sync"
            )
        if (
            state == ReplicaSync.ENABLED
            and not ReplicaSource.objects.filter(destination=destination).exists()
        ):
            raise ApplicationError("add a source before enabling Replica Of", field="replica_sync")
        restart = current == ReplicaSync.STOPPED and state == ReplicaSync.ENABLED
        _replica_sync_move(replica_of, state, new_generation=restart)
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
        replica_of = _locked_replica_of(destination)
        if not ReplicaSource.objects.filter(destination=destination).exists():
            raise ApplicationError("the database has no Replica Of sources", field="replica_sync")
        _replica_sync_move(replica_of, ReplicaSync.ENABLED, new_generation=True)
        audit_record(
            actor=actor,
            action="replica_sync.restart",
            obj=destination,
            detail=f"generation {replica_of.generation}",
        )
    return replica_of


def replica_source_credentials_update(
    *, actor: User, destination: Database, source_uid: int
) -> ReplicaOf:
    """A source of this cluster whose password was regenerated: keep it, sync again with the
    current password (the URL is built when the job starts), from scratch like any restart."""
    source = ReplicaSource.objects.filter(destination=destination, uid=source_uid).first()
    if source is None:
        raise ApplicationError(f"no source {source_uid}", field="source_uid")
    if source.source_database_id is None:
        raise ApplicationError(
            "an external source's credentials are part of its URL: edit the source",
            field="source_uid",
        )
    return replica_sync_restart(actor=actor, destination=destination)


def replica_sync_fail(
    *,
    destination_id: int,
    generation: int,
    message: str,
    kind: str,
    source_uid: int | None,
) -> None:
    """Called by the sync job on a fatal error: stop Replica Of and say why (no secrets)."""
    with transaction.atomic():
        replica_of = (
            ReplicaOf.objects.select_for_update()
            .select_related("destination")
            .filter(destination_id=destination_id, generation=generation)
            .first()
        )
        if replica_of is None or replica_of.replica_sync != ReplicaSync.ENABLED:
            return
        _replica_sync_move(replica_of, ReplicaSync.STOPPED, error=message, error_kind=kind)
        if source_uid is not None:
            ReplicaSource.objects.filter(destination_id=destination_id, uid=source_uid).update(
                last_error=message[:2000], last_error_kind=kind
            )
        audit_record(
            actor=None, action="replica_sync.stopped", obj=replica_of.destination, detail=message
        )
        alert_settings = AlertSettings.objects.filter(destination_id=destination_id).first()
        if alert_settings is None or alert_settings.general_error_enabled:
            alert_changes_save(
                destination_id=destination_id,
                changes=[
                    Change(
                        source_uid or 0,
                        AlertName.GENERAL_ERROR,
                        True,
                        {"error": message[:500], "kind": kind},
                    )
                ],
            )


def replica_sources_live_save(
    *, destination_id: int, generation: int, sources: Sequence[LiveSource]
) -> None:
    """The sync job's live values of its sources (about once a second); a job of an older
    generation writes nothing, nor does a job that is ending after a stop (its sources stay
    `out-of-sync`, see `_replica_sync_move`)."""
    for s in sources:
        ReplicaSource.objects.filter(
            destination_id=destination_id,
            uid=s.uid,
            destination__replica_of__generation=generation,
        ).exclude(destination__replica_of__replica_sync=ReplicaSync.STOPPED).update(
            status=s.status,
            progress=s.progress,
            lag=s.lag,
            lag_exact=s.lag_exact,
            last_update=s.last_update,
            last_error=s.last_error[:2000],
            last_error_kind=s.last_error_kind,
            rdb_size=s.rdb_size,
            rdb_transferred=s.rdb_transferred,
            commands_applied=s.commands_applied,
            ingress_bytes=s.ingress_bytes,
            ingress_bytes_decompressed=s.ingress_bytes_decompressed,
            retries=s.retries,
        )


@dataclass(frozen=True, slots=True)
class EventInput:
    """One event of a sync job, as the job hands it over (see replication.syncer.events)."""

    time: float  # unix time
    kind: str
    source_uid: int | None
    message: str


def replica_events_record(*, destination_id: int, events: Sequence[EventInput]) -> None:
    """Keep a sync job's events (the destination's event list), the newest `ReplicaEvent.KEEP`."""
    if not events:
        return
    ReplicaEvent.objects.bulk_create(
        ReplicaEvent(
            destination_id=destination_id,
            time=datetime.fromtimestamp(e.time, tz=UTC),
            kind=e.kind[:32],
            source_uid=e.source_uid,
            message=e.message[:2000],
        )
        for e in events
    )
    rows = ReplicaEvent.objects.filter(destination_id=destination_id)
    if rows.count() > ReplicaEvent.KEEP:
        keep = list(rows.order_by("-time", "-id").values_list("pk", flat=True)[: ReplicaEvent.KEEP])
        rows.exclude(pk__in=keep).delete()


def checkpoint_remove(*, destination: Database) -> None:
    """Delete the syncer's bookkeeping key from a destination that is no longer a replica."""
    spec = database_spec(destination)
    for shard in spec.shards:
        client = provisioning.admin_client(spec, shard)
        try:
            client.delete(CHECKPOINT_KEY)
        except redis.ResponseError:
            continue  # a cluster shard that does not own the key's slot answers MOVED
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            log.warning("could not remove the checkpoint of %s: %s", destination.name, exc)
        finally:
            client.close()


def _checkpoint_remove_if_idle(destination: Database) -> None:
    if not control.lock_held(destination.pk):
        checkpoint_remove(destination=destination)


# ---------------------------------------------------------------- verify


def replica_verify_start(
    *, actor: User, destination: Database, rate: float | None, ttl_tolerance_ms: int
) -> VerifyRun:
    """Queue a comparison of the destination with its sources (a task on queue `sync`); one at a
    time per destination. The last `VerifyRun.KEEP` runs are kept."""
    if rate is not None and not 1 <= rate <= 10_000_000:
        raise ApplicationError("the rate must be between 1 and 10000000 keys/s", field="rate")
    if not 0 <= ttl_tolerance_ms <= 86_400_000:
        raise ApplicationError(
            "the TTL tolerance must be between 0 and 86400000 ms", field="ttl_tolerance_ms"
        )
    with transaction.atomic():
        _locked_replica_of(destination)  # one start at a time per destination
        if not ReplicaSource.objects.filter(destination=destination).exists():
            raise ApplicationError(
                "the database has no Replica Of sources to compare with", field="replica_sources"
            )
        # A run whose worker was lost (killed, host gone) says so instead of blocking forever.
        stale = timezone.now() - timedelta(seconds=VerifyRun.STALE_S)
        VerifyRun.objects.filter(
            destination=destination, state=VerifyState.RUNNING, updated__lt=stale
        ).update(state=VerifyState.FAILED, error="the worker running it was lost")
        if VerifyRun.objects.filter(destination=destination, state__in=VerifyRun.ACTIVE).exists():
            raise ApplicationError("a verify of this database is already running")
        run = VerifyRun.objects.create(
            destination=destination,
            actor_name=actor.username,
            rate=rate,
            ttl_tolerance_ms=ttl_tolerance_ms,
        )
        old = VerifyRun.objects.filter(destination=destination).values_list("pk", flat=True)
        VerifyRun.objects.filter(pk__in=list(old[VerifyRun.KEEP :])).delete()
        audit_record(
            actor=actor,
            action="replica_verify.start",
            obj=destination,
            detail=f"run {run.pk}; rate {rate or 'unbounded'}; TTL tolerance {ttl_tolerance_ms} ms",
        )
        run_id = run.pk
        transaction.on_commit(
            lambda: current_app.send_task(VERIFY_TASK, args=[run_id], queue="sync")
        )
    return run


def replica_verify_cancel(*, actor: User, destination: Database) -> VerifyRun:
    """Ask the running verify to end (it does within a second); a queued one ends at once."""
    with transaction.atomic():
        run = (
            VerifyRun.objects.select_for_update()
            .filter(destination=destination, state__in=VerifyRun.ACTIVE)
            .first()
        )
        if run is None:
            raise ApplicationError("no verify of this database is running")
        run.cancel_requested = True
        fields = ["cancel_requested"]
        if run.state == VerifyState.QUEUED:
            run.state, run.finished = VerifyState.CANCELLED, timezone.now()
            fields += ["state", "finished"]
        run.save(update_fields=fields)
        audit_record(
            actor=actor, action="replica_verify.cancel", obj=destination, detail=f"run {run.pk}"
        )
    return run


def replica_verify_claim(*, run_id: int) -> bool:
    """The task takes a queued run (a conditional UPDATE: a redelivered task finds it taken)."""
    return bool(
        VerifyRun.objects.filter(pk=run_id, state=VerifyState.QUEUED).update(
            state=VerifyState.RUNNING, started=timezone.now(), updated=timezone.now()
        )
    )


def replica_verify_progress(*, run_id: int, done: int, total: int, eta_s: float | None) -> bool:
    """Save the progress of a running verify; True when it was asked to cancel."""
    VerifyRun.objects.filter(pk=run_id, state=VerifyState.RUNNING).update(
        keys_done=done, keys_total=total, eta_s=eta_s, updated=timezone.now()
    )
    return VerifyRun.objects.filter(pk=run_id, cancel_requested=True).exists()


def replica_verify_finish(
    *, run_id: int, state: str, result: dict[str, Any] | None = None, error: str = ""
) -> None:
    """The end of a run: its result (or error), audited with the counts."""
    run = VerifyRun.objects.select_related("destination").filter(pk=run_id).first()
    if run is None:
        return
    run.state, run.finished, run.error, run.eta_s = state, timezone.now(), error[:2000], None
    fields = ["state", "finished", "error", "eta_s"]
    if result is not None:
        run.result = result
        run.keys_done = run.keys_total = int(result.get("keys_checked", 0))
        fields += ["result", "keys_done", "keys_total"]
    run.save(update_fields=fields)
    if result is not None:
        totals = ", ".join(f"{k} {v}" for k, v in result.get("totals", {}).items())
        detail = f"run {run.pk}: {result.get('differences', 0)} differences ({totals})"
    else:
        detail = f"run {run.pk}: {state}" + (f": {error}" if error else "")
    audit_record(actor=None, action=f"replica_verify.{state}", obj=run.destination, detail=detail)


# ---------------------------------------------------------------- the source side


def replica_source_url(*, actor: User, database: Database) -> str:
    """The URL other destinations use to copy from `database` (holds the internal password)."""
    if not actor.is_console_admin:
        raise ApplicationError("only admins may see a database's source URL")
    audit_record(actor=actor, action="database.replica_source_url", obj=database)
    return endpoints.internal_source_url(database)


def admin_password_regenerate(*, actor: User, database: Database) -> None:
    """A new internal password, set on the database's ACL at once; connections of `admin` are
    closed, so destinations still using the old password stop with an authentication error.

    The row is saved first, so that a sync job writing into this database (as admin) is told to
    restart with the new password before its connections are closed; if the database refuses the
    change, the old password is put back and nothing changed."""
    if not actor.is_console_admin:
        raise ApplicationError("only admins may regenerate a database's password")
    if database.status != DatabaseStatus.ACTIVE:
        raise ApplicationError(f"the database is {database.status}; wait until it is active")
    spec = database_spec(database)
    old_password = database.internal_password
    new_password = secrets.token_urlsafe(32)[:INTERNAL_PASSWORD_CHARS]
    with transaction.atomic():
        database.internal_password = new_password
        database.save(update_fields=["internal_password", "updated"])
        replica_of = ReplicaOf.objects.filter(destination=database).first()
        if replica_of is not None and replica_of.replica_sync == ReplicaSync.ENABLED:
            # Its own sync job writes as admin: it restarts with the new password (no flush).
            _sync_publish(replica_of, reload=True)
    try:
        provisioning.admin_password_rotate(spec, new_password)
    except (redis.RedisError, OSError) as exc:
        database.internal_password = old_password
        database.save(update_fields=["internal_password", "updated"])
        raise ApplicationError(
            f"the database refused the new password ({type(exc).__name__}); nothing changed"
        ) from None
    audit_record(actor=actor, action="database.regenerate_admin_password", obj=database)


def database_flush(*, actor: User, database: Database) -> None:
    """Delete every key of the database, all shards (Redis Enterprise's `PUT /v1/bdbs/{uid}/flush`).

    Refused for a destination whose sync is enabled or paused: the syncer would go on applying the
    stream onto a copy that lost its snapshot (restart the sync instead: it flushes and loads
    again). A source may be flushed: its destinations receive the flush in the stream."""
    if not actor.is_console_admin:
        raise ApplicationError("only admins may flush a database")
    if database.status != DatabaseStatus.ACTIVE:
        raise ApplicationError(f"the database is {database.status}; wait until it is active")
    replica_of = ReplicaOf.objects.filter(destination=database).first()
    if replica_of is not None and replica_of.replica_sync in {
        ReplicaSync.ENABLED,
        ReplicaSync.PAUSED,
    }:
        raise ApplicationError(
            f"the database is a Replica Of destination ({replica_of.replica_sync}): stop the sync "
            "first, or restart it (a restart flushes and loads every source again)",
            code="bdb_is_replica",
        )
    spec = database_spec(database)
    for shard in spec.shards:
        client = provisioning.admin_client(spec, shard)
        try:
            client.flushall()
        except (redis.RedisError, OSError) as exc:
            raise ApplicationError(
                f"shard {shard.index} refused the flush ({type(exc).__name__})"
            ) from None
        finally:
            client.close()
    audit_record(actor=actor, action="database.flush", obj=database)


# ---------------------------------------------------------------- deletion, reconcile


def database_delete(*, actor: User, database: Database) -> None:
    """Delete a database, knowing its Replica Of side: refused while it is a source of other
    databases (named); a destination's running sync job is ended."""
    used_by = ReplicaSource.objects.filter(source_database=database).select_related("destination")
    if used_by.exists():
        names = ", ".join(sorted({s.destination.name for s in used_by}))
        raise ApplicationError(
            f"the database is a Replica Of source of {names}; remove it from there first"
        )
    with transaction.atomic():
        console_services.database_delete(actor=actor, database=database)
        uid = database.pk
        if ReplicaOf.objects.filter(destination=database).exists():
            transaction.on_commit(
                lambda: control.desired_publish(uid, generation=0, state=ReplicaSync.DISABLED)
            )


def sync_jobs_reconcile() -> list[int]:
    """Beat: republish the wanted state of every destination and re-queue the job of each enabled
    destination whose lock (heartbeat) expired. Returns the uids re-queued."""
    requeued: list[int] = []
    for replica_of in ReplicaOf.objects.all():
        uid = replica_of.destination_id
        control.desired_publish(
            uid, generation=replica_of.generation, state=replica_of.replica_sync
        )
        if replica_of.replica_sync != ReplicaSync.ENABLED or control.lock_held(uid):
            continue
        if not control.queued(uid):
            sync_job_enqueue(uid, replica_of.generation)
            requeued.append(uid)
    return requeued


# ---------------------------------------------------------------- alerts
# The sync job samples its sources once a second (replication.alerts decides); what changes is
# saved and audited here and delivered by tasks on the `control` queue, after commit: a slow
# mail server or webhook never holds up a sync.

ALERT_EMAIL_TASK = "replication.tasks.alert_email_task"
ALERT_WEBHOOK_TASK = "replication.tasks.alert_webhook_task"
WEBHOOK_TIMEOUT_S = 5


class WebhookError(Exception):
    """The webhook did not take the alert (retried with backoff by its task)."""


def _alert_payload(alert: ReplicaAlert, cluster: str) -> dict[str, Any]:
    return {
        "alert": alert.name,
        "state": "raised" if alert.state else "cleared",
        "severity": "WARNING",
        "cluster": cluster,
        "bdb": alert.destination_id,
        "bdb_name": alert.destination.name,
        "source": alert.source_uid,
        "change_time": alert.change_time.isoformat(),
        "change_value": alert.change_value,
    }


def alert_changes_save(*, destination_id: int, changes: Sequence[Change]) -> list[ReplicaAlert]:
    """Save raised/cleared alerts, audit each, and deliver them (e-mail, webhook) after commit."""
    if not changes:
        return []
    destination = Database.objects.get(pk=destination_id)
    cluster = console_selectors.cluster_get()
    cluster_name = cluster.name if cluster else ""
    now = timezone.now()
    saved: list[ReplicaAlert] = []
    with transaction.atomic():
        for change in changes:
            alert, _ = ReplicaAlert.objects.update_or_create(
                destination=destination,
                source_uid=change.source_uid,
                name=change.name,
                defaults={"state": change.state, "change_time": now, "change_value": change.value},
            )
            audit_record(
                actor=None,
                action="alert.raised" if change.state else "alert.cleared",
                obj=destination,
                detail=f"{change.name} of source {change.source_uid}: {change.value}",
            )
            saved.append(alert)
        payloads = [_alert_payload(a, cluster_name) for a in saved]

        def deliver() -> None:
            for payload in payloads:
                for task in (ALERT_EMAIL_TASK, ALERT_WEBHOOK_TASK):
                    current_app.send_task(task, args=[payload], queue="control")

        transaction.on_commit(deliver)
    return saved


def alert_email_send(*, payload: dict[str, Any]) -> int:
    """One e-mail for one raise or clear, to the settings' addresses or else the admins'."""
    settings_row = AlertSettings.objects.filter(destination_id=payload["bdb"]).first()
    recipients = [
        a.strip() for a in (settings_row.email_to if settings_row else "").split(",") if a.strip()
    ]
    if not recipients:
        recipients = sorted(
            User.objects.filter(role=User.Role.ADMIN, is_active=True)
            .exclude(email="")
            .values_list("email", flat=True)
        )
    if not recipients:
        return 0
    verb = "raised" if payload["state"] == "raised" else "cleared"
    subject = f"[{payload['cluster']}] {payload['alert']} {verb} on {payload['bdb_name']}"
    body = "\n".join(f"{k}: {v}" for k, v in payload.items())
    return send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients)


def alert_webhook_post(*, payload: dict[str, Any]) -> bool:
    """POST the alert as JSON to the destination's webhook; False when none is set. Raises
    WebhookError when it is not taken (the task retries)."""
    settings_row = AlertSettings.objects.filter(destination_id=payload["bdb"]).first()
    url = settings_row.webhook_url if settings_row else ""
    if not url:
        return False
    request = urllib.request.Request(  # noqa: S310 - http(s) only, checked when set
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_S) as response:  # noqa: S310
            if not 200 <= response.status < 300:
                raise WebhookError(f"HTTP {response.status}")
    except (OSError, ValueError) as exc:  # URLError and HTTPError are OSErrors
        # The URL may hold a token: the error names its kind only.
        raise WebhookError(type(exc).__name__) from None
    return True


def alert_settings_set(
    *, actor: User, destination: Database, values: dict[str, Any]
) -> AlertSettings:
    """Change a destination's alert settings (`values`: AlertSettings field names)."""
    url = values.get("webhook_url")
    if url and not re.match(r"^https?://[^\s/@]+(:\d+)?(/\S*)?$", url):
        raise ApplicationError("an http:// or https:// URL", field="webhook_url")
    for address in str(values.get("email_to") or "").split(","):
        if address.strip():
            try:
                validate_email(address.strip())
            except DjangoValidationError:
                raise ApplicationError(
                    f"{address.strip()!r} is not an e-mail address", field="email_to"
                ) from None
    with transaction.atomic():
        row, _ = AlertSettings.objects.get_or_create(destination=destination)
        for name, value in values.items():
            setattr(row, name, value)
        row.save()
        audit_record(
            actor=actor,
            action="alert_settings.set",
            obj=destination,
            detail=", ".join(sorted(k for k in values if k != "webhook_url"))
            + (", webhook" if "webhook_url" in values else ""),
        )
    return row
