"""Database → Edit → Replica Of without a worker: the source list, flush confirmation, cycles."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from console.models import Database, User
from tests.support.pages import MB, activate, edit_data


@pytest.mark.parametrize(
    ("sources", "message"),
    [
        ("not json", "not valid JSON"),
        ({"keep": 1}, "must be a list"),
        ([{"keep": 7}], "changed meanwhile"),
        ([{"database": "a"}], "not a number"),
        ([{"uri": "http://x:1"}], "use redis:// or rediss://"),
        ([{"uri": ""}], "This field is required"),
    ],
)
def test_edit_refuses_a_malformed_source_list(
    admin_client: Client, pair: tuple[Database, Database], sources: object, message: str
) -> None:
    from replication.models import ReplicaSource

    _, b = pair
    url = reverse("database-edit", kwargs={"uid": b.pk})
    raw = sources if isinstance(sources, str) else None
    data = edit_data(sources, confirm_flush="on")
    if raw is not None:
        data["sources"] = raw
    response = admin_client.post(url, data)
    assert response.status_code == 200
    form = response.context["replica_form"]
    # Shape errors belong to the list; a refused row (the service's) is shown under that row.
    errors = [*form.errors.get("sources", []), *(r.get("error", "") for r in form.rows)]
    assert any(message in e for e in errors), errors
    assert form.errors
    assert not ReplicaSource.objects.filter(destination=b).exists()


def test_edit_needs_the_flush_confirmation_and_refuses_a_cycle(
    admin_client: Client, pair: tuple[Database, Database], admin_user: User
) -> None:
    from replication.models import ReplicaSource
    from replication.services import replica_sources_set
    from replication.sources import SourceInput

    a, b = pair
    url = reverse("database-edit", kwargs={"uid": b.pk})
    response = admin_client.post(url, edit_data([{"database": a.pk, "name": "a"}]))
    assert "flushes b: confirm" in response.context["replica_form"].errors["sources"][0]
    assert not ReplicaSource.objects.filter(destination=b).exists()

    # a copies from b already: b copying from a would close a loop (refused before connecting).
    replica_sources_set(
        actor=admin_user,
        destination=a,
        sources=[SourceInput(source_database_uid=b.pk)],
    )
    response = admin_client.post(
        url, edit_data([{"database": a.pk, "name": "a"}], confirm_flush="on")
    )
    assert response.status_code == 200
    assert "cycle" in response.context["replica_form"].errors["sources"][0]
    assert not ReplicaSource.objects.filter(destination=b).exists()
    # And the picker of b shows a disabled, with the reason.
    page = admin_client.get(url)
    candidates = {c["name"]: c["reason"] for c in page.context["replica_candidates"]}
    assert "cycle" in candidates["a"] and "itself" in candidates["b"]


def test_edit_of_memory_alone_keeps_the_sources(
    admin_client: Client, pair: tuple[Database, Database], admin_user: User
) -> None:
    from replication.models import ReplicaOf, ReplicaSource
    from replication.services import replica_sources_set
    from replication.sources import SourceInput

    a, b = pair
    replica_sources_set(
        actor=admin_user,
        destination=b,
        sources=[SourceInput(source_database_uid=a.pk)],
    )
    activate(b)  # what the node does after applying the read-only ACL
    generation = ReplicaOf.objects.get(destination=b).generation
    saved = ReplicaSource.objects.get(destination=b)
    page = admin_client.get(reverse("database-edit", kwargs={"uid": b.pk}))
    assert page.context["replica_rows"] == [
        {"keep": saved.uid, "name": "a", "kind": "internal", "encryption": False, "compression": 0}
    ]
    assert a.internal_password not in page.content.decode()
    response = admin_client.post(
        reverse("database-edit", kwargs={"uid": b.pk}),
        edit_data([{"keep": saved.uid, "name": "a"}], memory_mb=120),
    )
    assert response.status_code == 302
    b.refresh_from_db()
    assert b.memory_size == 120 * MB
    assert ReplicaOf.objects.get(destination=b).generation == generation  # no flush


def test_edit_with_a_bad_memory_value_keeps_the_new_sources_on_the_page(
    admin_client: Client, pair: tuple[Database, Database]
) -> None:
    from replication.models import ReplicaSource

    a, b = pair
    response = admin_client.post(
        reverse("database-edit", kwargs={"uid": b.pk}),
        edit_data([{"database": a.pk, "name": "a"}], memory_mb="lots", confirm_flush="on"),
    )
    assert response.status_code == 200
    assert "whole number" in response.context["form"].errors["memory_mb"][0]
    assert response.context["replica_rows"] == [{"database": a.pk, "name": "a", "kind": "internal"}]
    assert not ReplicaSource.objects.filter(destination=b).exists()
