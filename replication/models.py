"""Replica Of: a destination's sync state and its sources."""

from __future__ import annotations

from typing import ClassVar

from django.db import models

from console.crypto import EncryptedTextField
from console.models import Database
from replication.syncer.urls import UrlError, parse_redis_url


class ReplicaSync(models.TextChoices):
    DISABLED = "disabled", "Disabled"
    ENABLED = "enabled", "Enabled"
    PAUSED = "paused", "Paused"
    STOPPED = "stopped", "Stopped"


class SourceStatus(models.TextChoices):
    SYNCING = "syncing", "Syncing"
    IN_SYNC = "in-sync", "Synced"
    OUT_OF_SYNC = "out-of-sync", "Reconnecting"


class ReplicaOf(models.Model):
    """The Replica Of state of one destination database (one row per destination)."""

    # Every move of `replica_sync`; replication.services._replica_sync_move is the only code that
    # changes it and checks against this (staying in a state, e.g. enabled with a new generation
    # after the sources changed, is always allowed). `disabled` is reached only by removing every
    # source.
    TRANSITIONS: ClassVar[dict[str, set[str]]] = {
        ReplicaSync.DISABLED: {ReplicaSync.ENABLED},
        ReplicaSync.ENABLED: {ReplicaSync.PAUSED, ReplicaSync.STOPPED, ReplicaSync.DISABLED},
        ReplicaSync.PAUSED: {ReplicaSync.ENABLED, ReplicaSync.STOPPED, ReplicaSync.DISABLED},
        ReplicaSync.STOPPED: {ReplicaSync.ENABLED, ReplicaSync.DISABLED},
    }
    # The moves an operator may ask for through `replica_sync` (Redis Enterprise's).
    OPERATOR_MOVES: ClassVar[dict[str, set[str]]] = {
        ReplicaSync.DISABLED: {ReplicaSync.ENABLED},
        ReplicaSync.ENABLED: {ReplicaSync.PAUSED, ReplicaSync.STOPPED},
        ReplicaSync.PAUSED: {ReplicaSync.ENABLED, ReplicaSync.STOPPED},
        ReplicaSync.STOPPED: {ReplicaSync.ENABLED},
    }

    destination = models.OneToOneField(
        Database, on_delete=models.CASCADE, related_name="replica_of"
    )
    replica_sync = models.CharField(
        max_length=16, choices=ReplicaSync.choices, default=ReplicaSync.DISABLED, editable=False
    )
    # Bumped on restart and on every change of the source set: a job of an older generation exits.
    generation = models.PositiveIntegerField(default=0, editable=False)
    last_error = models.TextField(blank=True, default="", editable=False)
    # replication.syncer.errors.ErrorKind of `last_error` (the page picks its advice by it).
    last_error_kind = models.CharField(max_length=32, blank=True, default="", editable=False)
    updated = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Replica Of of {self.destination.name}"


class ReplicaSource(models.Model):
    """One place a destination copies from: a database of this cluster or an external URL."""

    destination = models.ForeignKey(
        Database, on_delete=models.CASCADE, related_name="replica_sources"
    )
    uid = models.PositiveSmallIntegerField(help_text="1-based, unique within the destination")
    source_database = models.ForeignKey(
        Database,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="replica_destinations",
        help_text="set for a database of this cluster; its URL is built at use time",
    )
    external_uri = EncryptedTextField(blank=True, default="", help_text="external source URL")
    compression = models.PositiveSmallIntegerField(default=0)
    # The source cluster's sync gateway port, when not the default (compression only).
    gateway_port = models.PositiveIntegerField(null=True, blank=True)
    encryption = models.BooleanField(default=False)
    server_cert = models.TextField(blank=True, default="")
    client_cert = models.TextField(blank=True, default="")
    replication_tls_sni = models.CharField(max_length=253, blank=True, default="")

    # Live status, written by the sync job (about once a second).
    status = models.CharField(
        max_length=16, choices=SourceStatus.choices, default=SourceStatus.SYNCING, editable=False
    )
    lag = models.PositiveBigIntegerField(null=True, blank=True, editable=False)
    # False while the source cannot be sampled: `lag` is then a lower bound ("at least").
    lag_exact = models.BooleanField(default=True, editable=False)
    last_update = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True, default="", editable=False)
    last_error_kind = models.CharField(max_length=32, blank=True, default="", editable=False)
    rdb_size = models.PositiveBigIntegerField(null=True, blank=True, editable=False)
    rdb_transferred = models.PositiveBigIntegerField(null=True, blank=True, editable=False)
    progress = models.FloatField(null=True, blank=True, editable=False)
    commands_applied = models.PositiveBigIntegerField(default=0, editable=False)
    ingress_bytes = models.PositiveBigIntegerField(default=0, editable=False)  # on the wire
    ingress_bytes_decompressed = models.PositiveBigIntegerField(default=0, editable=False)
    # Reconnect attempts since the link was last in sync (shown while "Reconnecting").
    retries = models.PositiveIntegerField(default=0, editable=False)

    class Meta:
        ordering: ClassVar[list[str]] = ["destination_id", "uid"]
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(fields=["destination", "uid"], name="source_unique_uid"),
        ]

    def __str__(self) -> str:
        return f"source {self.uid} of {self.destination.name}"

    @property
    def name(self) -> str:
        """What the operator sees: the database's name, or host:port of an external source."""
        if self.source_database_id is not None:
            return self.source_database.name if self.source_database else "?"
        try:
            return parse_redis_url(self.external_uri).address
        except UrlError:
            return "(invalid URL)"


class ReplicaEvent(models.Model):
    """One thing a destination's sync did and why (full sync, partial resync, reconnect, flush,
    stop): the operator's first stop when something went wrong. The last `KEEP` per destination
    are kept."""

    KEEP: ClassVar[int] = 500

    destination = models.ForeignKey(
        Database, on_delete=models.CASCADE, related_name="replica_events"
    )
    time = models.DateTimeField(db_index=True)
    kind = models.CharField(max_length=32)  # replication.syncer.events.EventKind, or job_*
    source_uid = models.PositiveSmallIntegerField(null=True, blank=True)
    message = models.TextField()

    class Meta:
        ordering: ClassVar[list[str]] = ["-time", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} of {self.destination_id} at {self.time:%Y-%m-%d %H:%M:%S}"


class VerifyState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class VerifyRun(models.Model):
    """One comparison of a destination with its sources (replication.syncer.verify); the last
    `KEEP` per destination are kept."""

    KEEP: ClassVar[int] = 10
    ACTIVE: ClassVar[tuple[str, ...]] = (VerifyState.QUEUED, VerifyState.RUNNING)

    destination = models.ForeignKey(Database, on_delete=models.CASCADE, related_name="verify_runs")
    state = models.CharField(
        max_length=16, choices=VerifyState.choices, default=VerifyState.QUEUED, editable=False
    )
    actor_name = models.CharField(max_length=150, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    started = models.DateTimeField(null=True, blank=True, editable=False)
    finished = models.DateTimeField(null=True, blank=True, editable=False)
    rate = models.FloatField(null=True, blank=True, help_text="keys per second; empty: unbounded")
    ttl_tolerance_ms = models.PositiveIntegerField(default=1000)
    keys_done = models.PositiveBigIntegerField(default=0, editable=False)
    keys_total = models.PositiveBigIntegerField(default=0, editable=False)
    eta_s = models.FloatField(null=True, blank=True, editable=False)
    # VerifyReport.as_dict(): totals, per source counts and sample keys (never a secret).
    result = models.JSONField(default=dict, blank=True, editable=False)
    error = models.TextField(blank=True, default="", editable=False)
    cancel_requested = models.BooleanField(default=False, editable=False)
    # Set by every progress save: a running run not updated for `STALE_S` lost its worker.
    updated = models.DateTimeField(null=True, blank=True, editable=False)

    STALE_S: ClassVar[int] = 120

    class Meta:
        ordering: ClassVar[list[str]] = ["-created", "-id"]

    def __str__(self) -> str:
        return f"verify {self.pk} of {self.destination_id} ({self.state})"

    @property
    def progress(self) -> float | None:
        if self.state == VerifyState.DONE:
            return 100.0
        if not self.keys_total:
            return None
        return min(100.0, 100.0 * self.keys_done / self.keys_total)


class AlertName(models.TextChoices):
    """Redis Enterprise's Replica Of source alerts (its `bdb_replica_src_*` settings)."""

    HIGH_SYNCER_LAG = "replica_src_high_syncer_lag", "High syncer lag"
    CONNECTION_ERROR = "replica_src_syncer_connection_error", "Connection error"
    GENERAL_ERROR = "replica_src_syncer_general_error", "Sync stopped with an error"


class AlertSettings(models.Model):
    """A destination's alert settings and where alerts are delivered (one row per destination,
    made with the defaults when first needed)."""

    destination = models.OneToOneField(
        Database, on_delete=models.CASCADE, related_name="replica_alert_settings"
    )
    high_syncer_lag_enabled = models.BooleanField(default=True)
    high_syncer_lag_threshold_ms = models.PositiveIntegerField(default=10_000)
    connection_error_enabled = models.BooleanField(default=True)
    general_error_enabled = models.BooleanField(default=True)
    # Comma-separated e-mail addresses; empty: the e-mail addresses of the admins.
    email_to = models.TextField(blank=True, default="")
    # JSON is POSTed here on every raise and clear; it may hold a token: never shown to viewers.
    webhook_url = EncryptedTextField(blank=True, default="")

    def __str__(self) -> str:
        return f"alert settings of {self.destination_id}"


class ReplicaAlert(models.Model):
    """The state of one alert of one source of a destination: raised or cleared, and when."""

    destination = models.ForeignKey(
        Database, on_delete=models.CASCADE, related_name="replica_alerts"
    )
    source_uid = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=64, choices=AlertName.choices)
    state = models.BooleanField(default=False, editable=False)
    change_time = models.DateTimeField(editable=False)
    # What was sampled when the state changed (lag, threshold, error): never a secret.
    change_value = models.JSONField(default=dict, editable=False)

    class Meta:
        ordering: ClassVar[list[str]] = ["destination_id", "source_uid", "name"]
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(
                fields=["destination", "source_uid", "name"], name="alert_unique_per_source"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} of {self.destination_id}/{self.source_uid}"


class CutoverStep(models.TextChoices):
    """The steps of a guided migration, in their order (replication.cutover)."""

    PREFLIGHT = "preflight", "Pre-flight"
    CONFIRM_FLUSH = "confirm_flush", "Confirm the flush"
    FULL_SYNC = "full_sync", "Full sync"
    SYNC_COMPLETE = "sync_complete", "Synchronization complete"
    DRAIN = "drain", "Pause writes and drain"
    VERIFY = "verify", "Verify"
    STOP = "stop", "Stop Replica Of"
    DONE = "done", "Connection details"


class CutoverState(models.TextChoices):
    RUNNING = "running", "Running"  # a driver task works on the step
    WAITING = "waiting", "Waiting for the operator"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class Cutover(models.Model):
    """One guided migration of a destination ("Migrate with Replica Of"): its step, state, the
    times and results of each step; the newest per destination is the one the page shows."""

    ACTIVE: ClassVar[tuple[str, ...]] = (CutoverState.RUNNING, CutoverState.WAITING)
    # A running step whose driver has not renewed its lease for this long lost its worker:
    # reconcile queues a new driver, which continues from the step saved here.
    LEASE_S: ClassVar[int] = 10

    destination = models.ForeignKey(Database, on_delete=models.CASCADE, related_name="cutovers")
    step = models.CharField(
        max_length=16, choices=CutoverStep.choices, default=CutoverStep.PREFLIGHT, editable=False
    )
    state = models.CharField(
        max_length=16, choices=CutoverState.choices, default=CutoverState.RUNNING, editable=False
    )
    actor = models.ForeignKey(
        "console.User", null=True, blank=True, on_delete=models.SET_NULL, editable=False
    )
    actor_name = models.CharField(max_length=150, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)
    finished = models.DateTimeField(null=True, blank=True, editable=False)
    # "Synchronization complete": every source in sync with a lag under this.
    lag_threshold_ms = models.PositiveIntegerField(default=1000)
    # CLIENT PAUSE … WRITE on the sources while the last writes drain; 0: no pause.
    pause_ms = models.PositiveIntegerField(default=3000)
    # The sources to set when the flush is confirmed (JSON list of SourceInput, may hold
    # passwords: encrypted); empty: the destination's current sources, synced again from scratch.
    wanted_sources = EncryptedTextField(blank=True, default="", editable=False)
    # {step: {"started": iso, "finished": iso}}
    times = models.JSONField(default=dict, blank=True, editable=False)
    preflight = models.JSONField(default=dict, blank=True, editable=False)  # PreflightReport
    preflight_overridden = models.BooleanField(default=False, editable=False)
    # The full sync as last seen: per source status, %, bytes; the destination's keys; ETA.
    progress = models.JSONField(default=dict, blank=True, editable=False)
    # The drain: the pause window and the offsets reached, or why it was refused.
    drain = models.JSONField(default=dict, blank=True, editable=False)
    verify_run = models.ForeignKey(
        VerifyRun, null=True, blank=True, on_delete=models.SET_NULL, editable=False
    )
    verify_overridden = models.BooleanField(default=False, editable=False)
    error = models.TextField(blank=True, default="", editable=False)
    lease_token = models.CharField(max_length=32, blank=True, default="", editable=False)
    lease_until = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering: ClassVar[list[str]] = ["-created", "-id"]

    def __str__(self) -> str:
        return f"cutover {self.pk} of {self.destination_id} ({self.step}, {self.state})"
