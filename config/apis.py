"""The bdb resource of the REST API: a database with its Replica Of fields (Redis Enterprise's
`GET/POST /v1/bdbs`, `GET/PUT/DELETE /v1/bdbs/{uid}`). Thin: shape, selector, services.

A PUT may change the database and its Replica Of part together: every network check runs first,
then both saves commit in one transaction (a refused part undoes the rest)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.serializers import BdbSerializer
from console import selectors, services
from console.errors import ApplicationError
from console.models import Database, User
from console.serializers import BdbCreateSerializer, BdbUpdateSerializer
from replication import apis as replica_apis
from replication import selectors as replica_selectors
from replication import services as replica_services

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


class BdbListApi(APIView):
    @extend_schema(responses=BdbSerializer(many=True))
    def get(self, request: Request) -> Response:
        dbs = bdb_queryset(request.user)  # type: ignore[arg-type]
        return Response(BdbSerializer(dbs, many=True).data)

    @extend_schema(request=BdbCreateSerializer, responses={201: BdbSerializer})
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

    @extend_schema(request=BdbUpdateSerializer, responses=BdbSerializer)
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
            )
            replica.apply(actor=actor)
        return Response(BdbSerializer(bdb_get(actor, db.pk)).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, uid: int) -> Response:
        db = selectors.database_get_for_user(user=request.user, uid=uid)  # type: ignore[arg-type]
        replica_services.database_delete(actor=request.user, database=db)  # type: ignore[arg-type]
        return Response(status=status.HTTP_204_NO_CONTENT)
