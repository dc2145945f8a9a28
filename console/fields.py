"""Serializer fields for JSON bodies that take only their JSON type.

DRF's fields coerce, for HTML forms: `0`, `"yes"` and `"on"` pass as booleans, `"12"` and `12.0`
as integers, numbers as strings. The API reads JSON only (settings: JSONParser), where a type
is part of the contract its schema states, so a value of another type is refused (400) instead
of guessed at.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from console.errors import ApplicationError


class StrictCharField(serializers.CharField):
    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictRegexField(StrictCharField, serializers.RegexField):
    """A string matching a pattern (RegexField's), strings only."""


class StrictIntegerField(serializers.IntegerField):
    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


def single_query(params: Any) -> dict[str, str]:
    """A request's query parameters, each given once (a repeated one is refused with its
    name, instead of silently taking one of its values)."""
    for name in params:
        if len(params.getlist(name)) > 1:
            raise ApplicationError(f"{name} may be given only once", field=name)
    return dict(params.items())
