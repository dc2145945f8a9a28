"""REST API /v1 of the cluster domain: cluster, nodes, certificates (Redis Enterprise compatible
where it overlaps). Thin: shape, selector, service. The bdb resource is assembled with its
Replica Of fields in the roof (config.apis)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from console import selectors, services
from console.errors import ApplicationError
from console.permissions import IsAdmin
from console.schema import STATE_REFUSALS
from console.serializers import (
    CertificateReplaceSerializer,
    CertificateSerializer,
    CertificatesReplaceSerializer,
    CertificatesSerializer,
    ClusterSerializer,
    NodeSerializer,
    UserCreateSerializer,
    UserSerializer,
    UserUpdateSerializer,
    certificates_data,
)


class ClusterApi(APIView):
    @extend_schema(
        responses={
            200: ClusterSerializer,
            404: OpenApiResponse(description="The cluster is not bootstrapped yet."),
        }
    )
    def get(self, request: Request) -> Response:
        cluster = selectors.cluster_get()
        if cluster is None:
            raise NotFound("cluster not bootstrapped")
        return Response(
            {
                "name": cluster.name,
                "created_time": cluster.created,
                "nodes_count": selectors.node_list().count(),
                "databases_count": selectors.database_list(user=request.user).count(),  # type: ignore[arg-type]
                "db_port_range": [settings.DB_PORT_MIN, settings.DB_PORT_MAX],
                # Redis Enterprise's names for the cluster's certificates (PEM, no key).
                **{
                    f"{c.kind}_certificate": c.certificate_pem for c in selectors.certificate_list()
                },
            }
        )


class NodeListApi(APIView):
    @extend_schema(responses=NodeSerializer(many=True))
    def get(self, request: Request) -> Response:
        nodes = selectors.node_list().prefetch_related("databases__shards")
        return Response(NodeSerializer(nodes, many=True).data)


CERTIFICATE_REFUSALS = {
    STATE_REFUSALS: "the certificate or key is not acceptable: one PEM block each, a strong key "
    "that matches, valid now (400; 406 when it has expired; 403 for an unknown name)"
}


class CertificatesApi(APIView):
    """`GET/PUT /v1/cluster/certificates` (Redis Enterprise's shapes)."""

    @extend_schema(responses=CertificatesSerializer)
    def get(self, request: Request) -> Response:
        return Response(certificates_data(list(selectors.certificate_list())))

    @extend_schema(
        request=CertificatesReplaceSerializer,
        responses=CertificatesSerializer,
        extensions=CERTIFICATE_REFUSALS,
    )
    def put(self, request: Request) -> Response:
        data: Any = request.data
        if isinstance(data, dict) and "certificates" not in data and "name" in data:
            return _update_cert(request)  # the single form of earlier versions of this API
        body = CertificatesReplaceSerializer(data=data)
        body.is_valid(raise_exception=True)
        services.certificates_replace(
            actor=request.user,  # type: ignore[arg-type]
            certificates_in=[
                services.CertificateInput(c["name"], c["certificate"], c["key"])
                for c in body.validated_data["certificates"]
            ],
            field_prefix="certificates[{index}].",
        )
        return Response(certificates_data(list(selectors.certificate_list())))


def _update_cert(request: Request) -> Response:
    body = CertificateReplaceSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    cert = services.certificate_replace(
        actor=request.user,  # type: ignore[arg-type]
        kind=body.validated_data["name"],
        certificate_pem=body.validated_data["certificate"],
        private_key_pem=body.validated_data["key"],
    )
    return Response(CertificateSerializer(cert).data)


class UpdateCertApi(APIView):
    """`PUT /v1/cluster/update_cert`: one certificate (Redis Enterprise's older path)."""

    @extend_schema(
        request=CertificateReplaceSerializer,
        responses=CertificateSerializer,
        extensions=CERTIFICATE_REFUSALS,
    )
    def put(self, request: Request) -> Response:
        return _update_cert(request)


USER_REFUSALS = {
    STATE_REFUSALS: "the name or e-mail is taken (409 on create), the password is too weak, the "
    "change would leave no active admin (406, change_last_admin_role_not_allowed)"
}


class UserListApi(APIView):
    """`GET/POST /v1/users` (admins only, as in Redis Enterprise)."""

    permission_classes = [IsAdmin]

    @extend_schema(responses=UserSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(UserSerializer(selectors.user_list(), many=True).data)

    @extend_schema(
        request=UserCreateSerializer,
        responses={
            200: UserSerializer,
            409: OpenApiResponse(description="A user with that name or e-mail exists."),
        },
        extensions=USER_REFUSALS,
    )
    def post(self, request: Request) -> Response:
        body = UserCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        user = services.user_create(actor=request.user, **body.validated_data)  # type: ignore[arg-type]
        return Response(UserSerializer(user).data)  # Redis Enterprise answers 200


class UserDetailApi(APIView):
    """`GET/PUT/DELETE /v1/users/{uid}` (admins only)."""

    permission_classes = [IsAdmin]

    @extend_schema(responses=UserSerializer)
    def get(self, request: Request, uid: int) -> Response:
        return Response(UserSerializer(selectors.user_get(uid=uid)).data)

    @extend_schema(
        request=UserUpdateSerializer,
        responses={
            200: UserSerializer,
            409: OpenApiResponse(description="Another user has that e-mail."),
        },
        extensions=USER_REFUSALS,
    )
    def put(self, request: Request, uid: int) -> Response:
        user = selectors.user_get(uid=uid)
        body = UserUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        if "name" in data and data["name"] != user.username:
            raise ApplicationError("name cannot be changed", field="name")
        user = services.user_update(
            actor=request.user,  # type: ignore[arg-type]
            user=user,
            role=data.get("role"),
            email=data.get("email"),
            password=data.get("password"),
            active=None if "status" not in data else data["status"] == "active",
        )
        return Response(UserSerializer(user).data)

    @extend_schema(responses={200: None}, extensions=USER_REFUSALS)
    def delete(self, request: Request, uid: int) -> Response:
        services.user_delete(actor=request.user, user=selectors.user_get(uid=uid))  # type: ignore[arg-type]
        return Response(status=200)  # Redis Enterprise answers 200
