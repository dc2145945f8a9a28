"""Writes of the cluster domain. Views, APIs and tasks call these; nothing else changes state."""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psutil
from celery import current_app
from django.conf import settings
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Model, QuerySet, Sum

from console import certificates, provisioning
from console.errors import ApplicationError
from console.models import (
    AuditEntry,
    Certificate,
    Cluster,
    Database,
    DatabaseStatus,
    Node,
    Persistence,
    Shard,
    TlsMode,
    User,
)
from console.selectors import database_spec

log = logging.getLogger(__name__)

NAME_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]{0,62}$")
FQDN_RE = re.compile(
    r"^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)*"
    r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$"
)
MIN_MEMORY = 1024 * 1024
MAX_PASSWORD_CHARS = 512
# What _validate_password accepts, for the API schema: printable, no whitespace.
PASSWORD_RE = re.compile(r"^[^\s\x00-\x1f\x7f]*$")
MAX_SHARDS = 64
INTERNAL_PASSWORD_CHARS = 40


def _on_commit(fn: Callable[[], Any]) -> None:
    transaction.on_commit(fn)


# ---------------------------------------------------------------- audit


def audit_record(
    *,
    actor: User | None,
    action: str,
    obj: Model | None = None,
    object_type: str = "",
    detail: str = "",
) -> AuditEntry:
    """Record who did what to which object. `detail` must never contain a secret."""
    return AuditEntry.objects.create(
        actor=actor,
        actor_name=actor.username if actor else "system",
        action=action,
        object_type=object_type or (obj._meta.model_name or "" if obj is not None else ""),
        object_id=str(obj.pk) if obj is not None else "",
        object_name=str(obj) if obj is not None else "",
        detail=detail,
    )


# ---------------------------------------------------------------- cluster bootstrap


def cluster_bootstrap(
    *,
    name: str,
    node_name: str,
    node_address: str,
    admin_username: str = "admin",
    admin_password: str | None = None,
) -> str | None:
    """First run: cluster row, certificates, this node, the admin user.

    Idempotent. Returns the admin password only when the admin user was created by this call.
    """
    if not FQDN_RE.match(name):
        raise ApplicationError(f"{name!r} is not a valid FQDN", field="name")
    with transaction.atomic():
        cluster = Cluster.objects.select_for_update().first()
        if cluster is None:
            cluster = Cluster.objects.create(name=name)
            audit_record(actor=None, action="cluster.create", obj=cluster)
        for kind, client in ((Certificate.Kind.PROXY, False), (Certificate.Kind.SYNCER, True)):
            if not Certificate.objects.filter(kind=kind).exists():
                info = certificates.generate(
                    common_name=f"{kind}.{cluster.name}", fqdn=cluster.name, client=client
                )
                Certificate.objects.create(kind=kind, **_cert_fields(info))
        node, created = Node.objects.get_or_create(
            name=node_name, defaults={"address": node_address}
        )
        if not created and node.address != node_address:
            node.address = node_address
            node.save(update_fields=["address"])
        if created:
            audit_record(actor=None, action="node.add", obj=node)
        if User.objects.filter(username=admin_username).exists():
            return None
        password = admin_password or secrets.token_urlsafe(12)
        User.objects.create_user(
            username=admin_username, password=password, role=User.Role.ADMIN, is_staff=True
        )
        audit_record(
            actor=None,
            action="user.create",
            object_type="user",
            detail=f"bootstrap admin {admin_username}",
        )
        return password


def _cert_fields(info: certificates.CertificateInfo) -> dict[str, Any]:
    return {
        "certificate_pem": info.certificate_pem,
        "private_key_pem": info.private_key_pem,
        "subject": info.subject,
        "san": info.san,
        "fingerprint_sha256": info.fingerprint_sha256,
        "not_before": info.not_before,
        "not_after": info.not_after,
    }


@dataclass(frozen=True, slots=True)
class CertificateInput:
    """One certificate to replace: Redis Enterprise's certificate object (`name`: proxy or
    syncer; `proxy_cert`/`syncer_cert` are taken too)."""

    name: str
    certificate_pem: str
    private_key_pem: str


def certificates_replace(
    *, actor: User, certificates_in: Sequence[CertificateInput], field_prefix: str = ""
) -> list[Certificate]:
    """Replace cluster certificates: every one is checked first (an unknown name is 403 and an
    expired certificate 406, as Redis Enterprise answers), then all are saved together or none.
    `field_prefix` names the input in errors (`certificates[1].`)."""
    checked: list[tuple[str, certificates.CertificateInfo]] = []
    for index, item in enumerate(certificates_in):
        prefix = field_prefix.format(index=index)
        kind = item.name.removesuffix("_cert")
        if kind not in Certificate.Kind.values:
            raise ApplicationError(
                f"unknown certificate {item.name!r}: this cluster has "
                + " and ".join(Certificate.Kind.values),
                field=f"{prefix}name",
                code="unknown_certificate",
                status=403,
            )
        try:
            info = certificates.validate_pair(item.certificate_pem, item.private_key_pem)
        except ApplicationError as exc:
            # Redis Enterprise answers an expired cluster certificate with 406.
            status = 406 if exc.code == "certificate_expired" else exc.status
            raise ApplicationError(
                exc.message, field=f"{prefix}{exc.field}", code=exc.code, status=status
            ) from None
        checked.append((kind, info))
    if len({kind for kind, _ in checked}) != len(checked):
        raise ApplicationError(
            "each certificate may be given once", field="certificates" if field_prefix else "name"
        )
    replaced = []
    with transaction.atomic():
        for kind, info in checked:
            cert, _ = Certificate.objects.update_or_create(kind=kind, defaults=_cert_fields(info))
            audit_record(
                actor=actor,
                action="certificate.replace",
                obj=cert,
                detail=f"new fingerprint {info.fingerprint_sha256}",
            )
            replaced.append(cert)
        # Both certificates are in every TLS database's files (the proxy one served, the syncer
        # one trusted): the nodes push the new files to the running processes (CONFIG SET).
        for database in tls_databases().filter(status=DatabaseStatus.ACTIVE):
            database_status_set(database=database, status=DatabaseStatus.CHANGE_PENDING)
            enqueue_node_task("console.tasks.database_apply_task", database)
    return replaced


def certificate_replace(
    *, actor: User, kind: str, certificate_pem: str, private_key_pem: str
) -> Certificate:
    """Replace one cluster certificate (the page, `PUT /v1/cluster/update_cert`)."""
    (cert,) = certificates_replace(
        actor=actor,
        certificates_in=[CertificateInput(kind, certificate_pem, private_key_pem)],
    )
    return cert


def tls_databases() -> QuerySet[Database]:
    """The databases that serve TLS (with the proxy certificate) on some port."""
    return (
        Database.objects.select_related("node").exclude(tls_mode=TlsMode.DISABLED).order_by("name")
    )


# ---------------------------------------------------------------- databases: validation


def _node_free_memory(node: Node, *, excluding: Database | None = None) -> int:
    allocated = Database.objects.filter(node=node)
    if excluding is not None:
        allocated = allocated.exclude(pk=excluding.pk)
    used = allocated.aggregate(total=Sum("memory_size"))["total"] or 0
    return max(int(psutil.virtual_memory().available) - int(used), 0)


def _validate_memory(memory_size: int, node: Node, *, excluding: Database | None = None) -> None:
    free = _node_free_memory(node, excluding=excluding)
    if memory_size < MIN_MEMORY:
        raise ApplicationError(
            "memory_size must be at least 1 MB (1048576 bytes)", field="memory_size"
        )
    if memory_size > free:
        raise ApplicationError(
            f"memory_size {memory_size} exceeds the node's free memory ({free} bytes)",
            field="memory_size",
        )


def _validate_password(password: str, field: str) -> None:
    if len(password) > MAX_PASSWORD_CHARS:
        raise ApplicationError(
            f"password must be at most {MAX_PASSWORD_CHARS} characters", field=field
        )
    if any(ch.isspace() or not ch.isprintable() for ch in password):
        raise ApplicationError(
            "password must not contain spaces or control characters", field=field
        )


def _port_taken(port: int) -> bool:
    """A database of the cluster has the port (a shard's, or a TLS port)."""
    return (
        Shard.objects.filter(port=port).exists() or Database.objects.filter(tls_port=port).exists()
    )


def _port_usable(port: int, *, sharded: bool, host: str) -> bool:
    if _port_taken(port):
        return False
    if not provisioning.port_free(port, host):
        return False
    # Redis Cluster's bus listens on port + 10000.
    return not sharded or (port + 10000 <= 65535 and provisioning.port_free(port + 10000, host))


def _allocate_ports(*, shards: int, chosen: int | None, host: str, extra: int = 0) -> list[int]:
    """Ports for `shards` shards (the chosen one first) and `extra` more (TLS ports)."""
    lo, hi = settings.DB_PORT_MIN, settings.DB_PORT_MAX
    sharded = shards > 1
    wanted = shards + extra
    ports: list[int] = []
    if chosen is not None:
        if not lo <= chosen <= hi:
            raise ApplicationError(f"port must be in the range {lo}-{hi}", field="port")
        if _port_taken(chosen):
            raise ApplicationError(f"port {chosen} is used by another database", field="port")
        if not _port_usable(chosen, sharded=sharded, host=host):
            raise ApplicationError(f"port {chosen} is in use on the node", field="port")
        ports.append(chosen)
    for candidate in range(lo, hi + 1):
        if len(ports) == wanted:
            break
        if candidate in ports:
            continue
        if _port_usable(candidate, sharded=sharded, host=host):
            ports.append(candidate)
    if len(ports) < wanted:
        raise ApplicationError(
            f"no free port left in the range {lo}-{hi}",
            field="port" if chosen is None else "shards_count",
        )
    return ports


def local_node() -> Node:
    node = Node.objects.filter(name=settings.NODE_NAME).first() or Node.objects.first()
    if node is None:
        raise ApplicationError("the cluster has no node yet: run the bootstrap first")
    return node


# ---------------------------------------------------------------- databases: writes


def database_create(
    *,
    actor: User,
    name: str,
    memory_size: int,
    shards_count: int = 1,
    port: int | None = None,
    password: str = "",
    persistence: str = Persistence.DISABLED,
    tls_mode: str = TlsMode.DISABLED,
    enforce_client_authentication: bool = False,
    client_certificates: Sequence[str] = (),
) -> Database:
    """Validate, save the row with its shards, then ask the node to start the processes."""
    if not NAME_RE.match(name or ""):
        raise ApplicationError(
            "name must start with a letter and contain only letters, digits and '-' "
            "(at most 63 characters)",
            field="name",
        )
    if Database.objects.filter(name=name).exists():
        raise ApplicationError(f"a database named {name!r} already exists", field="name")
    if not 1 <= shards_count <= MAX_SHARDS:
        raise ApplicationError(
            f"shards_count must be between 1 and {MAX_SHARDS}", field="shards_count"
        )
    if persistence not in Persistence.values:
        raise ApplicationError(
            f"persistence must be one of {', '.join(Persistence.values)}", field="data_persistence"
        )
    if password:
        _validate_password(password, "authentication_redis_pass")
    trusted = _validate_tls(
        tls_mode, enforce_client_authentication, client_certificates, shards_count=shards_count
    )
    node = local_node()
    _validate_memory(memory_size, node)
    replica_ssl = tls_mode == TlsMode.REPLICA_SSL
    ports = _allocate_ports(
        shards=shards_count, chosen=port, host=node.address, extra=1 if replica_ssl else 0
    )
    tls_port = ports.pop() if replica_ssl else None
    try:
        with transaction.atomic():
            db = Database.objects.create(
                name=name,
                node=node,
                port=ports[0],
                tls_port=tls_port,
                memory_size=memory_size,
                shards_count=shards_count,
                persistence=persistence,
                password=password,
                internal_password=secrets.token_urlsafe(32)[:INTERNAL_PASSWORD_CHARS],
                tls_mode=tls_mode,
                enforce_client_authentication=enforce_client_authentication,
                client_certificates=trusted,
            )
            Shard.objects.bulk_create(
                Shard(database=db, index=i, port=p) for i, p in enumerate(ports)
            )
            audit_record(
                actor=actor,
                action="database.create",
                obj=db,
                detail=f"memory_size={memory_size} shards={shards_count} "
                f"port={ports[0]} persistence={persistence} tls={tls_mode}",
            )
            enqueue_node_task("console.tasks.database_provision_task", db)
    except IntegrityError:
        raise ApplicationError(
            "the name or a port was taken concurrently; try again", field="name"
        ) from None
    return db


def _validate_tls(
    mode: str, enforce_client_authentication: bool, certs: Sequence[str], *, shards_count: int
) -> str:
    """Check the TLS settings of a database; return the trusted client certificates (PEM)."""
    if mode not in TlsMode.values:
        raise ApplicationError(
            f"tls_mode must be one of {', '.join(TlsMode.values)}", field="tls_mode"
        )
    if mode == TlsMode.REPLICA_SSL and shards_count > 1:
        # Each shard would need a second port that the others learn through the cluster bus,
        # which Redis only announces when the bus itself runs TLS (then it is `enabled`).
        raise ApplicationError(
            "TLS between databases only is for databases of one shard; use 'enabled' (TLS for "
            "all connections) for a sharded database",
            field="tls_mode",
        )
    if enforce_client_authentication and mode == TlsMode.DISABLED:
        raise ApplicationError(
            "client authentication needs TLS: set tls_mode to 'replica_ssl' or 'enabled'",
            field="enforce_client_authentication",
        )
    if len(certs) > certificates.MAX_CLIENT_CERTIFICATES:
        raise ApplicationError(
            f"at most {certificates.MAX_CLIENT_CERTIFICATES} client certificates",
            field="authentication_ssl_client_certs",
        )
    pems = [
        certificates.certificate_text(pem, field=f"authentication_ssl_client_certs[{i}]").strip()
        for i, pem in enumerate(certs)
    ]
    return "\n".join(pems)


def database_update(
    *,
    actor: User,
    database: Database,
    memory_size: int | None = None,
    password: str | None = None,
    tls_mode: str | None = None,
    enforce_client_authentication: bool | None = None,
    client_certificates: Sequence[str] | None = None,
) -> Database:
    """Change the memory limit, the default user's password and the TLS settings (None leaves a
    setting as it is); the node applies it live, without a restart."""
    if database.status not in {DatabaseStatus.ACTIVE, DatabaseStatus.ERROR}:
        raise ApplicationError(f"the database is {database.status}; wait until it is active")
    changed = _tls_update(database, tls_mode, enforce_client_authentication, client_certificates)
    if memory_size is not None and memory_size != database.memory_size:
        _validate_memory(memory_size, database.node, excluding=database)
        database.memory_size = memory_size
        changed.append(f"memory_size={memory_size}")
    if password is not None and password != database.password:
        if password:
            _validate_password(password, "authentication_redis_pass")
        database.password = password
        changed.append("password changed" if password else "password removed")
    if not changed:
        return database
    with transaction.atomic():
        database.save(update_fields=[*UPDATABLE_FIELDS, "updated"])
        if database.status == DatabaseStatus.ACTIVE:
            database_status_set(database=database, status=DatabaseStatus.CHANGE_PENDING)
        audit_record(actor=actor, action="database.update", obj=database, detail=", ".join(changed))
        enqueue_node_task("console.tasks.database_apply_task", database)
    return database


UPDATABLE_FIELDS = (
    "memory_size",
    "password",
    "tls_mode",
    "tls_port",
    "enforce_client_authentication",
    "client_certificates",
)


def _tls_update(
    database: Database,
    mode: str | None,
    enforce: bool | None,
    certs: Sequence[str] | None,
) -> list[str]:
    """Check and set the TLS part of an edit on `database` (not saved); return what changed.

    TLS between databases only goes on and off live (the node opens or closes the TLS port);
    TLS for all connections changes the port applications use, so it is chosen at creation."""
    if mode is None and enforce is None and certs is None:
        return []
    new_mode = database.tls_mode if mode is None else mode
    new_enforce = database.enforce_client_authentication if enforce is None else enforce
    trusted = _validate_tls(new_mode, new_enforce, certs or (), shards_count=database.shards_count)
    if certs is None:
        trusted = database.client_certificates
    if new_mode != database.tls_mode and TlsMode.ENABLED in {new_mode, database.tls_mode}:
        raise ApplicationError(
            "TLS for all connections changes the port applications connect to, so it is chosen "
            "when the database is created; switch between 'disabled' and 'replica_ssl' here",
            field="tls_mode",
        )
    changed: list[str] = []
    if new_mode != database.tls_mode:
        if new_mode == TlsMode.REPLICA_SSL:
            ports = _allocate_ports(shards=0, chosen=None, host=database.host, extra=1)
            database.tls_port = ports[0]
        else:
            database.tls_port = None
        database.tls_mode = new_mode
        changed.append(f"tls={new_mode}")
    if new_enforce != database.enforce_client_authentication:
        database.enforce_client_authentication = new_enforce
        changed.append(f"client authentication {'on' if new_enforce else 'off'}")
    if trusted != database.client_certificates:
        database.client_certificates = trusted
        changed.append(f"trusted certificates: {len(_pem_list(trusted))}")
    return changed


def _pem_list(bundle: str) -> list[str]:
    return [m.group(0) for m in certificates.PEM_BLOCK.finditer(bundle)]


def trusted_certificates(database: Database) -> list[str]:
    """The client certificates a database trusts besides the cluster's own, one PEM each."""
    return _pem_list(database.client_certificates)


def database_delete(*, actor: User, database: Database) -> None:
    """Mark for deletion; the node stops the processes, removes files, then the row goes.

    Replica Of refuses or prepares the deletion first (`replication.services.database_delete`
    is what views and APIs call); this is the cluster domain's part of it."""
    if database.status == DatabaseStatus.DELETE_PENDING:
        raise ApplicationError("the database is already being deleted")
    with transaction.atomic():
        database_status_set(database=database, status=DatabaseStatus.DELETE_PENDING)
        audit_record(actor=actor, action="database.delete", obj=database)
        enqueue_node_task("console.tasks.database_remove_task", database)


def database_read_only_set(*, database: Database, read_only: bool) -> None:
    """Make the database's application users read-only (a Replica Of destination) or writable
    again; the node rewrites the ACL of the running processes."""
    if database.read_only == read_only:
        return
    database.read_only = read_only
    Database.objects.filter(pk=database.pk).update(read_only=read_only)
    if database.status == DatabaseStatus.ACTIVE:
        database_status_set(database=database, status=DatabaseStatus.CHANGE_PENDING)
        enqueue_node_task("console.tasks.database_apply_task", database)


def enqueue_node_task(task_name: str, database: Database) -> None:
    """Send a node task for `database` to its node's queue once the transaction commits."""
    db_id, queue = database.pk, database.node.queue
    _on_commit(lambda: current_app.send_task(task_name, args=[db_id], queue=queue))


def database_status_set(*, database: Database, status: str, reason: str = "") -> None:
    """The one transition function of Database.status; refuses moves the machine does not allow."""
    current = database.status
    if status != current and status not in Database.TRANSITIONS.get(current, set()):
        raise ApplicationError(f"cannot move database from {current} to {status}")
    database.status = status
    database.status_reason = reason[:2000]
    Database.objects.filter(pk=database.pk).update(
        status=status, status_reason=database.status_reason
    )


# ---------------------------------------------------------------- databases: node side


def database_provision(*, database_id: int) -> None:
    """Node side of create: start the processes; active on success, error with the reason."""
    database = Database.objects.select_related("node").filter(pk=database_id).first()
    if database is None or database.status != DatabaseStatus.PENDING:
        return
    spec = database_spec(database)
    try:
        provisioning.start_database(spec)
    except Exception as exc:
        log.warning("database %s failed to start: %s", database.name, exc)
        for shard in spec.shards:
            provisioning.stop_shard(spec, shard)
        database_status_set(database=database, status=DatabaseStatus.ERROR, reason=str(exc))
        return
    database_status_set(database=database, status=DatabaseStatus.ACTIVE)


def database_apply(*, database_id: int) -> None:
    database = Database.objects.select_related("node").filter(pk=database_id).first()
    if database is None or database.status == DatabaseStatus.DELETE_PENDING:
        return
    spec = database_spec(database)
    try:
        if provisioning.dead_shards(spec):
            provisioning.start_database(spec)
        provisioning.apply_runtime_config(spec)
    except Exception as exc:
        database_status_set(database=database, status=DatabaseStatus.ERROR, reason=str(exc))
        return
    database_status_set(database=database, status=DatabaseStatus.ACTIVE)


def database_remove(*, database_id: int) -> None:
    database = Database.objects.select_related("node").filter(pk=database_id).first()
    if database is None:
        return
    provisioning.remove_database(database_spec(database))
    database.delete()


def node_reconcile(*, node_name: str) -> list[str]:
    """Restart dead processes of active databases on this node; return the names restarted."""
    restarted: list[str] = []
    databases = Database.objects.select_related("node").filter(
        node__name=node_name, status=DatabaseStatus.ACTIVE
    )
    for database in databases:
        spec = database_spec(database)
        dead = provisioning.dead_shards(spec)
        if not dead:
            continue
        try:
            for shard in dead:
                provisioning.start_shard(spec, shard)
        except Exception as exc:
            database_status_set(database=database, status=DatabaseStatus.ERROR, reason=str(exc))
            audit_record(
                actor=None, action="database.restart_failed", obj=database, detail=str(exc)[:500]
            )
            continue
        shards = ", ".join(str(s.index) for s in dead)
        audit_record(
            actor=None,
            action="database.restart",
            obj=database,
            detail=f"process of shard(s) {shards} had died; restarted by reconcile",
        )
        restarted.append(database.name)
    return restarted


# ---------------------------------------------------------------- users
# Admins and viewers are created, changed, disabled and deleted here only (the Users page,
# `/v1/users`, `manage.py console_user`); every change is audited. The last active admin can
# never be deleted, disabled or made a viewer (Redis Enterprise refuses the same with
# `change_last_admin_role_not_allowed`, 406).

# A sign-in name: what the page and HTTP basic auth take (Redis Enterprise: no &,<,>,").
USER_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,149}$")
USER_PASSWORD_MAX_CHARS = 512
# Redis Enterprise's role names that mean ours (its viewers read, never change).
ROLE_ALIASES = {
    "admin": User.Role.ADMIN,
    "viewer": User.Role.VIEWER,
    "cluster_viewer": User.Role.VIEWER,
    "db_viewer": User.Role.VIEWER,
}
LAST_ADMIN = "change_last_admin_role_not_allowed"


def _role(role: str) -> str:
    try:
        return ROLE_ALIASES[role]
    except KeyError:
        raise ApplicationError(
            f"unknown role {role!r}: admin or viewer (cluster_viewer, db_viewer)",
            field="role",
        ) from None


def _check_password(password: str, user: User | None) -> None:
    if len(password) > USER_PASSWORD_MAX_CHARS:
        raise ApplicationError(
            f"a password is at most {USER_PASSWORD_MAX_CHARS} characters", field="password"
        )
    try:
        password_validation.validate_password(password, user)
    except ValidationError as exc:
        raise ApplicationError(
            " ".join(exc.messages), field="password", code="password_not_complex"
        ) from None


def _check_email(email: str, user: User | None) -> None:
    if not email:
        return
    try:
        validate_email(email)
    except ValidationError:
        raise ApplicationError(f"{email!r} is not an e-mail address", field="email") from None
    taken = User.objects.filter(email__iexact=email)
    if user is not None:
        taken = taken.exclude(pk=user.pk)
    if taken.exists():
        raise ApplicationError(
            "the e-mail address is taken", field="email", code="email_already_exists", status=409
        )


def _other_active_admins(user: User) -> int:
    return (
        User.objects.filter(is_active=True, role=User.Role.ADMIN)
        .exclude(pk=user.pk)
        .select_for_update()
        .count()
    )


def _keep_an_admin(user: User, what: str) -> None:
    if user.is_active and user.role == User.Role.ADMIN and not _other_active_admins(user):
        raise ApplicationError(
            f"{user.username} is the last admin: it cannot be {what} (make another admin first)",
            code=LAST_ADMIN,
            status=406,
        )


def user_create(
    *, actor: User | None, name: str, password: str, role: str, email: str = ""
) -> User:
    """A new user who can sign in with `name` and `password` at once."""
    if not USER_NAME_RE.match(name):
        raise ApplicationError(
            "a user name is 1-150 letters, digits and . _ @ + -, starting with a letter or digit",
            field="name",
        )
    wanted_role = _role(role)
    _check_email(email, None)
    _check_password(password, User(username=name, email=email))
    with transaction.atomic():
        if User.objects.filter(username__iexact=name).exists():
            raise ApplicationError(
                f"a user named {name} exists", field="name", code="name_already_exists", status=409
            )
        user = User.objects.create_user(
            username=name,
            email=email,
            password=password,
            role=wanted_role,
            is_staff=wanted_role == User.Role.ADMIN,
        )
        audit_record(actor=actor, action="user.create", obj=user, detail=f"role {wanted_role}")
    return user


def user_update(
    *,
    actor: User | None,
    user: User,
    role: str | None = None,
    email: str | None = None,
    password: str | None = None,
    active: bool | None = None,
) -> User:
    """Change a user's role, e-mail, password or whether they may sign in (None: unchanged).
    A new password or a disabled user ends that user's sessions."""
    wanted_role = _role(role) if role is not None else None
    if email is not None:
        _check_email(email, user)
    if password is not None:
        _check_password(password, user)
    changes: list[str] = []
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user.pk)
        if wanted_role is not None and wanted_role != user.role:
            if wanted_role != User.Role.ADMIN:
                _keep_an_admin(user, f"made a {wanted_role}")
            user.role = wanted_role
            user.is_staff = wanted_role == User.Role.ADMIN
            changes.append(f"role {wanted_role}")
        if active is not None and active != user.is_active:
            if not active:
                _keep_an_admin(user, "disabled")
            user.is_active = active
            changes.append("enabled" if active else "disabled")
        if email is not None and email != user.email:
            user.email = email
            changes.append("e-mail changed")
        if password is not None:
            user.set_password(password)
            changes.append("password changed")
        if changes:
            user.save()
            audit_record(actor=actor, action="user.update", obj=user, detail=", ".join(changes))
    return user


def user_delete(*, actor: User | None, user: User) -> None:
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user.pk)
        _keep_an_admin(user, "deleted")
        audit_record(actor=actor, action="user.delete", obj=user)
        user.delete()
