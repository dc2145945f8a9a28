"""The one error type for refused operations; the API maps it to 400 and forms to a field error."""

from __future__ import annotations


class ApplicationError(Exception):
    """An operation was refused: `field` names the input at fault (None for the whole request)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def as_dict(self) -> dict[str, list[str]]:
        return {self.field or "non_field_errors": [self.message]}
