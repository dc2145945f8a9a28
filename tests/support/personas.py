"""The personas of the tests: their passwords and how they authenticate to the API."""

from __future__ import annotations

import base64

ADMIN_PASSWORD = "admin-test-password-1"
VIEWER_PASSWORD = "viewer-test-password-1"


def basic_auth(user: str, password: str) -> str:
    """An HTTP basic `Authorization` header value."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
