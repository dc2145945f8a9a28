"""API permissions: every signed-in user reads; only admins change anything."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request


def is_admin(user: Any) -> bool:
    return bool(getattr(user, "is_console_admin", False))


class IsAdminOrReadOnly(BasePermission):
    message = "this action needs the admin role"

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        return request.method in SAFE_METHODS or is_admin(user)


class IsAdmin(BasePermission):
    message = "this action needs the admin role"

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(request.user and request.user.is_authenticated and is_admin(request.user))
