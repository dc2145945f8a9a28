"""The TLS flow of Replica Of end to end in a browser, on one host (the two-host bed's consoles
are driven through their APIs in tests/wan/test_tls.py): create a database with TLS between
databases only and client authentication, trusting the syncer certificate copied from the
Security page; add it as an external TLS source of another database with the proxy certificate
copied from the same page; after its password is regenerated, edit the source in place (the
pencil) with the new URL."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from console import services
from console.models import Database, DatabaseStatus
from replication import services as replica_services
from replication.models import ReplicaOf, ReplicaSource
from tests.support.browser import (
    add_external_source,
    off_loop,
    save_and_flush,
    sign_in,
    wait_source_synced,
)
from tests.support.personas import ADMIN_PASSWORD
from tests.support.wait import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.integration]

MB = 1024 * 1024


def active(name: str) -> Database:
    return wait_for(
        lambda: (
            (
                (db := Database.objects.filter(name=name).first()) is not None
                and db.status == DatabaseStatus.ACTIVE
                and db
            )
            or None
        ),
        what=f"{name} to become active",
    )


def test_tls_between_databases_only_source_added_and_edited_in_place(
    live_worker: Any, new_page: Any, admin: Any, shot: Any
) -> None:
    page = new_page()
    sign_in(page, "admin", ADMIN_PASSWORD)
    page.goto("/cluster/security/")
    syncer_pem = page.locator("#pem-syncer").text_content()
    proxy_pem = page.locator("#pem-proxy").text_content()
    assert "BEGIN CERTIFICATE" in syncer_pem and "BEGIN CERTIFICATE" in proxy_pem

    # Create: TLS between databases only, client authentication, the syncer certificate trusted.
    page.goto("/databases/new/")
    page.get_by_label("Name").fill("src")
    page.get_by_label("Between databases only").check()
    page.get_by_label("Enforce client authentication").check()
    page.get_by_role("button", name="+ Add certificate").click()
    boxes = page.locator("[data-trusted-rows] textarea")
    assert boxes.count() == 2
    boxes.nth(0).fill(syncer_pem)
    shot(page, "create-tls")
    page.get_by_role("button", name="Create").click()
    src = active("src")
    assert (src.tls_mode, src.enforce_client_authentication) == ("replica_ssl", True)
    assert src.tls_port is not None and syncer_pem.strip() in src.client_certificates
    page.goto(f"/databases/{src.pk}/")
    hint = page.locator("[data-connect]").inner_text()
    assert f"-p {src.tls_port} --tls --cacert proxy-certificate.pem --cert client.crt" in hint
    with redis.Redis(port=src.port, username="admin", password=src.internal_password) as c:
        c.mset({f"k{i}": i for i in range(300)})

    # Add it on another database as an external TLS source with the proxy certificate.
    dest = off_loop(services.database_create, actor=admin, name="dst", memory_size=32 * MB)
    active("dst")
    url = off_loop(replica_services.replica_source_url, actor=admin, database=src)
    assert url.startswith("rediss://") and url.endswith(f":{src.tls_port}")
    page.goto(f"/databases/{dest.pk}/edit/")
    add_external_source(page, url=url, server_cert=proxy_pem)
    save_and_flush(page)
    page.wait_for_url(f"**/databases/{dest.pk}/")
    wait_source_synced(page)
    shot(page, "tls-source-synced")

    # The source's password is regenerated: the sync stops, named by host:port.
    off_loop(replica_services.admin_password_regenerate, actor=admin, database=src)
    wait_for(
        lambda: ReplicaOf.objects.get(destination=dest).replica_sync == "stopped",
        what="dst to stop",
    )
    error = ReplicaSource.objects.get(destination=dest).last_error
    assert error.startswith(f"127.0.0.1:{src.tls_port}: authentication failed"), error
    # Edit the source in place: the pencil, paste the new URL; TLS material kept as shown.
    new_url = off_loop(replica_services.replica_source_url, actor=admin, database=src)
    page.goto(f"/databases/{dest.pk}/edit/")
    page.get_by_role("button", name=f"Edit source 127.0.0.1:{src.tls_port}").click()
    editor = page.get_by_role("dialog", name=f"Edit source 127.0.0.1:{src.tls_port}")
    assert editor.get_by_label("TLS").is_checked()
    shown = editor.get_by_label("Source cluster's certificate (PEM)").input_value()
    assert shown.strip() == proxy_pem.strip()
    assert "***" in str(editor.get_by_label("Source URL").get_attribute("placeholder"))
    editor.get_by_label("Source URL").fill(new_url)
    editor.get_by_role("button", name="Save source").click()
    editor.wait_for(state="hidden")
    page.locator("[data-replica-edit] li.source", has_text="changed").wait_for()
    shot(page, "tls-source-edited")
    message = save_and_flush(page)
    assert "changing a source restarts the sync from scratch" in message
    page.wait_for_url(f"**/databases/{dest.pk}/")
    wait_source_synced(page)
    saved = ReplicaSource.objects.get(destination=dest)
    assert saved.encryption and saved.server_cert.strip() == proxy_pem.strip()
    dest.refresh_from_db()
    with redis.Redis(port=dest.port, username="admin", password=dest.internal_password) as c:
        assert c.get("k299") == b"299"
