"""API shapes (Redis Enterprise field names). Shape only: rules live in console.services."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from console.certificates import MAX_CLIENT_CERTIFICATES, PEM_MAX_CHARS
from console.fields import StrictCharField, StrictIntegerField, StrictRegexField
from console.models import Certificate, Database, Node, Persistence, TlsMode
from console.selectors import MAX_UID
from console.services import (
    MAX_PASSWORD_CHARS,
    MAX_SHARDS,
    MIN_MEMORY,
    NAME_RE,
    PASSWORD_RE,
    trusted_certificates,
)


def _enabled(flag: bool) -> str:
    return "enabled" if flag else "disabled"


class ClientCertOutSerializer(serializers.Serializer[Any]):
    client_cert = serializers.CharField(read_only=True)


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
    authentication_ssl_client_certs = serializers.SerializerMethodField()

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
            "tls_port",
            "enforce_client_authentication",
            "authentication_ssl_client_certs",
            "shard_list",
            "created_time",
            "last_changed_time",
        ]
        read_only_fields = fields

    def get_type(self, obj: Database) -> str:
        return "redis"

    def get_enforce_client_authentication(self, obj: Database) -> str:
        return _enabled(obj.enforce_client_authentication)

    @extend_schema_field(ClientCertOutSerializer(many=True))
    def get_authentication_ssl_client_certs(self, obj: Database) -> list[dict[str, str]]:
        # Certificates are public: every reader may see which ones a database trusts.
        return [{"client_cert": pem} for pem in trusted_certificates(obj)]

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
    client_cert = StrictCharField(trim_whitespace=False, max_length=PEM_MAX_CHARS)


class BdbCreateSerializer(serializers.Serializer[Any]):
    """POST /v1/bdbs. The bounds are documented here; console.services decides (and says why)."""

    name = StrictRegexField(NAME_RE.pattern, max_length=63)
    memory_size = StrictIntegerField(min_value=MIN_MEMORY, max_value=MAX_UID)
    shards_count = StrictIntegerField(required=False, default=1, min_value=1, max_value=MAX_SHARDS)
    port = StrictIntegerField(
        required=False,
        allow_null=True,
        default=None,
        min_value=settings.DB_PORT_MIN,
        max_value=settings.DB_PORT_MAX,
    )
    authentication_redis_pass = StrictRegexField(
        PASSWORD_RE.pattern,
        required=False,
        allow_blank=True,
        default="",
        write_only=True,
        trim_whitespace=False,
        max_length=MAX_PASSWORD_CHARS,
    )
    data_persistence = serializers.ChoiceField(
        choices=Persistence.values, required=False, default=Persistence.DISABLED
    )
    # The service explains why a mode is refused, so any string is let through to it.
    tls_mode = StrictCharField(required=False, default=TlsMode.DISABLED)
    enforce_client_authentication = serializers.ChoiceField(
        choices=["enabled", "disabled"], required=False, default="disabled"
    )
    authentication_ssl_client_certs = serializers.ListField(
        child=ClientCertSerializer(),
        required=False,
        default=list,
        max_length=MAX_CLIENT_CERTIFICATES,
    )


class BdbUpdateSerializer(serializers.Serializer[Any]):
    """PUT /v1/bdbs/{uid}: only what may change; other fields must equal the current values.
    TLS: `tls_mode` between `disabled` and `replica_ssl`, client authentication and the list of
    trusted certificates (the whole list; applied without a restart)."""

    tls_mode = StrictCharField(required=False)
    enforce_client_authentication = serializers.ChoiceField(
        choices=["enabled", "disabled"], required=False
    )
    authentication_ssl_client_certs = serializers.ListField(
        child=ClientCertSerializer(), required=False, max_length=MAX_CLIENT_CERTIFICATES
    )

    memory_size = StrictIntegerField(required=False, min_value=MIN_MEMORY, max_value=MAX_UID)
    authentication_redis_pass = StrictRegexField(
        PASSWORD_RE.pattern,
        required=False,
        allow_blank=True,
        write_only=True,
        trim_whitespace=False,
        max_length=MAX_PASSWORD_CHARS,
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
    certificate = StrictCharField(trim_whitespace=False, max_length=PEM_MAX_CHARS)
    key = StrictCharField(trim_whitespace=False, write_only=True, max_length=PEM_MAX_CHARS)


class ClusterSerializer(serializers.Serializer[Any]):
    name = serializers.CharField()
    created_time = serializers.DateTimeField()
    nodes_count = serializers.IntegerField()
    databases_count = serializers.IntegerField()
    db_port_range = serializers.ListField(child=serializers.IntegerField())
