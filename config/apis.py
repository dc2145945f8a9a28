"""The bdb resource of the REST API: a database with its Replica Of fields (Redis Enterprise's
`GET/POST /v1/bdbs`, `GET/PUT/DELETE /v1/bdbs/{uid}`). Thin: shape, selector, services.

A PUT may change the database and its Replica Of part together: every network check runs first,
then both saves commit in one transaction (a refused part undoes the rest)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView
from rest_framework import status
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.serializers import BdbPutSerializer, BdbSerializer
from console import selectors, services
from console.errors import ApplicationError
from console.models import Database, User
from console.schema import DELETED_LATER, STATE_REFUSALS
from console.serializers import BdbCreateSerializer, BdbUpdateSerializer
from replication import apis as replica_apis
from replication import selectors as replica_selectors
from replication import services as replica_services
from replication.serializers import SourceUidSerializer

IMMUTABLE_BDB_FIELDS = {"name": "name", "port": "port", "shards_count": "shards_count"}


def bdb_queryset(user: User) -> QuerySet[Database]:
    """The databases `user` may read, with everything BdbSerializer shows (fixed query count)."""
    return replica_selectors.with_replica_of(selectors.database_list(user=user))


def bdb_get(user: User, uid: int) -> Database:
    database = selectors.database_get_for_user(user=user, uid=uid)
    return bdb_queryset(user).get(pk=database.pk)


def bdb_data(user: User, uid: int) -> dict[str, Any]:
    """The database as GET /v1/bdbs/{uid} shows it (what actions on a database answer)."""
    return dict(BdbSerializer(bdb_get(user, uid)).data)


def tls_changes(data: dict[str, Any]) -> dict[str, Any]:
    """The TLS part of a PUT body as `database_update` arguments (absent: unchanged)."""
    enforce = data.get("enforce_client_authentication")
    certs = data.get("authentication_ssl_client_certs")
    return {
        "tls_mode": data.get("tls_mode"),
        "enforce_client_authentication": None if enforce is None else enforce == "enabled",
        "client_certificates": None if certs is None else [c["client_cert"] for c in certs],
    }


class BdbListApi(APIView):
    @extend_schema(responses=BdbSerializer(many=True))
    def get(self, request: Request) -> Response:
        dbs = bdb_queryset(request.user)  # type: ignore[arg-type]
        return Response(BdbSerializer(dbs, many=True).data)

    @extend_schema(
        request=BdbCreateSerializer,
        responses={201: BdbSerializer},
        extensions={
            STATE_REFUSALS: "the name or port is taken, the node has not that much free memory, "
            "a client certificate is not acceptable, TLS settings do not go together"
        },
    )
    def post(self, request: Request) -> Response:
        body = BdbCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        db = services.database_create(
            actor=request.user,  # type: ignore[arg-type]
            name=body.validated_data["name"],
            memory_size=body.validated_data["memory_size"],
            shards_count=body.validated_data["shards_count"],
            port=body.validated_data["port"],
            password=body.validated_data["authentication_redis_pass"],
            persistence=body.validated_data["data_persistence"],
            tls_mode=body.validated_data["tls_mode"],
            enforce_client_authentication=(
                body.validated_data["enforce_client_authentication"] == "enabled"
            ),
            client_certificates=[
                c["client_cert"] for c in body.validated_data["authentication_ssl_client_certs"]
            ],
        )
        # The row as created (pending): the node may already be starting it.
        return Response(BdbSerializer(db).data, status=status.HTTP_201_CREATED)


class BdbDetailApi(APIView):
    @extend_schema(responses=BdbSerializer)
    def get(self, request: Request, uid: int) -> Response:
        return Response(BdbSerializer(bdb_get(request.user, uid)).data)  # type: ignore[arg-type]

    @extend_schema(
        request=BdbPutSerializer,
        responses=BdbSerializer,
        extensions={
            STATE_REFUSALS: "the database is not active, the node has not that much free memory, "
            "a source is refused (cycle, unknown database, the console's own service, failed "
            "connection check), name/port/shards_count differ from the current ones, the "
            "replica_sync move is not allowed now"
        },
    )
    def put(self, request: Request, uid: int) -> Response:
        actor: User = request.user  # type: ignore[assignment]
        db = selectors.database_get_for_user(user=actor, uid=uid)
        data: Any = request.data
        for field, attr in IMMUTABLE_BDB_FIELDS.items():
            if isinstance(data, dict) and field in data and data[field] != getattr(db, attr):
                raise ApplicationError(f"{field} cannot be changed", field=field)
        body = BdbUpdateSerializer(data=data)
        body.is_valid(raise_exception=True)
        replica = replica_apis.bdb_replica_change(database=db, data=data)  # checks the network
        with transaction.atomic():
            db = services.database_update(
                actor=actor,
                database=db,
                memory_size=body.validated_data.get("memory_size"),
                password=body.validated_data.get("authentication_redis_pass"),
                **tls_changes(body.validated_data),
            )
            replica.apply(actor=actor)
        return Response(BdbSerializer(bdb_get(actor, db.pk)).data)

    @extend_schema(
        responses={204: None},
        extensions={
            STATE_REFUSALS: "it is a source of other databases, or already being deleted",
            DELETED_LATER: "status delete-pending until its node has removed it, then 404",
        },
    )
    def delete(self, request: Request, uid: int) -> Response:
        db = selectors.database_get_for_user(user=request.user, uid=uid)  # type: ignore[arg-type]
        replica_services.database_delete(actor=request.user, database=db)  # type: ignore[arg-type]
        return Response(status=status.HTTP_204_NO_CONTENT)


class SchemaApi(SpectacularAPIView):
    """GET /v1/schema: the OpenAPI schema (YAML, or JSON when asked), for signed-in users; its
    errors are JSON like every other answer under /v1/."""

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        if response.status_code >= 400:
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = "application/json"
        return super().finalize_response(request, response, *args, **kwargs)


class BdbReplicaSyncRestartApi(replica_apis.ReplicaSyncRestartApi):
    """POST /v1/bdbs/{uid}/actions/replica_sync_restart, answering with the database."""

    @extend_schema(
        request=None,
        responses=BdbSerializer,
        extensions={STATE_REFUSALS: "the database has no Replica Of sources"},
    )
    def post(self, request: Request, uid: int) -> Response:
        return super().post(request, uid)


class BdbCredentialsUpdateApi(replica_apis.ReplicaCredentialsUpdateApi):
    """POST /v1/bdbs/{uid}/actions/update_credentials, answering with the database."""

    @extend_schema(
        request=SourceUidSerializer,
        responses=BdbSerializer,
        extensions={STATE_REFUSALS: "no such source, or an external one"},
    )
    def post(self, request: Request, uid: int) -> Response:
        return super().post(request, uid)


class BdbFlushApi(replica_apis.FlushApi):
    """PUT /v1/bdbs/{uid}/flush (Redis Enterprise's path), answering with the database."""

    @extend_schema(
        request=None,
        responses=BdbSerializer,
        extensions={
            STATE_REFUSALS: "the database is not active, or it is a destination whose sync is "
            "enabled or paused"
        },
    )
    def put(self, request: Request, uid: int) -> Response:
        return super().put(request, uid)


class BdbResetAdminPassApi(replica_apis.ResetAdminPassApi):
    """PUT /v1/bdbs/{uid}/reset_admin_pass (Redis Enterprise's path of "regenerate password"),
    answering with the database (never with the password: see actions/replica_source_url)."""

    @extend_schema(
        request=None,
        responses=BdbSerializer,
        extensions={STATE_REFUSALS: "the database is not active, or its processes refuse"},
    )
    def put(self, request: Request, uid: int) -> Response:
        return super().put(request, uid)
