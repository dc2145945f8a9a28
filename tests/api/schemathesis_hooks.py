"""Schemathesis hooks of tests/api/test_schema.py (loaded by the CLI through SCHEMATHESIS_HOOKS).

Generated source URLs would make the console resolve and connect to whatever host they name:
every Redis URL in a body is pointed at a closed port on loopback instead, so that a run sends
nothing beyond this machine (its shape is still the generated one where it matters: scheme,
credentials and parameters are what the URL parser judges).

The run signs in as the admin whose uid is `SCHEMATHESIS_ADMIN_UID`: a generated request must not
lock the run out (a new password, a disabled or demoted admin, the admin deleted once another
one was created), so those fields are dropped from a PUT of that user and its DELETE is sent to a
user that does not exist; every other user is fair game."""

from __future__ import annotations

import os
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
    admin_uid = os.environ.get("SCHEMATHESIS_ADMIN_UID", "")
    if case.path == "/v1/users/{uid}" and str((case.path_parameters or {}).get("uid")) == admin_uid:
        if case.method.upper() == "DELETE":
            case.path_parameters["uid"] = 2**62
        elif isinstance(body, dict):
            for name in ("password", "status", "role"):
                body.pop(name, None)
    if isinstance(body, dict) and isinstance(body.get("replica_sources"), list):
        for source in body["replica_sources"]:
            if isinstance(source, dict) and isinstance(source.get("uri"), str):
                source["uri"] = _loopback(source["uri"])
