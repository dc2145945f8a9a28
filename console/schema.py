"""OpenAPI (drf-spectacular): the console's own authentication class, and the mark of operations
that refuse some schema-valid requests because of the cluster's state (config.schema)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension

# extend_schema(extensions={STATE_REFUSALS: "why"}): a 400 may answer a request the schema allows.
STATE_REFUSALS = "x-refused-by-state"
# extend_schema(extensions={DELETED_LATER: "how"}) on a DELETE: it is accepted at once and done by
# a worker; until then the object is still read (with a status that says so), then it is a 404.
DELETED_LATER = "x-deleted-asynchronously"


class ThrottledBasicScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "console.auth.ThrottledBasicAuthentication"
    name = "basicAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "basic"}
