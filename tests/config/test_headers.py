"""What the console's responses say about themselves: the Content-Security-Policy of every page,
no caching of what holds a secret, the schema for signed-in users only, JSON under /v1/."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from django.test import Client
from django.urls import reverse

from console.models import Database

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
# Inline script (a <script> without src), style attributes and elements, inline event handlers,
# javascript: URLs: none of them may appear in a template (the CSP refuses them).
INLINE = re.compile(
    r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>|\sstyle=|<style|"
    r"\son[a-z]+\s*=|javascript:",
    re.IGNORECASE,
)


def test_templates_have_no_inline_script_style_or_handler() -> None:
    found = [
        f"{path.relative_to(TEMPLATES)}: {match.group(0)}"
        for path in TEMPLATES.rglob("*.html")
        for match in INLINE.finditer(path.read_text())
    ]
    assert found == []


def test_pages_carry_a_strict_policy(admin_client: Client, database: Database) -> None:
    for url in ("/login/", reverse("database-list"), f"/databases/{database.pk}/", "/audit/"):
        policy = admin_client.get(url)["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "script-src 'self'" in policy, url
        assert "'unsafe-inline'" not in policy and "frame-ancestors 'none'" in policy


def test_the_schema_is_for_signed_in_users(bootstrapped: None, viewer_api: Any) -> None:
    anonymous = Client().get("/v1/schema")
    assert anonymous.status_code == 401
    assert anonymous["Content-Type"].startswith("application/json")
    schema = viewer_api.get("/v1/schema")
    assert schema.status_code == 200 and b"/v1/bdbs" in schema.content


def test_the_source_url_is_never_cached(
    admin_api: Any, admin_client: Client, database: Database
) -> None:
    api = admin_api.post(f"/v1/bdbs/{database.pk}/actions/replica_source_url")
    assert api.status_code == 200 and database.internal_password in api.json()["uri"]
    page = admin_client.post(reverse("replica-source-url", kwargs={"uid": database.pk}))
    assert page.status_code == 200 and database.internal_password in page.json()["url"]
    for response in (api, page):
        assert "no-store" in response["Cache-Control"]
        assert "private" in response["Cache-Control"]


def test_the_api_answers_json_only(viewer_api: Any) -> None:
    response = viewer_api.get("/v1/bdbs", HTTP_ACCEPT="text/html")
    assert response.status_code in {200, 406}
    assert response["Content-Type"].startswith("application/json")


def test_errors_under_v1_are_json(viewer_api: Any, viewer_client: Client) -> None:
    for url in ("/v1/bdbs/null%2Cnull", "/v1/nope", "/v1/bdbs/99999999999999999999", "/v1/bdbs/0"):
        response = viewer_api.get(url)
        assert response.status_code == 404, url
        assert response["Content-Type"] == "application/json", url
        body = response.json()
        assert isinstance(body["error_code"], str) and isinstance(body["description"], str), url
    # The pages keep their HTML 404.
    page = viewer_client.get("/databases/999999/")
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")


def test_json_bodies_take_only_their_json_types(admin_api: Any, database: Database) -> None:
    cases = [
        {"replica_sync": "enabled", "check_connection": 0},
        {"replica_sources": [{"uri": "redis://h:1", "encryption": "yes"}]},
        {"replica_sources": [{"bdb_uid": "1"}]},
        {"memory_size": "104857600"},
    ]
    for body in cases:
        response = admin_api.put(f"/v1/bdbs/{database.pk}", body, format="json")
        assert response.status_code == 400, body
