"""REST API /v1 of the cluster domain: cluster, nodes, certificates (Redis Enterprise compatible
where it overlaps). Thin: shape, selector, service. The bdb resource is assembled with its
Replica Of fields in the roof (config.apis)."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from console import selectors, services
from console.schema import STATE_REFUSALS
from console.serializers import (
    CertificateReplaceSerializer,
    CertificateSerializer,
    ClusterSerializer,
    NodeSerializer,
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

    @extend_schema(
        request=CertificateReplaceSerializer,
        responses=CertificateSerializer,
        extensions={
            STATE_REFUSALS: "the certificate or key is not acceptable: one PEM block each, a "
            "strong key that matches, valid now"
        },
    )
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
