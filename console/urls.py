from __future__ import annotations

from django.urls import include, path

urlpatterns = [
    path("v1/", include("console.api_urls")),
    path("", include("console.page_urls")),
]
