"""The TLS flow of Replica Of across the two hosts in a browser (Chromium in the root namespace,
each console reached through a forward): copy west's syncer certificate from its Security page,
create a database on east with TLS between databases only trusting it, copy east's proxy
certificate from its Security page, and add the database on west as a TLS source with it."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.browser import (
    WIDE,
    add_external_source,
    chromium_browser,
    save_and_flush,
    sign_in,
    wait_source_synced,
)
from tests.support.compare import assert_same_data
from tests.support.hosts import CONSOLE_ADMIN_USER, Bed, Host
from tests.support.load import populate
from tests.support.wait import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MB = 1024 * 1024


@pytest.fixture
def chromium() -> Iterator[Any]:
    with chromium_browser() as browser:
        yield browser


def console_page(browser: Any, host: Host) -> Any:
    """A signed-in page of `host`'s console, through a loopback forward."""
    assert host.console is not None
    context = browser.new_context(base_url=f"http://127.0.0.1:{host.forward()}", viewport=WIDE)
    context.set_default_timeout(60_000)
    page = context.new_page()
    sign_in(page, CONSOLE_ADMIN_USER, host.console.admin_password)
    return page


def password_of(url: str) -> str:
    return urllib.parse.unquote(urllib.parse.urlsplit(url).password or "")


def test_tls_source_across_the_wan_set_up_in_the_browsers_of_both_consoles(
    wan: Bed, chromium: Any
) -> None:
    east, west = wan.east, wan.west
    wan.link.set(delay_ms=10, rate="50mbit")
    east_page, west_page = console_page(chromium, east), console_page(chromium, west)

    west_page.goto("/cluster/security/")
    west_syncer = str(west_page.locator("#pem-syncer").text_content())
    assert "BEGIN CERTIFICATE" in west_syncer

    east_page.goto("/databases/new/")
    east_page.get_by_label("Name").fill("a")
    east_page.get_by_label("Between databases only").check()
    east_page.get_by_label("Enforce client authentication").check()
    east_page.locator("[data-trusted-rows] textarea").first.fill(west_syncer)
    east_page.get_by_role("button", name="Create").click()
    east_page.wait_for_url("**/databases/*/")
    uid = int(east_page.url.rstrip("/").rsplit("/", 1)[1])
    a: dict[str, Any] = wait_for(
        lambda: (
            ((b := east.api.get(f"/v1/bdbs/{uid}").expect())["status"] == "active" and b) or None
        ),
        what="a on east to be active",
    )
    assert a["tls_mode"] == "replica_ssl" and a["tls_port"]
    east_page.goto(f"/databases/{uid}/")  # (not reload: the pending page refreshes itself)
    hint = east_page.locator("[data-connect]").inner_text()
    assert f"-p {a['tls_port']} --tls --cacert proxy-certificate.pem --cert client.crt" in hint
    east_page.goto("/cluster/security/")
    east_proxy = str(east_page.locator("#pem-proxy").text_content())
    assert ">a<" in east_page.locator("[data-served-by]").inner_html()

    url = east.api.post(f"/v1/bdbs/{uid}/actions/replica_source_url").expect()["uri"]
    assert url.endswith(f"@{east.address}:{a['tls_port']}")
    src = east.redis(a["port"], username="admin", password=password_of(url))
    populate(src, 3000)

    b = west.api.post("/v1/bdbs", {"name": "b", "memory_size": 128 * MB}).expect(201)
    wait_for(
        lambda: west.api.get(f"/v1/bdbs/{b['uid']}").expect()["status"] == "active",
        what="b on west to be active",
    )
    west_page.goto(f"/databases/{b['uid']}/edit/")
    add_external_source(west_page, url=url, server_cert=east_proxy)
    save_and_flush(west_page)
    west_page.wait_for_url(f"**/databases/{b['uid']}/")
    row = wait_source_synced(west_page, timeout=180)
    assert f"{east.address}:{a['tls_port']}" in row.inner_text()
    b_url = west.api.post(f"/v1/bdbs/{b['uid']}/actions/replica_source_url").expect()["uri"]
    dst = west.redis(b["port"], username="admin", password=password_of(b_url))
    src.set("last", "1")
    wait_for(lambda: dst.get("last") == b"1", what="the last write on west")
    assert assert_same_data([src], [dst]) == 3001
