"""Cluster → Security → Certificates in the browser: copy, download, replace (issue 5, test 6)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from console import certificates
from console.models import Certificate

pytestmark = pytest.mark.slow


def _card(page: Any, kind: str) -> Any:
    return page.locator(f"[data-certificate={kind}]")


def test_copy_and_download_give_the_certificate_only(admin_page: Any, shot: Any) -> None:
    proxy = Certificate.objects.get(kind="proxy")
    admin_page.goto("/cluster/")
    admin_page.get_by_role("link", name="Security").click()
    card = _card(admin_page, "proxy")
    card.get_by_text(proxy.fingerprint_sha256).wait_for()
    assert "proxy.cluster.local" in card.inner_text()
    assert "127.0.0.1" in card.inner_text()
    shot(admin_page, "security")

    card.get_by_role("button", name="Copy").click()
    admin_page.get_by_role("status").filter(has_text="Copied").wait_for()
    copied = admin_page.evaluate("navigator.clipboard.readText()")
    assert copied.strip() == proxy.certificate_pem.strip()

    with admin_page.expect_download() as info:
        card.get_by_role("link", name="Download").click()
    download = info.value
    assert download.suggested_filename == "proxy-certificate.pem"
    body = Path(download.path()).read_text()
    assert body.strip() == proxy.certificate_pem.strip()
    assert "PRIVATE KEY" not in body
    assert "PRIVATE KEY" not in admin_page.content()


def test_replace_refuses_bad_input_inline_then_accepts_a_valid_pair(
    admin_page: Any, shot: Any
) -> None:
    before = Certificate.objects.get(kind="proxy")
    admin_page.goto("/cluster/security/")
    _card(admin_page, "proxy").get_by_role("link", name="Replace").click()
    admin_page.get_by_role("heading", name="Replace the proxy certificate").wait_for()
    shot(admin_page, "form")

    # A file that is not PEM: the error sits next to the certificate field, nothing changes.
    fresh = certificates.generate(
        common_name="proxy.replaced.example", fqdn="replaced.example", client=False
    )
    admin_page.get_by_label("Or upload the certificate file").set_input_files(
        files=[{"name": "bad.pem", "mimeType": "text/plain", "buffer": b"hello, not a PEM\n"}]
    )
    admin_page.get_by_label("Private key (PEM)").fill(fresh.private_key_pem)
    admin_page.get_by_role("button", name="Replace certificate").click()
    error = admin_page.locator(".field.has-error").filter(
        has=admin_page.get_by_label("Or upload the certificate file")
    )
    error.get_by_text("not a PEM-encoded X.509 certificate").wait_for()
    # The private key is never sent back into the page.
    assert admin_page.get_by_label("Private key (PEM)").input_value() == ""
    assert fresh.private_key_pem.splitlines()[1] not in admin_page.content()
    shot(admin_page, "bad-pem")
    assert Certificate.objects.get(kind="proxy").fingerprint_sha256 == before.fingerprint_sha256

    # A certificate with somebody else's key: the error sits next to the key.
    other = certificates.generate(common_name="other", fqdn="other.example", client=False)
    admin_page.get_by_label("Certificate (PEM)").fill(fresh.certificate_pem)
    admin_page.get_by_label("Private key (PEM)").fill(other.private_key_pem)
    admin_page.get_by_role("button", name="Replace certificate").click()
    key_error = admin_page.locator(".field.has-error").filter(
        has=admin_page.get_by_label("Private key (PEM)")
    )
    key_error.get_by_text("the private key does not match the certificate").wait_for()
    shot(admin_page, "key-mismatch")
    assert Certificate.objects.get(kind="proxy").fingerprint_sha256 == before.fingerprint_sha256

    # A valid pair, both uploaded as files: the new fingerprint is shown.
    admin_page.get_by_label("Or upload the certificate file").set_input_files(
        files=[
            {
                "name": "proxy.pem",
                "mimeType": "application/x-pem-file",
                "buffer": fresh.certificate_pem.encode(),
            }
        ]
    )
    admin_page.get_by_label("Or upload the private key file").set_input_files(
        files=[
            {
                "name": "proxy.key",
                "mimeType": "application/x-pem-file",
                "buffer": fresh.private_key_pem.encode(),
            }
        ]
    )
    admin_page.get_by_role("button", name="Replace certificate").click()
    admin_page.wait_for_url("**/cluster/security/")
    card = _card(admin_page, "proxy")
    card.get_by_text(fresh.fingerprint_sha256).wait_for()
    assert before.fingerprint_sha256 not in card.inner_text()
    assert "proxy.replaced.example" in card.inner_text()
    shot(admin_page, "replaced")
    after = Certificate.objects.get(kind="proxy")
    assert after.fingerprint_sha256 == fresh.fingerprint_sha256
    assert after.private_key_pem.strip() == fresh.private_key_pem.strip()
