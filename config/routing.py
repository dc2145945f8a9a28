"""WebSocket routes: live status for the pages."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from replication.consumers import StatusConsumer

websocket_urlpatterns: list[URLPattern | URLResolver] = [
    path("ws/status/", StatusConsumer.as_asgi()),
]
