"""Sign-in throttling shared by the login page and HTTP basic auth of the API."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate
from django.core.cache import cache
from django.http import HttpRequest
from rest_framework import exceptions
from rest_framework.authentication import BasicAuthentication


def client_ip(request: HttpRequest) -> str:
    return str(request.META.get("REMOTE_ADDR", "unknown"))


def _key(ip: str) -> str:
    return f"login-failures:{ip}"


def login_throttled(request: HttpRequest) -> bool:
    return int(cache.get(_key(client_ip(request)), 0)) >= settings.LOGIN_FAILURE_LIMIT


def login_failed(request: HttpRequest) -> None:
    key = _key(client_ip(request))
    if cache.add(key, 1, timeout=settings.LOGIN_FAILURE_WINDOW_S):
        return
    try:
        cache.incr(key)
    except ValueError:
        cache.set(key, 1, timeout=settings.LOGIN_FAILURE_WINDOW_S)


def login_succeeded(request: HttpRequest) -> None:
    cache.delete(_key(client_ip(request)))


class ThrottledBasicAuthentication(BasicAuthentication):
    """HTTP basic auth that counts failures per client address like the sign-in page does."""

    def authenticate_credentials(
        self, userid: str, password: str, request: Any = None
    ) -> tuple[Any, None]:
        if request is not None and login_throttled(request):
            raise exceptions.Throttled(detail="too many failed sign-ins; try again later")
        user = authenticate(request=request, username=userid, password=password)
        if user is None or not user.is_active:
            if request is not None:
                login_failed(request)
            raise exceptions.AuthenticationFailed("invalid username or password")
        return user, None
