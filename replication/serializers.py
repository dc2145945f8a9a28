"""API shapes of Replica Of (Redis Enterprise `replica_sources` / `syncer_sources` field names)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from console.certificates import PEM_MAX_CHARS
from console.fields import StrictBooleanField, StrictCharField, StrictIntegerField
from console.selectors import MAX_UID
from replication.endpoints import internal_source_url
from replication.live import LiveSourceSerializer
from replication.models import (
    AlertName,
    AlertSettings,
    Cutover,
    CutoverStep,
    ReplicaAlert,
    ReplicaEvent,
    ReplicaSource,
    ReplicaSync,
    VerifyRun,
)
from replication.series import INTERVALS_S
from replication.sources import MAX_SOURCES
from replication.syncer.urls import UrlError, parse_redis_url


def source_uri_redacted(source: ReplicaSource) -> str:
    """The source's URL with the password replaced by `***` (what GET shows, and what a PUT may
    send back unchanged to keep the source)."""
    if source.source_database is not None:
        return internal_source_url(source.source_database, redact=True)
    try:
        return parse_redis_url(source.external_uri).redacted()
    except UrlError:
        return "(invalid URL)"


# Fields of Redis Enterprise's syncer_sources object that have no value yet (before a full sync
# or before the first lag sample): left out of the API's answer rather than `null`, which
# Redis Enterprise never sends where its type is an integer or a string.
RE_FIELDS_ABSENT_WHEN_UNKNOWN = ("lag", "rdb_size", "rdb_transferred", "last_update")


class ReplicaSourceSerializer(LiveSourceSerializer):
    """One source as GET shows it: its configuration and its live fields; never a password."""

    uri = serializers.SerializerMethodField()
    compression = serializers.IntegerField(read_only=True)
    gateway_port = serializers.IntegerField(read_only=True, allow_null=True)
    encryption = serializers.BooleanField(read_only=True)
    server_cert = serializers.CharField(read_only=True)
    client_cert = serializers.CharField(read_only=True)
    replication_tls_sni = serializers.CharField(read_only=True)

    def get_uri(self, obj: ReplicaSource) -> str:
        return source_uri_redacted(obj)

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = dict(super().to_representation(instance))
        for name in RE_FIELDS_ABSENT_WHEN_UNKNOWN:
            if data.get(name) is None:
                data.pop(name, None)
        return data


def replica_sources_data(sources: list[ReplicaSource]) -> list[dict[str, Any]]:
    return list(ReplicaSourceSerializer(sources, many=True).data)


def _pem_field() -> StrictCharField:
    """A certificate of a source: optional, one PEM block (the service checks the rest)."""
    return StrictCharField(
        required=False,
        allow_blank=True,
        default="",
        trim_whitespace=False,
        max_length=PEM_MAX_CHARS,
    )


class ReplicaSourceInputSerializer(serializers.Serializer[Any]):
    """One wanted source in PUT /v1/bdbs/{uid}: a URL, or `bdb_uid` for a database of this
    cluster (its URL is then built with the current internal password)."""

    uri = StrictCharField(required=False, allow_blank=True, default="", max_length=4096)
    bdb_uid = StrictIntegerField(
        required=False, allow_null=True, default=None, min_value=1, max_value=MAX_UID
    )
    compression = StrictIntegerField(required=False, default=0, min_value=0, max_value=6)
    gateway_port = StrictIntegerField(
        required=False, allow_null=True, default=None, min_value=1, max_value=65535
    )
    encryption = StrictBooleanField(required=False, default=False)
    server_cert = _pem_field()
    client_cert = _pem_field()
    replication_tls_sni = StrictCharField(
        required=False, allow_blank=True, default="", max_length=253
    )


class BdbReplicaUpdateSerializer(serializers.Serializer[Any]):
    # The service refuses more than MAX_SOURCES with its own message.
    replica_sources = ReplicaSourceInputSerializer(many=True, required=False)
    replica_sync = serializers.ChoiceField(choices=ReplicaSync.values, required=False)
    check_connection = StrictBooleanField(required=False, default=True)
    # Save even though the pre-flight of the new sources failed (audited).
    preflight_override = StrictBooleanField(required=False, default=False)


class SourceUidSerializer(serializers.Serializer[Any]):
    source_uid = StrictIntegerField(min_value=1, max_value=MAX_SOURCES)


class SyncIntervalSerializer(serializers.Serializer[Any]):
    """One interval of a source's series (replication.series.source_intervals)."""

    interval = serializers.CharField()
    stime = serializers.DateTimeField()
    etime = serializers.DateTimeField()
    ingress_bytes = serializers.IntegerField()
    ingress_bytes_decompressed = serializers.IntegerField()
    commands = serializers.IntegerField()
    lag = serializers.IntegerField(allow_null=True, help_text="largest lag of the interval, ms")


class SourceStatsSerializer(serializers.Serializer[Any]):
    uid = serializers.IntegerField()
    intervals = SyncIntervalSerializer(many=True)


class SyncSourceStatsSerializer(serializers.Serializer[Any]):
    """GET /v1/bdbs/{uid}/sync_source_stats[/{source uid}] (schema only)."""

    sync_source_stats = SourceStatsSerializer(many=True)


class SyncStatsQuerySerializer(serializers.Serializer[Any]):
    interval = serializers.ChoiceField(choices=list(INTERVALS_S), required=False, default="1min")
    stime = serializers.DateTimeField(required=False, allow_null=True, default=None)
    etime = serializers.DateTimeField(required=False, allow_null=True, default=None)


class ReplicaEventSerializer(serializers.ModelSerializer[ReplicaEvent]):
    """One event of a destination's sync (GET /v1/bdbs/{uid}/replica_events)."""

    class Meta:
        model = ReplicaEvent
        fields = ["time", "kind", "source_uid", "message"]
        read_only_fields = fields


class ReplicaEventsQuerySerializer(serializers.Serializer[Any]):
    limit = serializers.IntegerField(required=False, default=50, min_value=1, max_value=500)


class ReplicaVerifyRequestSerializer(serializers.Serializer[Any]):
    """POST /v1/bdbs/{uid}/actions/replica_verify."""

    rate = serializers.FloatField(
        required=False,
        allow_null=True,
        default=None,
        min_value=1,
        max_value=10_000_000,
        help_text="at most this many keys per second read from each server (default: unbounded)",
    )
    ttl_tolerance_ms = StrictIntegerField(
        required=False, default=1000, min_value=0, max_value=86_400_000
    )


class VerifyRunSerializer(serializers.ModelSerializer[VerifyRun]):
    """One verify of a destination: state, progress, and its result (counts of equal / missing
    / extra / different / TTL-off / conflicting / unsettled keys with up to 100 samples each,
    per source)."""

    uid = serializers.IntegerField(source="pk", read_only=True)
    actor = serializers.CharField(source="actor_name", read_only=True)
    progress = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = VerifyRun
        fields = [
            "uid",
            "state",
            "actor",
            "created",
            "started",
            "finished",
            "rate",
            "ttl_tolerance_ms",
            "keys_done",
            "keys_total",
            "progress",
            "eta_s",
            "result",
            "error",
            "cancel_requested",
        ]
        read_only_fields = fields


class PreflightCheckSerializer(serializers.Serializer[Any]):
    subject = serializers.CharField()
    name = serializers.CharField()
    level = serializers.ChoiceField(choices=["pass", "warn", "fail"])
    message = serializers.CharField()
    fix = serializers.CharField(allow_blank=True)


class PreflightSerializer(serializers.Serializer[Any]):
    """POST /v1/bdbs/{uid}/actions/replica_preflight (schema only)."""

    checks = PreflightCheckSerializer(many=True)
    estimate = serializers.DictField(child=serializers.FloatField())
    failed = serializers.BooleanField()


class _Enabled(serializers.Serializer[Any]):
    enabled = StrictBooleanField(required=False)


MAX_LAG_THRESHOLD_MS = 86_400_000


@extend_schema_field(
    {
        "oneOf": [
            {"type": "integer", "minimum": 1, "maximum": MAX_LAG_THRESHOLD_MS},
            {"type": "string", "pattern": "^[1-9][0-9]{0,7}$"},
        ]
    }
)
class ThresholdField(serializers.Field):  # type: ignore[type-arg]
    """Redis Enterprise writes thresholds as strings ("10000", ms); a number is taken too."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int | str):
            raise serializers.ValidationError("a number of milliseconds")
        if isinstance(data, str) and not (data.isascii() and data.isdigit()):
            raise serializers.ValidationError("a number of milliseconds")
        value = int(data)
        if not 1 <= value <= MAX_LAG_THRESHOLD_MS:
            raise serializers.ValidationError(f"between 1 and {MAX_LAG_THRESHOLD_MS} ms")
        return value

    def to_representation(self, value: Any) -> str:
        return str(value)


class _EnabledThreshold(serializers.Serializer[Any]):
    enabled = StrictBooleanField(required=False)
    threshold = ThresholdField(required=False)


class _EnabledThresholdOut(serializers.Serializer[Any]):
    enabled = serializers.BooleanField()
    threshold = serializers.CharField(help_text="ms, as a string (Redis Enterprise's type)")


class _EnabledOut(serializers.Serializer[Any]):
    enabled = serializers.BooleanField()


class AlertSettingsSerializer(serializers.Serializer[Any]):
    """GET/PUT /v1/bdbs/{uid}/replica_alert_settings: Redis Enterprise's `bdb_replica_src_*`
    alert settings, and where alerts go (`webhook_url` is never read back: it may hold a token)."""

    bdb_replica_src_high_syncer_lag = _EnabledThreshold(required=False)
    bdb_replica_src_syncer_connection_error = _Enabled(required=False)
    bdb_replica_src_syncer_general_error = _Enabled(required=False)
    email_to = StrictCharField(required=False, allow_blank=True, max_length=2000)
    webhook_url = StrictCharField(
        required=False, allow_blank=True, max_length=2000, write_only=True
    )


class AlertSettingsOutSerializer(serializers.Serializer[Any]):
    """The alert settings as GET and PUT answer them (schema only: `alert_settings_data`)."""

    bdb_replica_src_high_syncer_lag = _EnabledThresholdOut()
    bdb_replica_src_syncer_connection_error = _EnabledOut()
    bdb_replica_src_syncer_general_error = _EnabledOut()
    email_to = serializers.CharField()
    webhook_configured = serializers.BooleanField()


def alert_settings_data(row: AlertSettings) -> dict[str, Any]:
    return {
        "bdb_replica_src_high_syncer_lag": {
            "enabled": row.high_syncer_lag_enabled,
            "threshold": str(row.high_syncer_lag_threshold_ms),
        },
        "bdb_replica_src_syncer_connection_error": {"enabled": row.connection_error_enabled},
        "bdb_replica_src_syncer_general_error": {"enabled": row.general_error_enabled},
        "email_to": row.email_to,
        "webhook_configured": bool(row.webhook_url),
    }


def alert_settings_values(data: dict[str, Any]) -> dict[str, Any]:
    """A checked PUT body as AlertSettings field values."""
    values: dict[str, Any] = {}
    lag = data.get("bdb_replica_src_high_syncer_lag", {})
    if "enabled" in lag:
        values["high_syncer_lag_enabled"] = lag["enabled"]
    if "threshold" in lag:
        values["high_syncer_lag_threshold_ms"] = lag["threshold"]
    for key, field in (
        ("bdb_replica_src_syncer_connection_error", "connection_error_enabled"),
        ("bdb_replica_src_syncer_general_error", "general_error_enabled"),
    ):
        if "enabled" in data.get(key, {}):
            values[field] = data[key]["enabled"]
    for field in ("email_to", "webhook_url"):
        if field in data:
            values[field] = data[field]
    return values


def alert_state_data(
    name: str, alert: ReplicaAlert | None, settings_row: AlertSettings
) -> dict[str, Any]:
    """Redis Enterprise's alert object: enabled, state, threshold, severity, change_time,
    change_value."""
    enabled = {
        AlertName.HIGH_SYNCER_LAG: settings_row.high_syncer_lag_enabled,
        AlertName.CONNECTION_ERROR: settings_row.connection_error_enabled,
        AlertName.GENERAL_ERROR: settings_row.general_error_enabled,
    }[AlertName(name)]
    data: dict[str, Any] = {
        "enabled": enabled,
        "state": bool(alert and alert.state),
        "severity": "WARNING",
    }
    if name == AlertName.HIGH_SYNCER_LAG:
        data["threshold"] = str(settings_row.high_syncer_lag_threshold_ms)
    if alert is not None:
        data["change_time"] = alert.change_time.isoformat().replace("+00:00", "Z")
        data["change_value"] = {"state": alert.state, **alert.change_value}
    return data


class CutoverStartSerializer(serializers.Serializer[Any]):
    """POST /v1/bdbs/{uid}/actions/replica_migrate."""

    # Empty or absent: the destination's current sources, synced again from scratch.
    replica_sources = ReplicaSourceInputSerializer(many=True, required=False)
    lag_threshold_ms = StrictIntegerField(
        required=False,
        default=1000,
        min_value=1,
        max_value=3_600_000,
        help_text="Synchronization complete: every source in sync with a lag under this",
    )
    pause_ms = StrictIntegerField(
        required=False,
        default=3000,
        min_value=0,
        max_value=60_000,
        help_text="CLIENT PAUSE … WRITE on the sources while the last writes drain; 0: no pause",
    )


class CutoverActionSerializer(serializers.Serializer[Any]):
    """POST /v1/bdbs/{uid}/actions/replica_migrate_step."""

    action = serializers.ChoiceField(
        choices=["retry", "override", "confirm_flush", "cutover", "proceed", "cancel"]
    )
    pause_ms = StrictIntegerField(
        required=False, allow_null=True, default=None, min_value=0, max_value=60_000
    )


class CutoverStepSerializer(serializers.Serializer[Any]):
    step = serializers.CharField()
    name = serializers.CharField()
    started = serializers.CharField(allow_null=True)
    finished = serializers.CharField(allow_null=True)


class CutoverConnectionSerializer(serializers.Serializer[Any]):
    host = serializers.CharField()
    port = serializers.IntegerField()
    tls = serializers.BooleanField()
    user = serializers.CharField()
    password_set = serializers.BooleanField()
    uri = serializers.CharField()
    sharded = serializers.BooleanField()


def cutover_steps(cutover: Cutover) -> list[dict[str, Any]]:
    """Every step in order with its start and end times (None: not reached)."""
    return [
        {
            "step": step.value,
            "name": step.label,
            "started": cutover.times.get(step.value, {}).get("started"),
            "finished": cutover.times.get(step.value, {}).get("finished"),
        }
        for step in CutoverStep
    ]


def cutover_connection(cutover: Cutover) -> dict[str, Any]:
    """What to hand to applications: the destination's endpoint for its `default` user."""
    db = cutover.destination
    tls = db.tls_mode == "enabled"
    scheme = "rediss" if tls else "redis"
    auth = "default:<password>@" if db.password else ""
    return {
        "host": db.host,
        "port": db.port,
        "tls": tls,
        "user": "default",
        "password_set": bool(db.password),
        "uri": f"{scheme}://{auth}{db.host}:{db.port}",
        "sharded": db.is_sharded,
    }


class CutoverSerializer(serializers.ModelSerializer[Cutover]):
    """A guided migration: its step and state, each step's times, the pre-flight lines, the
    full sync's progress, the drain, the verify run, and at the end the connection details."""

    uid = serializers.IntegerField(source="pk", read_only=True)
    bdb_uid = serializers.IntegerField(source="destination_id", read_only=True)
    actor = serializers.CharField(source="actor_name", read_only=True)
    steps = serializers.SerializerMethodField()
    verify = serializers.SerializerMethodField()
    connection = serializers.SerializerMethodField()

    class Meta:
        model = Cutover
        fields = [
            "uid",
            "bdb_uid",
            "step",
            "state",
            "actor",
            "created",
            "updated",
            "finished",
            "lag_threshold_ms",
            "pause_ms",
            "steps",
            "preflight",
            "preflight_overridden",
            "progress",
            "drain",
            "verify",
            "verify_overridden",
            "error",
            "connection",
        ]
        read_only_fields = fields

    @extend_schema_field(CutoverStepSerializer(many=True))
    def get_steps(self, cutover: Cutover) -> list[dict[str, Any]]:
        return cutover_steps(cutover)

    @extend_schema_field(VerifyRunSerializer(allow_null=True))
    def get_verify(self, cutover: Cutover) -> dict[str, Any] | None:
        return dict(VerifyRunSerializer(cutover.verify_run).data) if cutover.verify_run else None

    @extend_schema_field(CutoverConnectionSerializer(allow_null=True))
    def get_connection(self, cutover: Cutover) -> dict[str, Any] | None:
        return cutover_connection(cutover) if cutover.step == CutoverStep.DONE else None
