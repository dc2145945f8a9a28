"""REST API /v1 (Redis Enterprise compatible where it overlaps). Thin: shape, selector, service."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from console import selectors, services
from console.errors import ApplicationError
from console.serializers import (
    BdbCreateSerializer,
    BdbSerializer,
    BdbUpdateSerializer,
    CertificateReplaceSerializer,
    CertificateSerializer,
    ClusterSerializer,
    NodeSerializer,
)
from replication.apis import bdb_replica_update

IMMUTABLE_BDB_FIELDS = {"name": "name", "port": "port", "shards_count": "shards_count"}


class BdbListApi(APIView):
    @extend_schema(responses=BdbSerializer(many=True))
    def get(self, request: Request) -> Response:
        dbs = selectors.database_list(user=request.user)  # type: ignore[arg-type]
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
        return Response(BdbSerializer(db).data, status=status.HTTP_201_CREATED)


class BdbDetailApi(APIView):
    @extend_schema(responses=BdbSerializer)
    def get(self, request: Request, uid: int) -> Response:
        db = selectors.database_get_for_user(user=request.user, uid=uid)  # type: ignore[arg-type]
        return Response(BdbSerializer(db).data)

    @extend_schema(request=BdbUpdateSerializer, responses=BdbSerializer)
    def put(self, request: Request, uid: int) -> Response:
        db = selectors.database_get_for_user(user=request.user, uid=uid)  # type: ignore[arg-type]
        data: Any = request.data
        for field, attr in IMMUTABLE_BDB_FIELDS.items():
            if isinstance(data, dict) and field in data and data[field] != getattr(db, attr):
                raise ApplicationError(f"{field} cannot be changed", field=field)
        body = BdbUpdateSerializer(data=data)
        body.is_valid(raise_exception=True)
        # One PUT, one outcome: a refused Replica Of change undoes the rest of it.
        with transaction.atomic():
            db = services.database_update(
                actor=request.user,  # type: ignore[arg-type]
                database=db,
                memory_size=body.validated_data.get("memory_size"),
                password=body.validated_data.get("authentication_redis_pass"),
            )
            bdb_replica_update(actor=request.user, database=db, data=data)  # type: ignore[arg-type]
        db.refresh_from_db()
        return Response(BdbSerializer(db).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, uid: int) -> Response:
        db = selectors.database_get_for_user(user=request.user, uid=uid)  # type: ignore[arg-type]
        services.database_delete(actor=request.user, database=db)  # type: ignore[arg-type]
        return Response(status=status.HTTP_204_NO_CONTENT)


class ClusterApi(APIView):
    @extend_schema(responses=ClusterSerializer)
    def get(self, request: Request) -> Response:
        cluster = selectors.cluster_get()
        if cluster is None:
            return Response({"detail": "cluster not bootstrapped"}, status=404)
        return Response(
            {
                "name": cluster.name,
                "created_time": cluster.created,
                "nodes_count": selectors.node_list().count(),
                "databases_count": selectors.database_list(user=request.user).count(),  # type: ignore[arg-type]
                "db_port_range": [settings.DB_PORT_MIN, settings.DB_PORT_MAX],
            }
        )


class NodeListApi(APIView):
    @extend_schema(responses=NodeSerializer(many=True))
    def get(self, request: Request) -> Response:
        nodes = selectors.node_list().prefetch_related("databases")
        return Response(NodeSerializer(nodes, many=True).data)


class CertificatesApi(APIView):
    @extend_schema(responses=CertificateSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(CertificateSerializer(selectors.certificate_list(), many=True).data)

    @extend_schema(request=CertificateReplaceSerializer, responses=CertificateSerializer)
    def put(self, request: Request) -> Response:
        body = CertificateReplaceSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        cert = services.certificate_replace(
            actor=request.user,  # type: ignore[arg-type]
            kind=body.validated_data["name"].removesuffix("_cert"),
            certificate_pem=body.validated_data["certificate"],
            private_key_pem=body.validated_data["key"],
        )
        return Response(CertificateSerializer(cert).data)

    post = put
