"""API shapes of Replica Of (Redis Enterprise `replica_sources` / `syncer_sources` field names)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from replication.endpoints import internal_source_url
from replication.live import LiveSourceSerializer
from replication.models import ReplicaSource, ReplicaSync
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


class ReplicaSourceSerializer(LiveSourceSerializer):
    """One source as GET shows it: its configuration and its live fields; never a password."""

    uri = serializers.SerializerMethodField()
    compression = serializers.IntegerField(read_only=True)
    encryption = serializers.BooleanField(read_only=True)
    server_cert = serializers.CharField(read_only=True)
    client_cert = serializers.CharField(read_only=True)
    replication_tls_sni = serializers.CharField(read_only=True)

    def get_uri(self, obj: ReplicaSource) -> str:
        return source_uri_redacted(obj)


def replica_sources_data(sources: list[ReplicaSource]) -> list[dict[str, Any]]:
    return list(ReplicaSourceSerializer(sources, many=True).data)


class ReplicaSourceInputSerializer(serializers.Serializer[Any]):
    """One wanted source in PUT /v1/bdbs/{uid}: a URL, or `bdb_uid` for a database of this
    cluster (its URL is then built with the current internal password)."""

    uri = serializers.CharField(required=False, allow_blank=True, default="", max_length=4096)
    bdb_uid = serializers.IntegerField(required=False, allow_null=True, default=None)
    compression = serializers.IntegerField(required=False, default=0, min_value=0, max_value=6)
    encryption = serializers.BooleanField(required=False, default=False)
    server_cert = serializers.CharField(
        required=False, allow_blank=True, default="", trim_whitespace=False
    )
    client_cert = serializers.CharField(
        required=False, allow_blank=True, default="", trim_whitespace=False
    )
    replication_tls_sni = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=253
    )


class BdbReplicaUpdateSerializer(serializers.Serializer[Any]):
    # The service refuses more than MAX_SOURCES with its own message.
    replica_sources = ReplicaSourceInputSerializer(many=True, required=False)
    replica_sync = serializers.ChoiceField(choices=ReplicaSync.values, required=False)
    check_connection = serializers.BooleanField(required=False, default=True)


class SourceUidSerializer(serializers.Serializer[Any]):
    source_uid = serializers.IntegerField(min_value=1)


class SyncStatsQuerySerializer(serializers.Serializer[Any]):
    interval = serializers.ChoiceField(
        choices=["1sec", "10sec", "1min", "5min", "15min", "1hour"], required=False, default="1min"
    )
    stime = serializers.DateTimeField(required=False, allow_null=True, default=None)
    etime = serializers.DateTimeField(required=False, allow_null=True, default=None)
