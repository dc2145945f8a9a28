"""API shapes (Redis Enterprise field names). Shape only: rules live in console.services."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from console.models import Certificate, Database, Node, Persistence, TlsMode


def _enabled(flag: bool) -> str:
    return "enabled" if flag else "disabled"


class BdbCoreSerializer(serializers.ModelSerializer[Database]):
    """The cluster domain's fields of GET /v1/bdbs/{uid}; never a secret. The roof adds the
    Replica Of fields (config.serializers.BdbSerializer)."""

    uid = serializers.IntegerField(source="pk", read_only=True)
    status = serializers.CharField(read_only=True)
    status_reason = serializers.CharField(read_only=True)
    endpoints = serializers.SerializerMethodField()
    data_persistence = serializers.CharField(source="persistence", read_only=True)
    sharding = serializers.BooleanField(source="is_sharded", read_only=True)
    enforce_client_authentication = serializers.SerializerMethodField()
    type = serializers.SerializerMethodField()
    created_time = serializers.DateTimeField(source="created", read_only=True)
    last_changed_time = serializers.DateTimeField(source="updated", read_only=True)
    shard_list = serializers.SerializerMethodField()

    class Meta:
        model = Database
        fields = [
            "uid",
            "name",
            "type",
            "port",
            "memory_size",
            "shards_count",
            "sharding",
            "status",
            "status_reason",
            "endpoints",
            "data_persistence",
            "tls_mode",
            "enforce_client_authentication",
            "shard_list",
            "created_time",
            "last_changed_time",
        ]
        read_only_fields = fields

    def get_type(self, obj: Database) -> str:
        return "redis"

    def get_enforce_client_authentication(self, obj: Database) -> str:
        return _enabled(obj.enforce_client_authentication)

    def get_endpoints(self, obj: Database) -> list[dict[str, Any]]:
        return [
            {
                "uid": f"{obj.pk}:1",
                "addr": [obj.node.address],
                "port": obj.port,
                "addr_type": "external",
                "dns_address_name": f"redis-{obj.port}.{obj.node.name}",
                "oss_cluster_api_preferred_ip_type": "internal" if obj.is_sharded else None,
            }
        ]

    def get_shard_list(self, obj: Database) -> list[dict[str, Any]]:
        return [
            {"index": s.index, "port": s.port, "slots": "{}-{}".format(*s.slot_range())}
            for s in obj.shards.all()
        ]


class ClientCertSerializer(serializers.Serializer[Any]):
    client_cert = serializers.CharField(trim_whitespace=False)


class BdbCreateSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=255)
    memory_size = serializers.IntegerField()
    shards_count = serializers.IntegerField(required=False, default=1)
    port = serializers.IntegerField(required=False, allow_null=True, default=None)
    authentication_redis_pass = serializers.CharField(
        required=False, allow_blank=True, default="", write_only=True, trim_whitespace=False
    )
    data_persistence = serializers.ChoiceField(
        choices=Persistence.values, required=False, default=Persistence.DISABLED
    )
    # The service explains why a mode is refused, so any string is let through to it.
    tls_mode = serializers.CharField(required=False, default=TlsMode.DISABLED)
    enforce_client_authentication = serializers.ChoiceField(
        choices=["enabled", "disabled"], required=False, default="disabled"
    )
    authentication_ssl_client_certs = ClientCertSerializer(many=True, required=False, default=list)


class BdbUpdateSerializer(serializers.Serializer[Any]):
    """PUT /v1/bdbs/{uid}: only what may change; other fields must equal the current values."""

    memory_size = serializers.IntegerField(required=False)
    authentication_redis_pass = serializers.CharField(
        required=False, allow_blank=True, write_only=True, trim_whitespace=False
    )


class NodeSerializer(serializers.ModelSerializer[Node]):
    uid = serializers.IntegerField(source="pk", read_only=True)
    addr = serializers.CharField(source="address", read_only=True)
    hostname = serializers.CharField(source="name", read_only=True)
    status = serializers.SerializerMethodField()
    total_memory = serializers.SerializerMethodField()
    shard_count = serializers.SerializerMethodField()

    class Meta:
        model = Node
        fields = ["uid", "hostname", "addr", "status", "total_memory", "shard_count"]

    def get_status(self, obj: Node) -> str:
        return "active"

    def get_total_memory(self, obj: Node) -> int:
        import psutil

        return int(psutil.virtual_memory().total)

    def get_shard_count(self, obj: Node) -> int:
        return sum(d.shards_count for d in obj.databases.all())


class CertificateSerializer(serializers.ModelSerializer[Certificate]):
    """A certificate without its private key."""

    name = serializers.SerializerMethodField()
    certificate = serializers.CharField(source="certificate_pem")
    expiry = serializers.DateTimeField(source="not_after")

    class Meta:
        model = Certificate
        fields = [
            "name",
            "certificate",
            "subject",
            "san",
            "fingerprint_sha256",
            "not_before",
            "expiry",
        ]

    def get_name(self, obj: Certificate) -> str:
        return f"{obj.kind}_cert"


class CertificateReplaceSerializer(serializers.Serializer[Any]):
    name = serializers.ChoiceField(choices=["proxy", "syncer", "proxy_cert", "syncer_cert"])
    certificate = serializers.CharField(trim_whitespace=False)
    key = serializers.CharField(trim_whitespace=False, write_only=True)


class ClusterSerializer(serializers.Serializer[Any]):
    name = serializers.CharField()
    created_time = serializers.DateTimeField()
    nodes_count = serializers.IntegerField()
    databases_count = serializers.IntegerField()
    db_port_range = serializers.ListField(child=serializers.IntegerField())
