"""What the OpenAPI schema says beyond what drf-spectacular reads from the views (a
postprocessing hook, SPECTACULAR_SETTINGS):

- every error answer the API gives, with its JSON shape: 400 (field errors), 401/403 (sign in,
  role), 404 (no such object, on paths with an id), 405/406/415 (method, Accept, Content-Type),
  429 (sign-in throttled);
- the range of path ids (what `MAX_UID` allows; a source uid is 1..32);
- links from a created database to the operations on it, for stateful tests and clients.

Operations that refuse some requests that the schema allows, because the answer depends on the
cluster's state (a name taken, not enough free memory, a state transition, a certificate's
content), say so with `extend_schema(extensions={STATE_REFUSALS: why})` on the view.
"""

from __future__ import annotations

from typing import Any

from console.schema import STATE_REFUSALS
from console.selectors import MAX_UID
from replication.serializers import RE_FIELDS_ABSENT_WHEN_UNKNOWN
from replication.sources import MAX_SOURCES

__all__ = ["STATE_REFUSALS", "postprocess"]

# Redis Enterprise's error answer (console.exception_handlers).
ERROR_PROPERTIES = {
    "error_code": {"type": "string", "description": "e.g. not_found, name_already_exists"},
    "description": {"type": "string"},
}
ERROR = {
    "type": "object",
    "properties": ERROR_PROPERTIES,
    "required": ["error_code", "description"],
}
FIELD_ERRORS = {
    "type": "object",
    "description": "`error_code`, `description`, and the fields at fault, each with its messages "
    "(`non_field_errors` for the whole request; nested fields as nested objects).",
    "properties": ERROR_PROPERTIES,
    "required": ["error_code", "description"],
    "additionalProperties": {},
}
ERROR_ANSWERS = {
    "401": "Not signed in (HTTP basic or a session).",
    "403": "Signed in, without the role this needs (admin).",
    "405": "Method not allowed.",
    "406": "Only JSON is served.",
    "429": "Too many failed sign-ins for this account: retry after `Retry-After` seconds.",
}
# Response fields that are left out while they have no value (not `null`: Redis Enterprise's type).
OPTIONAL_FIELDS = {"ReplicaSource": RE_FIELDS_ABSENT_WHEN_UNKNOWN}
PATH_ID_MAXIMUM = {"uid": MAX_UID, "source_uid": MAX_SOURCES}
BDB_LINKS = {
    "GetBdb": "v1_bdbs_retrieve",
    "UpdateBdb": "v1_bdbs_update",
    "DeleteBdb": "v1_bdbs_destroy",
    "RestartSync": "v1_bdbs_actions_replica_sync_restart_create",
    "SourceUrl": "v1_bdbs_actions_replica_source_url_create",
    "RegeneratePassword": "v1_bdbs_actions_regenerate_admin_password_create",
    "SyncSourceStats": "v1_bdbs_sync_source_stats_retrieve",
}


def _answer(schema_ref: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": schema_ref}}},
    }


def postprocess(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = ERROR
    schemas["FieldErrors"] = FIELD_ERRORS
    for component, names in OPTIONAL_FIELDS.items():
        if component in schemas:
            required = schemas[component].get("required", [])
            schemas[component]["required"] = [n for n in required if n not in names]
            for name in names:
                schemas[component]["properties"].get(name, {}).pop("nullable", None)
    for path, item in result.get("paths", {}).items():
        for method, operation in item.items():
            responses = operation.setdefault("responses", {})
            for code, description in ERROR_ANSWERS.items():
                responses.setdefault(code, _answer("#/components/schemas/Error", description))
            for code, answer in responses.items():
                if code >= "400" and "content" not in answer:  # a view's OpenApiResponse
                    answer.update(_answer("#/components/schemas/Error", answer["description"]))
            parameters = operation.get("parameters", [])
            if "{" in path:
                responses.setdefault(
                    "404", _answer("#/components/schemas/Error", "No such object.")
                )
            if "requestBody" in operation:
                responses.setdefault("415", _answer("#/components/schemas/Error", "Send JSON."))
            if "requestBody" in operation or method != "get" or parameters:
                responses.setdefault(
                    "400", _answer("#/components/schemas/FieldErrors", "Refused: see the fields.")
                )
            for parameter in parameters:
                maximum = PATH_ID_MAXIMUM.get(parameter["name"])
                if parameter["in"] == "path" and maximum:
                    parameter["schema"].update(minimum=1, maximum=maximum)
    created = result.get("paths", {}).get("/v1/bdbs", {}).get("post", {})
    if "201" in created.get("responses", {}):
        created["responses"]["201"]["links"] = {
            name: {"operationId": operation, "parameters": {"uid": "$response.body#/uid"}}
            for name, operation in BDB_LINKS.items()
        }
    return result
