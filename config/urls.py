from __future__ import annotations

from django.urls import include, path

from replication.apis import MetricsApi

urlpatterns = [
    path("v1/", include("config.api_urls")),
    path("metrics", MetricsApi.as_view(), name="metrics"),
    path("", include("config.page_urls")),
]
