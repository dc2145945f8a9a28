from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from console.permissions import is_admin
from console.selectors import cluster_get


def console(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    return {"cluster": cluster_get(), "is_admin": is_admin(user)}
