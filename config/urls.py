from __future__ import annotations

from django.urls import include, path

from config.health import healthz
from replication.apis import MetricsApi

urlpatterns = [
    path("v1/", include("config.api_urls")),
    path("metrics", MetricsApi.as_view(), name="metrics"),
    path("healthz", healthz, name="healthz"),
    path("", include("config.page_urls")),
]

# Errors that Django answers itself (no URL matched, an uncaught exception): JSON under /v1/ like
# every other answer of the API, the HTML pages elsewhere.
handler400 = "config.errors.bad_request"
handler403 = "config.errors.permission_denied"
handler404 = "config.errors.page_not_found"
handler500 = "config.errors.server_error"
