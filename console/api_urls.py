from __future__ import annotations

from django.urls import path
from drf_spectacular.views import SpectacularAPIView

from console import apis

urlpatterns = [
    path("bdbs", apis.BdbListApi.as_view(), name="api-bdb-list"),
    path("bdbs/<int:uid>", apis.BdbDetailApi.as_view(), name="api-bdb-detail"),
    path("cluster", apis.ClusterApi.as_view(), name="api-cluster"),
    path("cluster/certificates", apis.CertificatesApi.as_view(), name="api-certificates"),
    path("cluster/update_cert", apis.CertificatesApi.as_view(), name="api-update-cert"),
    path("nodes", apis.NodeListApi.as_view(), name="api-node-list"),
    path("schema", SpectacularAPIView.as_view(), name="api-schema"),
]
