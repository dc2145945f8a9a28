"""The cluster domain: cluster, nodes, databases, shards, certificates, users, audit log."""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models

from console.crypto import EncryptedTextField


class User(AbstractUser):
    """A console user: admins do everything, viewers read and never see secrets."""

    class Role(models.TextChoices):
        ADMIN = "admin", "Admin"
        VIEWER = "viewer", "Viewer"

    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)

    @property
    def is_console_admin(self) -> bool:
        return self.is_active and (self.role == self.Role.ADMIN or self.is_superuser)


class Cluster(models.Model):
    """The one installation of the console (a single row)."""

    name = models.CharField(max_length=253)
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Node(models.Model):
    """A host that runs database processes, served by a Celery worker on queue node.<name>."""

    name = models.CharField(max_length=128, unique=True)
    address = models.CharField(max_length=255, default="127.0.0.1")
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name

    @property
    def queue(self) -> str:
        return f"node.{self.name}"


class Certificate(models.Model):
    """One of the cluster's certificates: the proxy (server) or the syncer (client) certificate."""

    class Kind(models.TextChoices):
        PROXY = "proxy", "Proxy certificate"
        SYNCER = "syncer", "Syncer certificate"

    kind = models.CharField(max_length=16, choices=Kind.choices, unique=True)
    certificate_pem = models.TextField()
    private_key_pem = EncryptedTextField()
    subject = models.CharField(max_length=512)
    san = models.JSONField(default=list)
    fingerprint_sha256 = models.CharField(max_length=95)
    not_before = models.DateTimeField()
    not_after = models.DateTimeField()
    updated = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.kind} certificate"


class DatabaseStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    ACTIVE = "active", "Active"
    CHANGE_PENDING = "active-change-pending", "Change pending"
    DELETE_PENDING = "delete-pending", "Delete pending"
    ERROR = "error", "Error"


class Persistence(models.TextChoices):
    DISABLED = "disabled", "None"
    AOF = "aof", "Append-only file (every second)"
    SNAPSHOT = "snapshot", "Snapshot"


class TlsMode(models.TextChoices):
    DISABLED = "disabled", "Disabled"
    REPLICA_SSL = "replica_ssl", "Between databases only"
    ENABLED = "enabled", "All connections"


class Database(models.Model):
    """A Redis database the cluster runs: one redis-server, or N shards forming a Redis Cluster."""

    # Moves of `status`; only console.services.database_status_set changes it.
    TRANSITIONS: ClassVar[dict[str, set[str]]] = {
        DatabaseStatus.PENDING: {
            DatabaseStatus.ACTIVE,
            DatabaseStatus.ERROR,
            DatabaseStatus.DELETE_PENDING,
        },
        DatabaseStatus.ACTIVE: {
            DatabaseStatus.CHANGE_PENDING,
            DatabaseStatus.DELETE_PENDING,
            DatabaseStatus.ERROR,
            DatabaseStatus.ACTIVE,
        },
        DatabaseStatus.CHANGE_PENDING: {
            DatabaseStatus.ACTIVE,
            DatabaseStatus.ERROR,
            DatabaseStatus.DELETE_PENDING,
        },
        DatabaseStatus.ERROR: {
            DatabaseStatus.ACTIVE,
            DatabaseStatus.DELETE_PENDING,
            DatabaseStatus.PENDING,
            DatabaseStatus.ERROR,
        },
        DatabaseStatus.DELETE_PENDING: {DatabaseStatus.ERROR},
    }

    name = models.CharField(max_length=63, unique=True)
    node = models.ForeignKey(Node, on_delete=models.PROTECT, related_name="databases")
    port = models.PositiveIntegerField(unique=True)
    # TLS between databases only (`replica_ssl`): the second endpoint, from the port range, that
    # source URLs and syncers use while applications keep `port`. None in the other modes.
    tls_port = models.PositiveIntegerField(null=True, blank=True, unique=True)
    memory_size = models.PositiveBigIntegerField(help_text="maxmemory in bytes")
    shards_count = models.PositiveSmallIntegerField(default=1)
    persistence = models.CharField(
        max_length=16, choices=Persistence.choices, default=Persistence.DISABLED
    )
    password = EncryptedTextField(blank=True, default="")
    internal_password = EncryptedTextField()
    tls_mode = models.CharField(max_length=16, choices=TlsMode.choices, default=TlsMode.DISABLED)
    enforce_client_authentication = models.BooleanField(default=False)
    # PEM bundle of client certificates accepted besides this cluster's own (e.g. the syncer
    # certificate of another cluster that replicates this database).
    client_certificates = models.TextField(blank=True, default="")
    # A Replica Of destination: its application users may read but not write (the syncer writes
    # as `admin`). Set by Replica Of through console.services.database_read_only_set.
    read_only = models.BooleanField(default=False, editable=False)
    status = models.CharField(
        max_length=32,
        choices=DatabaseStatus.choices,
        default=DatabaseStatus.PENDING,
        editable=False,
    )
    status_reason = models.TextField(blank=True, default="", editable=False)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["id"]

    def __str__(self) -> str:
        return self.name

    @property
    def uid(self) -> int:
        return self.pk

    @property
    def host(self) -> str:
        return self.node.address

    @property
    def is_sharded(self) -> bool:
        return self.shards_count > 1

    @property
    def replication_port(self) -> int:
        """The port source URLs and syncers use: the TLS port with `replica_ssl`."""
        return self.tls_port if self.tls_port is not None else self.port


class Shard(models.Model):
    """One redis-server process of a database; shard 0 listens on the database's port."""

    database = models.ForeignKey(Database, on_delete=models.CASCADE, related_name="shards")
    index = models.PositiveSmallIntegerField()
    port = models.PositiveIntegerField(unique=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["database_id", "index"]
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(fields=["database", "index"], name="shard_unique_index"),
        ]

    def __str__(self) -> str:
        return f"{self.database.name}#{self.index}"

    def slot_range(self) -> tuple[int, int]:
        n = self.database.shards_count
        return 16384 * self.index // n, 16384 * (self.index + 1) // n - 1


class AuditEntry(models.Model):
    """Who did what to which object, and when."""

    created = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    actor_name = models.CharField(max_length=150, help_text="user name, or 'system'")
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=32, db_index=True)
    object_id = models.CharField(max_length=64, blank=True, default="")
    object_name = models.CharField(max_length=255, blank=True, default="")
    detail = models.TextField(blank=True, default="")

    class Meta:
        ordering: ClassVar[list[str]] = ["-created", "-id"]

    def __str__(self) -> str:
        return (
            f"{self.created:%Y-%m-%d %H:%M:%S} {self.actor_name} {self.action} {self.object_name}"
        )
