"""The Replica Of panel's Stop/Start/Restart/Pause/Resume endpoint (refusals)."""

from __future__ import annotations

from django.test import Client
from django.urls import reverse

from console.models import Database


def test_sync_actions_refuse_with_a_message(
    admin_client: Client, viewer_client: Client, pair: tuple[Database, Database]
) -> None:
    _, b = pair
    url = reverse("replica-sync", kwargs={"uid": b.pk})
    assert viewer_client.post(url, {"action": "stop"}).status_code == 403
    for action in ("bogus", "restart", "pause", "credentials"):
        response = admin_client.post(url, {"action": action, "source": "x"}, follow=True)
        assert response.status_code == 200
        assert b"Not done:" in response.content, action


def test_the_stop_confirmation_says_the_destination_stays_read_only(
    admin_client: Client, pair: tuple[Database, Database]
) -> None:
    _, b = pair
    page = admin_client.get(reverse("database-detail", kwargs={"uid": b.pk})).content.decode()
    assert "stays read-only for applications" in page
    assert "becomes writable" not in page
