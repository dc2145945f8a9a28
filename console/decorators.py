"""What every page view needs about its user: pages of console and replication share these."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from console.models import User
from console.permissions import is_admin

View = Callable[..., HttpResponse]


def admin_required(view: View) -> View:
    """Mutating pages are for admins: everyone else gets 403, whatever the method."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not is_admin(request.user):
            raise PermissionDenied("this action needs the admin role")
        return view(request, *args, **kwargs)

    return wrapper


def page_user(request: HttpRequest) -> User:
    """The signed-in user (the login middleware lets no one else reach the pages)."""
    assert isinstance(request.user, User)
    return request.user
