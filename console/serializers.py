"""API shapes (Redis Enterprise field names). Shape only: rules live in console.services."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from console.certificates import MAX_CLIENT_CERTIFICATES, PEM_MAX_CHARS
from console.fields import StrictCharField, StrictIntegerField, StrictRegexField
from console.models import Certificate, Database, Node, Persistence, Shard, TlsMode, User
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


class ShardSerializer(serializers.ModelSerializer[Shard]):
    """One shard of a database (`shards` of the bdb; Redis Enterprise's `shard_list` has only
    the uids). `assigned_slots` is Redis Enterprise's name in its shard object."""

    uid = serializers.IntegerField(source="pk", read_only=True)
    assigned_slots = serializers.SerializerMethodField()

    class Meta:
        model = Shard
        fields = ["uid", "index", "port", "assigned_slots"]
        read_only_fields = fields

    def get_assigned_slots(self, obj: Shard) -> str:
        return "{}-{}".format(*obj.slot_range())


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
    # Redis Enterprise: the uids of the database's shards (integers); their details are ours.
    shard_list = serializers.SerializerMethodField()
    authentication_ssl_client_certs = serializers.SerializerMethodField()
    shards = serializers.SerializerMethodField()

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
            "shards",
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
                "oss_cluster_api_preferred_ip_type": "internal",
            }
        ]

    def get_shard_list(self, obj: Database) -> list[int]:
        return [s.pk for s in obj.shards.all()]

    @extend_schema_field(ShardSerializer(many=True))
    def get_shards(self, obj: Database) -> list[dict[str, Any]]:
        return list(ShardSerializer(obj.shards.all(), many=True).data)


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
    shard_list = serializers.SerializerMethodField()

    class Meta:
        model = Node
        fields = ["uid", "hostname", "addr", "status", "total_memory", "shard_count", "shard_list"]

    def get_status(self, obj: Node) -> str:
        return "active"

    def get_total_memory(self, obj: Node) -> int:
        import psutil

        return int(psutil.virtual_memory().total)

    def get_shard_count(self, obj: Node) -> int:
        return sum(d.shards_count for d in obj.databases.all())

    def get_shard_list(self, obj: Node) -> list[int]:
        return [s.pk for d in obj.databases.all() for s in d.shards.all()]


class CertificateSerializer(serializers.ModelSerializer[Certificate]):
    """A certificate without its private key: Redis Enterprise's certificate object (`name`,
    `certificate`; never `key`, a secret) and what we show besides."""

    name = serializers.CharField(source="kind", read_only=True)
    certificate = serializers.CharField(source="certificate_pem", read_only=True)
    expiry = serializers.DateTimeField(source="not_after", read_only=True)

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
        read_only_fields = fields


class CertificatesSerializer(serializers.Serializer[Any]):
    """GET /v1/cluster/certificates: Redis Enterprise's `<name>_cert` keys with the PEM (its
    `<name>_key` keys are left out: a private key never leaves the console) and the details."""

    proxy_cert = serializers.CharField()
    syncer_cert = serializers.CharField()
    certificates = CertificateSerializer(many=True)


def certificates_data(certificates: Sequence[Certificate]) -> dict[str, Any]:
    data: dict[str, Any] = {f"{c.kind}_cert": c.certificate_pem for c in certificates}
    data["certificates"] = CertificateSerializer(certificates, many=True).data
    return data


class CertificateReplaceSerializer(serializers.Serializer[Any]):
    """Redis Enterprise's certificate object as it is sent: `name` (proxy, syncer), PEMs.
    An unknown name is the service's to refuse (403, as Redis Enterprise answers)."""

    name = StrictCharField(max_length=64)
    certificate = StrictCharField(trim_whitespace=False, max_length=PEM_MAX_CHARS)
    key = StrictCharField(trim_whitespace=False, write_only=True, max_length=PEM_MAX_CHARS)


class CertificatesReplaceSerializer(serializers.Serializer[Any]):
    """PUT /v1/cluster/certificates: `{"certificates": [{"name", "certificate", "key"}, ...]}`."""

    certificates = serializers.ListField(
        child=CertificateReplaceSerializer(), allow_empty=False, max_length=16
    )


class ClusterSerializer(serializers.Serializer[Any]):
    name = serializers.CharField()
    created_time = serializers.DateTimeField()
    nodes_count = serializers.IntegerField()
    databases_count = serializers.IntegerField()
    db_port_range = serializers.ListField(child=serializers.IntegerField())
    proxy_certificate = serializers.CharField()
    syncer_certificate = serializers.CharField()


# Redis Enterprise's role for each of ours (its user object: admin, cluster_viewer, db_viewer…).
RE_ROLES: dict[str, str] = {User.Role.ADMIN: "admin", User.Role.VIEWER: "cluster_viewer"}


class UserSerializer(serializers.ModelSerializer[User]):
    """Redis Enterprise's user object: `name` is the sign-in name; `status` active or locked
    (disabled); `role` admin or cluster_viewer (our viewer: reads everything but secrets)."""

    uid = serializers.IntegerField(source="pk", read_only=True)
    name = serializers.CharField(source="username", read_only=True)
    email = serializers.CharField(read_only=True)  # "" when none was given
    role = serializers.SerializerMethodField()
    status = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = ["uid", "name", "email", "role", "status"]
        read_only_fields = fields

    def get_role(self, obj: User) -> str:
        return RE_ROLES.get(str(obj.role), "none")

    def get_status(self, obj: User) -> str:
        return "active" if obj.is_active else "locked"


USER_ROLE_CHOICES = ["admin", "viewer", "cluster_viewer", "db_viewer"]


class UserCreateSerializer(serializers.Serializer[Any]):
    """POST /v1/users: `name`, `password`, `role` (admin, or viewer / cluster_viewer /
    db_viewer for a viewer), `email` optional. The service checks the rest."""

    name = StrictCharField(max_length=150)
    password = StrictCharField(trim_whitespace=False, write_only=True, max_length=512)
    role = serializers.ChoiceField(choices=USER_ROLE_CHOICES)
    email = StrictCharField(required=False, allow_blank=True, default="", max_length=254)


class UserUpdateSerializer(serializers.Serializer[Any]):
    """PUT /v1/users/{uid}: what may change; `status` locked disables the user (our addition:
    Redis Enterprise's `status` is read-only)."""

    name = StrictCharField(required=False, max_length=150)
    password = StrictCharField(
        required=False, trim_whitespace=False, write_only=True, max_length=512
    )
    role = serializers.ChoiceField(choices=USER_ROLE_CHOICES, required=False)
    email = StrictCharField(required=False, allow_blank=True, max_length=254)
    status = serializers.ChoiceField(choices=["active", "locked"], required=False)
