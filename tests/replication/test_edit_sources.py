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
        {
            "keep": saved.uid,
            "name": "a",
            "kind": "internal",
            "uri_redacted": "",
            "encryption": False,
            "compression": 0,
            "server_cert": "",
            "replication_tls_sni": "",
        }
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


def test_a_refused_save_never_puts_the_typed_password_back_into_the_page(
    admin_client: Client, pair: tuple[Database, Database]
) -> None:
    from replication.models import ReplicaSource
    from tests.support.servers import redis_server

    _, b = pair
    edit = reverse("database-edit", kwargs={"uid": b.pk})
    check = reverse("replica-source-check", kwargs={"uid": b.pk})
    with redis_server(password="typed-source-secret-9") as source:
        # The dialog checks the URL and answers with a token for it, never the URL itself.
        answer = admin_client.post(check, {"kind": "external", "uri": source.url})
        assert answer.status_code == 200, answer.content
        assert "no-store" in answer["Cache-Control"]
        assert "typed-source-secret-9" not in answer.content.decode()
        row = answer.json()["source"]
        assert row["name"] == f"127.0.0.1:{source.port}" and row["pending"]

        # A save refused for another field renders the rows again: with the token only.
        refused = admin_client.post(edit, edit_data([row], memory_mb="lots", confirm_flush="on"))
        assert refused.status_code == 200
        assert "typed-source-secret-9" not in refused.content.decode()
        assert refused.context["replica_rows"][0]["pending"] == row["pending"]

        # A URL posted directly (no dialog) is kept the same way when the save is refused.
        direct = {"uri": "redis://:other-typed-secret-3@127.0.0.1:1", "name": "direct"}
        refused = admin_client.post(edit, edit_data([row, direct], confirm_flush="on"))
        assert refused.status_code == 200
        page = refused.content.decode()
        assert "other-typed-secret-3" not in page and "typed-source-secret-9" not in page
        rows = refused.context["replica_rows"]
        assert "cannot connect to 127.0.0.1:1" in rows[1]["error"]
        assert not ReplicaSource.objects.filter(destination=b).exists()

        # What the page holds is enough to save: the tokens resolve to the typed URLs. (The
        # destination here is a row without a process: its pre-flight fails, overridden.)
        saved = admin_client.post(
            edit, edit_data([rows[0]], confirm_flush="on", preflight_override="on")
        )
        assert saved.status_code == 302, saved.context and saved.context["replica_rows"]
    assert ReplicaSource.objects.get(destination=b).external_uri == source.url
    # Once saved, the session no longer keeps it.
    assert admin_client.session.get("replica_pending_sources") == {}
    # The saved row, as the pencil's dialog shows it: its URL with the password as ***.
    edit_page = admin_client.get(edit)
    assert "typed-source-secret-9" not in edit_page.content.decode()
    shown = edit_page.context["replica_rows"][0]
    assert shown["uri_redacted"] == f"redis://:***@127.0.0.1:{source.port}"


def test_a_token_of_another_session_or_database_is_refused(
    admin_client: Client, pair: tuple[Database, Database]
) -> None:
    from replication.models import ReplicaSource
    from replication.pending import pending_put
    from replication.sources import SourceInput

    a, b = pair
    session = admin_client.session
    for_a = pending_put(session, destination_uid=a.pk, source=SourceInput(uri="redis://h:1"))
    session.save()
    for token in ("made-up", for_a):
        response = admin_client.post(
            reverse("database-edit", kwargs={"uid": b.pk}),
            edit_data([{"pending": token, "name": "x"}], confirm_flush="on"),
        )
        assert "was not kept" in response.context["replica_form"].errors["sources"][0]
    assert not ReplicaSource.objects.filter(destination=b).exists()


def test_a_save_refused_for_the_source_count_or_one_row_keeps_every_row(
    admin_client: Client, pair: tuple[Database, Database]
) -> None:
    from replication.models import ReplicaSource

    a, b = pair
    url = reverse("database-edit", kwargs={"uid": b.pk})
    many = [{"database": a.pk, "name": f"row-{n}", "kind": "internal"} for n in range(33)]
    response = admin_client.post(url, edit_data(many, confirm_flush="on"))
    assert response.status_code == 200
    errors = response.context["replica_form"].errors["sources"]
    assert "at most 32 sources: 33 are listed, remove 1" in errors[0]
    assert [r["name"] for r in response.context["replica_rows"]] == [f"row-{n}" for n in range(33)]
    page = response.content.decode()
    assert "33 of 32" in page  # the counter beside + Add source database

    # A refused row in the middle: it keeps its place and its message, and so do the others.
    rows = [
        {"database": a.pk, "name": "a", "kind": "internal"},
        {"pending": "made-up", "name": "gone"},
        {"uri": "redis://:typed-secret-7@127.0.0.1:1", "name": "typed"},
    ]
    response = admin_client.post(url, edit_data(rows, confirm_flush="on"))
    shown = response.context["replica_rows"]
    assert [r["name"] for r in shown] == ["a", "gone", "typed"]
    assert "was not kept" in shown[1]["error"] and "error" not in shown[0]
    assert "typed-secret-7" not in response.content.decode()
    assert not ReplicaSource.objects.filter(destination=b).exists()
