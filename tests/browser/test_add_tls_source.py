"""The Add source dialog with TLS: the check uses exactly what will be saved, the pasted server
certificate included (it used to refuse a correct certificate: the check ignored it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from console import certificates, services
from console.models import Database, DatabaseStatus
from replication.models import ReplicaSource
from tests.support.browser import off_loop, sign_in
from tests.support.personas import ADMIN_PASSWORD
from tests.support.servers import RedisServer, free_port
from tests.support.wait import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.integration]

MB = 1024 * 1024


def test_a_tls_source_with_its_pasted_certificate_is_accepted_and_syncs(
    live_worker: Any, new_page: Any, admin: Any, shot: Any, tmp_path: Path
) -> None:
    # An external TLS source: its own self-signed certificate, no client authentication.
    own = certificates.generate(common_name="src.other", fqdn="other.example", client=False)
    (tmp_path / "tls.crt").write_text(own.certificate_pem)
    (tmp_path / "tls.key").write_text(own.private_key_pem)
    tls_port = free_port()
    args = ["--tls-port", str(tls_port), "--tls-cert-file", str(tmp_path / "tls.crt")]
    args += ["--tls-key-file", str(tmp_path / "tls.key"), "--tls-auth-clients", "no"]
    with RedisServer(args=args) as src:
        src.client().mset({f"k{i}": i for i in range(500)})
        dest = off_loop(services.database_create, actor=admin, name="dst", memory_size=32 * MB)
        wait_for(
            lambda: Database.objects.get(pk=dest.pk).status == DatabaseStatus.ACTIVE,
            what="dst to become active",
        )
        page = new_page()
        sign_in(page, "admin", ADMIN_PASSWORD)
        page.goto(f"/databases/{dest.pk}/edit/")
        page.get_by_role("button", name="+ Add source database").click()
        dialog = page.get_by_role("dialog", name="Connect a Replica Of source database")
        dialog.get_by_label("External").check()
        dialog.get_by_label("Source URL").fill(f"rediss://127.0.0.1:{tls_port}")
        dialog.get_by_label("TLS").check()
        dialog.get_by_label("Source cluster's certificate (PEM)").fill(own.certificate_pem)
        dialog.get_by_role("button", name="Add source").click()
        dialog.wait_for(state="hidden")
        page.locator("[data-replica-edit] li.source", has_text=f"127.0.0.1:{tls_port}").wait_for()
        shot(page, "tls-source-added")

        # A certificate that is not the server's is refused by the same check, inline.
        page.get_by_role("button", name="+ Add source database").click()
        other = certificates.generate(common_name="x", fqdn="x.example", client=False)
        dialog.get_by_label("External").check()
        dialog.get_by_label("Source URL").fill(f"rediss://localhost:{tls_port}")
        dialog.get_by_label("TLS").check()
        dialog.get_by_label("Source cluster's certificate (PEM)").fill(other.certificate_pem)
        dialog.get_by_role("button", name="Add source").click()
        dialog.get_by_text("does not match the certificate configured").wait_for()
        page.keyboard.press("Escape")
        dialog.wait_for(state="hidden")

        page.get_by_role("button", name="Save").click()
        page.get_by_role("dialog", name="Save and flush?").get_by_role(
            "button", name="Save and flush"
        ).click()
        page.wait_for_url(f"**/databases/{dest.pk}/")
        saved = ReplicaSource.objects.get(destination=dest)
        assert saved.encryption and saved.server_cert.strip() == own.certificate_pem.strip()
        row = page.locator("[data-replica-panel] li.source").first
        wait_for(
            lambda: row.locator("[data-source-status]").inner_text() == "Synced",
            what="the TLS source to show Synced",
        )
        shot(page, "tls-source-synced")
        dest.refresh_from_db()
        import redis

        with redis.Redis(
            port=dest.port, username="admin", password=dest.internal_password
        ) as client:
            assert client.get("k499") == b"499"
