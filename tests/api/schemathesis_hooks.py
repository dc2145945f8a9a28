"""Schemathesis hooks of tests/api/test_schema.py (loaded by the CLI through SCHEMATHESIS_HOOKS).

Generated source URLs would make the console resolve and connect to whatever host they name:
every Redis URL in a body is pointed at a closed port on loopback instead, so that a run sends
nothing beyond this machine (its shape is still the generated one where it matters: scheme,
credentials and parameters are what the URL parser judges)."""

from __future__ import annotations

import re
from typing import Any

import schemathesis

REDIS_URL = re.compile(r"^(rediss?://)(?:[^@/?#]*@)?([^/?#]*)(.*)$", re.IGNORECASE | re.DOTALL)


def _loopback(uri: str) -> str:
    match = REDIS_URL.match(uri)
    if match is None:
        return uri
    scheme, _host, rest = match.groups()
    return f"{scheme}127.0.0.1:1{rest}"


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: Any) -> None:
    """Every request of every phase goes through here just before it is sent."""
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("replica_sources"), list):
        for source in body["replica_sources"]:
            if isinstance(source, dict) and isinstance(source.get("uri"), str):
                source["uri"] = _loopback(source["uri"])
