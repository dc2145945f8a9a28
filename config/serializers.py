"""The bdb resource as the API shows it: the cluster domain's fields and Replica Of's."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from console.models import Database
from console.serializers import BdbCoreSerializer, BdbUpdateSerializer
from replication import selectors as replica_selectors
from replication.serializers import (
    BdbReplicaUpdateSerializer,
    ReplicaSourceSerializer,
    replica_sources_data,
)


class BdbSerializer(BdbCoreSerializer):
    """GET /v1/bdbs/{uid}; never carries a secret. Reads what `bdb_queryset` prefetched."""

    replica_sources = serializers.SerializerMethodField()
    replica_sync = serializers.SerializerMethodField()

    class Meta(BdbCoreSerializer.Meta):
        fields = [*BdbCoreSerializer.Meta.fields, "replica_sources", "replica_sync"]
        read_only_fields = fields

    @extend_schema_field(ReplicaSourceSerializer(many=True))
    def get_replica_sources(self, obj: Database) -> list[dict[str, Any]]:
        return replica_sources_data(replica_selectors.sources_of(obj))

    def get_replica_sync(self, obj: Database) -> str:
        return replica_selectors.replica_sync_of(obj)


class BdbPutSerializer(BdbUpdateSerializer, BdbReplicaUpdateSerializer):
    """The body of PUT /v1/bdbs/{uid} as the schema shows it: the database's part and its
    Replica Of part (the view reads each with its own serializer)."""
