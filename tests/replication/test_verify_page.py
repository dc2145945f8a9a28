"""The Verify card of the database page without a worker: who sees what, refusals, a result."""

from __future__ import annotations

from django.test import Client
from django.urls import reverse

from console.models import Database, User
from replication import services
from replication.models import VerifyRun, VerifyState
from replication.sources import SourceInput


def test_verify_card_buttons_refusals_and_a_result(
    admin_client: Client,
    viewer_client: Client,
    admin_user: User,
    pair: tuple[Database, Database],
) -> None:
    a, b = pair
    page = reverse("database-detail", kwargs={"uid": b.pk})
    action = reverse("replica-verify", kwargs={"uid": b.pk})
    assert b"data-verify" not in admin_client.get(page).content  # not a replica: no card
    services.replica_sources_set(
        actor=admin_user, destination=b, sources=[SourceInput(source_database_uid=a.pk)]
    )
    assert b'name="rate"' in admin_client.get(page).content
    assert b'name="rate"' not in viewer_client.get(page).content
    assert viewer_client.post(action, {"rate": "10"}).status_code == 403

    refused = admin_client.post(action, {"rate": "lots"}, follow=True)
    assert b"Not done: the rate must be a number" in refused.content
    refused = admin_client.post(action, {"rate": "0"}, follow=True)
    assert b"Not done: the rate must be between" in refused.content
    assert not VerifyRun.objects.exists()

    started = admin_client.post(action, {"rate": "500"}, follow=True)
    assert b"Verify started" in started.content
    run = VerifyRun.objects.get()
    assert run.rate == 500 and run.state == VerifyState.QUEUED
    assert b"Cancel verify" in started.content and b"data-verify-bar" in started.content

    services.replica_verify_finish(
        run_id=run.pk,
        state=VerifyState.DONE,
        result={
            "totals": {"equal": 9, "missing": 1, "extra": 0, "different": 0, "ttl_off": 0},
            "differences": 1,
            "sources": [{"source": "redis://a", "counts": {}, "samples": {"missing": ["k:<1>"]}}],
            "extra_samples": [],
            "keys_checked": 10,
        },
    )
    shown = admin_client.get(page).content.decode()
    assert "1 difference" in shown and "missing: <code>k:&lt;1&gt;</code>" in shown
    assert 'name="rate"' in shown  # ended: Verify again

    # Cancel of a queued run ends it at once.
    admin_client.post(action, {})
    cancelled = admin_client.post(action, {"action": "cancel"}, follow=True)
    assert b"Verify cancelled." in cancelled.content
    assert VerifyRun.objects.order_by("-id").first().state == VerifyState.CANCELLED  # type: ignore[union-attr]
