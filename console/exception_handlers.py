"""Every error under /v1/ is one JSON shape, Redis Enterprise's: `{"error_code": "...",
"description": "..."}`, plus, for a refused input, the fields at fault with their messages
(`{"port": ["port must be in the range 12000-12999"]}`). Refused operations are 400 (or the status
Redis Enterprise documents for them), never a 500."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler

from console.errors import ApplicationError

# The `error_code` of an answer that has no more precise one, by HTTP status.
STATUS_CODES = {
    400: "invalid_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    415: "unsupported_media_type",
    429: "throttled",
    500: "internal_error",
}


def _first_message(detail: Any) -> str:
    """The first message of a DRF error detail (a string, a list or nested field errors)."""
    if isinstance(detail, dict):
        for field, value in detail.items():
            message = _first_message(value)
            if message:
                return message if field == "non_field_errors" else f"{field}: {message}"
        return ""
    if isinstance(detail, list):
        for value in detail:
            message = _first_message(value)
            if message:
                return message
        return ""
    return str(detail)


def error_body(
    *, status: int, description: str, code: str = "", fields: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The JSON of an error answer: `error_code`, `description` and the fields at fault."""
    body: dict[str, Any] = dict(fields or {})
    body["error_code"] = code or STATUS_CODES.get(status, "error")
    body["description"] = description
    return body


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApplicationError):
        body = error_body(
            status=exc.status, code=exc.code, description=exc.message, fields=exc.as_dict()
        )
        return Response(body, status=exc.status)
    if isinstance(exc, DjangoValidationError):
        fields = (
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
        return Response(
            error_body(status=400, description=_first_message(fields), fields=fields), status=400
        )
    response = exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    if isinstance(data, dict) and set(data) == {"detail"}:
        # DRF's own errors (not found, not signed in, throttled...) with the code DRF gives them.
        detail = data["detail"]
        response.data = error_body(
            status=response.status_code,
            code=str(getattr(detail, "code", "") or ""),
            description=str(detail),
        )
    else:
        fields = data if isinstance(data, dict) else {"non_field_errors": data}
        response.data = error_body(
            status=response.status_code, description=_first_message(fields), fields=fields
        )
    return response
