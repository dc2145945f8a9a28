"""Writes of Replica Of: the only code that changes sources and sync state."""

from __future__ import annotations

import logging
import os
import secrets
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from django.db import transaction

from console import provisioning
from console.errors import ApplicationError
from console.models import Certificate, Database, DatabaseStatus, User
from console.services import (
    INTERNAL_PASSWORD_CHARS,
    audit_record,
    database_spec,
    database_status_set,
    enqueue_node_task,
)
from replication import control
from replication import sources as graph
from replication.models import ReplicaOf, ReplicaSource, ReplicaSync, SourceStatus
from replication.sources import MAX_SOURCES, SourceInput
from replication.syncer.urls import RedisUrl, parse_redis_url

log = logging.getLogger(__name__)

CHECK_TIMEOUT_S = 5.0
SYNC_TASK = "replication.tasks.sync_job_task"


def replica_of_get(*, destination: Database) -> ReplicaOf:
    replica_of, _ = ReplicaOf.objects.get_or_create(destination=destination)
    return replica_of


def _field(index: int, name: str) -> str:
    return f"replica_sources[{index}].{name}"


def _resolve(
    destination: Database, wanted: Sequence[SourceInput]
) -> list[tuple[SourceInput, Database | None, RedisUrl]]:
    """Validate every wanted source; return it with its database (if internal) and URL."""
    if len(wanted) > MAX_SOURCES:
        raise ApplicationError(
            f"a destination has at most {MAX_SOURCES} sources ({len(wanted)} given)",
            field="replica_sources",
        )
    resolved: list[tuple[SourceInput, Database | None, RedisUrl]] = []
    seen: set[str] = set()
    for i, item in enumerate(wanted):
        if not 0 <= item.compression <= 6:
            raise ApplicationError(
                "compression must be between 0 and 6", field=_field(i, "compression")
            )
        if (item.source_database_uid is None) == (not item.uri):
            raise ApplicationError(
                "give either a database of this cluster or a URL", field=_field(i, "uri")
            )
        if item.source_database_uid is not None:
            db = Database.objects.select_related("node").filter(pk=item.source_database_uid).first()
            if db is None:
                raise ApplicationError(
                    f"no database with uid {item.source_database_uid}", field=_field(i, "uri")
                )
            url = parse_redis_url(graph.internal_source_url(db))
        else:
            url = graph.parse_external_uri(item.uri, field=_field(i, "uri"))
            db = graph.database_at(url)
        if db is not None and db.status == DatabaseStatus.DELETE_PENDING:
            raise ApplicationError(f"database {db.name} is being deleted", field=_field(i, "uri"))
        key = f"db:{db.pk}" if db is not None else url.address
        if key in seen:
            raise ApplicationError("the same source is listed twice", field=_field(i, "uri"))
        seen.add(key)
        resolved.append((item, db, url))
    upstream = {db.pk for _, db, _ in resolved if db is not None}
    reason = graph.cycle_reason(destination, upstream)
    if reason:
        raise ApplicationError(reason, field="replica_sources")
    return resolved


@dataclass(frozen=True, slots=True)
class CheckTls:
    """TLS material for a connection check (PEM text): the server certificate to trust (empty:
    the system's trust store) and the client certificate to present (this cluster's syncer)."""

    ca: str = ""
    cert: str = field(default="", repr=False)
    key: str = field(default="", repr=False)


def check_tls_for(
    *, encryption: bool, url: RedisUrl, server_cert: str, internal: bool
) -> CheckTls | None:
    """What the sync job would present and trust for this source (see replication.jobs)."""
    if not (encryption or url.tls):
        return None
    syncer = Certificate.objects.filter(kind=Certificate.Kind.SYNCER).first()
    ca = server_cert
    if not ca and internal:
        proxy = Certificate.objects.filter(kind=Certificate.Kind.PROXY).first()
        ca = proxy.certificate_pem if proxy else ""
    return CheckTls(
        ca=ca,
        cert=syncer.certificate_pem if syncer else "",
        key=syncer.private_key_pem if syncer else "",
    )


def _tls_kwargs(tls: CheckTls, workdir: str) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"ssl": True, "ssl_check_hostname": False}
    if tls.ca:
        kwargs["ssl_ca_data"] = tls.ca
    if tls.cert and tls.key:
        for name, text in (("cert", tls.cert), ("key", tls.key)):
            path = os.path.join(workdir, name)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(text)
        kwargs["ssl_certfile"] = os.path.join(workdir, "cert")
        kwargs["ssl_keyfile"] = os.path.join(workdir, "key")
    return kwargs


def source_check(url: RedisUrl, *, field: str, tls: CheckTls | None = None) -> None:
    """Connect and authenticate to a source; refuse with a clear reason (never the password)."""
    if url.tls and tls is None:
        tls = CheckTls()
    with tempfile.TemporaryDirectory(prefix="source-check-") as workdir:
        client = redis.Redis(
            host=url.host,
            port=url.port,
            username=url.username,
            password=url.password,
            socket_connect_timeout=CHECK_TIMEOUT_S,
            socket_timeout=CHECK_TIMEOUT_S,
            **(_tls_kwargs(tls, workdir) if tls is not None else {}),
        )
        try:
            client.ping()
            client.execute_command("INFO", "replication")
        except redis.AuthenticationError:
            raise ApplicationError(
                f"authentication failed for source {url.redacted()}", field=field
            ) from None
        except redis.ResponseError as exc:
            if "NOPERM" in str(exc):
                raise ApplicationError(
                    f"the user of {url.redacted()} may not read replication state (NOPERM)",
                    field=field,
                ) from None
            raise ApplicationError(
                f"source {url.redacted()} answered: {exc}", field=field
            ) from None
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            text = str(exc)
            if "certificate verify failed" in text:
                raise ApplicationError(
                    f"TLS: the certificate of {url.address} is not trusted; give the source "
                    "cluster's proxy certificate (server certificate)",
                    field=field,
                ) from None
            if tls is not None and ("SSL" in text or "TLS" in text or "alert" in text):
                raise ApplicationError(
                    f"TLS handshake with {url.address} failed (does it accept this cluster's "
                    "syncer certificate? does it speak TLS?)",
                    field=field,
                ) from None
            raise ApplicationError(
                f"cannot connect to {url.address}: {type(exc).__name__}", field=field
            ) from None
        finally:
            client.close()


def replica_sources_set(
    *,
    actor: User,
    destination: Database,
    sources: Sequence[SourceInput],
    check_connection: bool = True,
) -> ReplicaOf:
    """Replace the destination's sources; any change restarts the sync from scratch."""
    if destination.status == DatabaseStatus.DELETE_PENDING:
        raise ApplicationError("the destination is being deleted")
    resolved = _resolve(destination, sources)
    if check_connection:
        for i, (item, db, url) in enumerate(resolved):
            tls = check_tls_for(
                encryption=item.encryption,
                url=url,
                server_cert=item.server_cert,
                internal=db is not None and item.source_database_uid is not None,
            )
            source_check(url, field=_field(i, "uri"), tls=tls)
    with transaction.atomic():
        replica_of = ReplicaOf.objects.select_for_update().filter(destination=destination).first()
        if replica_of is None:
            replica_of = ReplicaOf.objects.create(destination=destination)
        had_sources = ReplicaSource.objects.filter(destination=destination).exists()
        ReplicaSource.objects.filter(destination=destination).delete()
        ReplicaSource.objects.bulk_create(
            ReplicaSource(
                destination=destination,
                uid=n,
                source_database=db if item.source_database_uid is not None else None,
                external_uri=item.uri if item.source_database_uid is None else "",
                compression=item.compression,
                encryption=item.encryption or url.tls,
                server_cert=item.server_cert,
                client_cert=item.client_cert,
                replication_tls_sni=item.replication_tls_sni or (url.sni or ""),
            )
            for n, (item, db, url) in enumerate(resolved, start=1)
        )
        replica_of.generation += 1
        replica_of.last_error = ""
        replica_of.replica_sync = ReplicaSync.ENABLED if resolved else ReplicaSync.DISABLED
        replica_of.save(update_fields=["generation", "last_error", "replica_sync", "updated"])
        names = ", ".join(u.redacted() for _, _, u in resolved) or "none"
        audit_record(
            actor=actor,
            action="replica_sources.set",
            obj=destination,
            detail=f"sources: {names}; generation {replica_of.generation}",
        )
        if had_sources != bool(resolved):
            _read_only_apply(destination)
        _sync_publish(replica_of)
        if not resolved:
            transaction.on_commit(lambda: _checkpoint_remove_if_idle(destination))
    return replica_of


def _read_only_apply(destination: Database) -> None:
    """Rewrite the destination's ACL: read-only for applications while it has sources."""
    if destination.status == DatabaseStatus.ACTIVE:
        database_status_set(database=destination, status=DatabaseStatus.CHANGE_PENDING)
        enqueue_node_task("console.tasks.database_apply_task", destination)


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
    from console.celery import app

    control.queued_set(uid, generation)
    app.send_task(SYNC_TASK, args=[uid, generation], queue="sync", expires=control.QUEUED_TTL_S)


def replica_sync_set(*, actor: User, destination: Database, state: str) -> ReplicaOf:
    """Move `replica_sync` along the transitions Redis Enterprise allows.

    1. disabled -> enabled needs sources; 2. enabled <-> paused keeps the position;
    3. -> stopped ends the job; 4. stopped -> enabled restarts from scratch (flush + full sync).
    """
    with transaction.atomic():
        replica_of = ReplicaOf.objects.select_for_update().filter(destination=destination).first()
        if replica_of is None:
            replica_of = ReplicaOf.objects.create(destination=destination)
        current = replica_of.replica_sync
        if state == current:
            return replica_of
        if state not in ReplicaOf.TRANSITIONS.get(current, set()):
            raise ApplicationError(
                f"replica_sync cannot move from {current} to {state}", field="replica_sync"
            )
        if (
            state == ReplicaSync.ENABLED
            and not ReplicaSource.objects.filter(destination=destination).exists()
        ):
            raise ApplicationError("add a source before enabling Replica Of", field="replica_sync")
        if current == ReplicaSync.STOPPED and state == ReplicaSync.ENABLED:
            replica_of.generation += 1
            replica_of.last_error = ""
            _sources_reset(destination)
        replica_of.replica_sync = state
        replica_of.save(update_fields=["replica_sync", "generation", "last_error", "updated"])
        audit_record(
            actor=actor,
            action=f"replica_sync.{state}",
            obj=destination,
            detail=f"{current} -> {state}",
        )
        _sync_publish(replica_of)
    return replica_of


def replica_sync_restart(*, actor: User, destination: Database) -> ReplicaOf:
    """Flush the destination and sync every source again from scratch."""
    with transaction.atomic():
        replica_of = ReplicaOf.objects.select_for_update().filter(destination=destination).first()
        if replica_of is None or not ReplicaSource.objects.filter(destination=destination).exists():
            raise ApplicationError("the database has no Replica Of sources", field="replica_sync")
        replica_of.generation += 1
        replica_of.last_error = ""
        replica_of.replica_sync = ReplicaSync.ENABLED
        replica_of.save(update_fields=["replica_sync", "generation", "last_error", "updated"])
        _sources_reset(destination)
        audit_record(
            actor=actor,
            action="replica_sync.restart",
            obj=destination,
            detail=f"generation {replica_of.generation}",
        )
        _sync_publish(replica_of)
    return replica_of


def _sources_reset(destination: Database) -> None:
    """A new generation starts from scratch: the live fields of its sources too."""
    ReplicaSource.objects.filter(destination=destination).update(
        status=SourceStatus.SYNCING,
        progress=None,
        lag=None,
        last_error="",
        rdb_size=None,
        rdb_transferred=None,
        commands_applied=0,
        ingress_bytes=0,
        retries=0,
    )


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
    *, destination_id: int, generation: int, message: str, source_uid: int | None
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
        replica_of.replica_sync = ReplicaSync.STOPPED
        replica_of.last_error = message[:2000]
        replica_of.save(update_fields=["replica_sync", "last_error", "updated"])
        if source_uid is not None:
            ReplicaSource.objects.filter(destination_id=destination_id, uid=source_uid).update(
                last_error=message[:2000]
            )
        audit_record(
            actor=None, action="replica_sync.stopped", obj=replica_of.destination, detail=message
        )
        _sync_publish(replica_of)


def checkpoint_remove(*, destination: Database) -> None:
    """Delete the syncer's bookkeeping key from a destination that is no longer a replica."""
    from replication.syncer.checkpoint import CHECKPOINT_KEY

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


def replica_source_url(*, actor: User, database: Database) -> str:
    """The URL other destinations use to copy from `database` (holds the internal password)."""
    if not actor.is_console_admin:
        raise ApplicationError("only admins may see a database's source URL")
    audit_record(actor=actor, action="database.replica_source_url", obj=database)
    return graph.internal_source_url(database)


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


def replica_of_forget(*, destination: Database) -> None:
    """The destination is being deleted: any running job must end."""
    uid = destination.pk
    transaction.on_commit(lambda: control.desired_publish(uid, generation=0, state="disabled"))


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
