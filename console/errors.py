"""The one error type for refused operations; the API maps it to 400 and forms to a field error."""

from __future__ import annotations


class ApplicationError(Exception):
    """An operation was refused: `field` names the input at fault (None for the whole request).

    `code` is the API's `error_code` (Redis Enterprise's style, e.g. `name_already_exists`) and
    `status` its HTTP status: 400 unless Redis Enterprise documents another one for this refusal
    (406 for an expired certificate, 403 for an unknown one)."""

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        code: str = "invalid_request",
        status: int = 400,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.code = code
        self.status = status

    def as_dict(self) -> dict[str, list[str]]:
        return {self.field or "non_field_errors": [self.message]}
