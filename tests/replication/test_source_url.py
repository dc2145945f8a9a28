"""The source URL dialog's endpoints: admins only, audited."""

from __future__ import annotations

from django.test import Client
from django.urls import reverse

from console.models import AuditEntry, Database


def test_source_url_is_for_admins_and_audited(
    admin_client: Client, viewer_client: Client, pair: tuple[Database, Database]
) -> None:
    a, _ = pair
    url = reverse("replica-source-url", kwargs={"uid": a.pk})
    refused = viewer_client.post(url)
    assert refused.status_code == 403 and a.internal_password not in refused.content.decode()
    response = admin_client.post(url)
    assert response.json() == {"url": f"redis://admin:{a.internal_password}@127.0.0.1:{a.port}"}
    assert AuditEntry.objects.filter(action="database.replica_source_url").count() == 1
    assert (
        viewer_client.post(reverse("replica-password-regenerate", kwargs={"uid": a.pk})).status_code
        == 403
    )
