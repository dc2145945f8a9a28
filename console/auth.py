"""Sign-in throttling shared by the login page and HTTP basic auth of the API.

Failed sign-ins are counted in two scopes, in the cache (the control Redis: atomic counters that
every web process shares):

1. per (account, client address): after `LOGIN_FAILURE_LIMIT` failures within the window, that
   account is refused from that address for a minute, then 2, 4 … up to an hour each time it
   happens again within a day (backoff);
2. per account, from any address: after `LOGIN_ACCOUNT_FAILURE_LIMIT` failures within the window
   (guessing from many addresses), the account is refused everywhere for 30 s, then 60 s …
   up to 15 min. It is a higher limit with short locks: it slows a distributed guess without
   letting one client keep an account out for long.

A lock is checked before the password, so guessing during it gains nothing, and it is the same for
accounts that do not exist (no way to tell them apart). Nothing is shared between accounts: a
successful sign-in clears only the failures of that account from that address, never those of
another account, and a locked account never stops another account's sign-in, from any address.
Each lock of an existing account is written to the audit log.

Why not django-axes: it has one failure limit and one cool-off for every lockout parameter (the
per-account lock would then be as quick as the per-address one, which lets anyone lock an account
out), no backoff, and with DRF's `Request` wrapper its lockout flag never reaches its middleware.

Behind a TLS proxy every client comes from the proxy's address: `CONSOLE_TRUSTED_PROXIES` (the
number of proxies in front) makes the client address the one those proxies put into
X-Forwarded-For.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate
from django.core.cache import cache
from django.http import HttpRequest
from rest_framework import exceptions
from rest_framework.authentication import BasicAuthentication

from console.models import User
from console.services import audit_record

DAY_S = 24 * 3600


@dataclass(frozen=True, slots=True)
class Scope:
    """One way of counting failures: its limit and the first and longest lock."""

    name: str
    first_lock_s: int
    max_lock_s: int

    @property
    def limit(self) -> int:
        if self.name == "pair":
            return int(settings.LOGIN_FAILURE_LIMIT)
        return int(settings.LOGIN_ACCOUNT_FAILURE_LIMIT)


PAIR = Scope("pair", first_lock_s=60, max_lock_s=3600)
ACCOUNT = Scope("account", first_lock_s=30, max_lock_s=900)


def client_ip(request: HttpRequest) -> str:
    """The client's address: REMOTE_ADDR, or with `TRUSTED_PROXIES` proxies in front, the address
    the outermost trusted proxy saw (X-Forwarded-For from the right; what a client wrote into the
    header itself is further left and ignored)."""
    remote = str(request.META.get("REMOTE_ADDR", "unknown"))
    proxies = int(settings.TRUSTED_PROXIES)
    if proxies <= 0:
        return remote
    forwarded = [a.strip() for a in str(request.META.get("HTTP_X_FORWARDED_FOR", "")).split(",")]
    forwarded = [a for a in forwarded if a]
    return forwarded[-proxies] if len(forwarded) >= proxies else remote


def _subject(scope: Scope, username: str, ip: str) -> str:
    account = hashlib.sha256(username.casefold().encode()).hexdigest()[:32]
    return f"{account}:{ip}" if scope is PAIR else account


def _key(kind: str, scope: Scope, subject: str) -> str:
    return f"login:{kind}:{scope.name}:{subject}"


def _remaining_lock_s(scope: Scope, subject: str) -> int:
    until = cache.get(_key("lock", scope, subject))
    return max(int(float(until) - time.time() + 0.999), 0) if until else 0


def login_locked_for(request: HttpRequest, username: str) -> int:
    """Seconds until `username` may try again from this client (0: now)."""
    ip = client_ip(request)
    return max(_remaining_lock_s(s, _subject(s, username, ip)) for s in (PAIR, ACCOUNT))


def _incr(key: str, timeout: int) -> int:
    if cache.add(key, 1, timeout=timeout):
        return 1
    try:
        return int(cache.incr(key))
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=timeout)
        return 1


def _lock(scope: Scope, subject: str, username: str, ip: str, failures: int) -> None:
    """Lock the subject for the next step of its backoff and audit it."""
    locks = _incr(_key("locks", scope, subject), DAY_S)
    duration = min(scope.first_lock_s * 2 ** (locks - 1), scope.max_lock_s)
    cache.set(_key("lock", scope, subject), time.time() + duration, timeout=duration)
    cache.delete(_key("failures", scope, subject))
    user = User.objects.filter(username=username).first()
    if user is None:
        return  # no audit entry per guessed name: that would let anyone flood the log
    where = f"from {ip}" if scope is PAIR else "from any address"
    audit_record(
        actor=None,
        action="user.sign_in_locked",
        obj=user,
        detail=f"{failures} failed sign-ins; sign-in {where} refused for {duration} s",
    )


def login_failed(request: HttpRequest, username: str) -> None:
    """Count a failed sign-in of `username` from this client; lock where a limit is reached."""
    ip = client_ip(request)
    for scope in (PAIR, ACCOUNT):
        subject = _subject(scope, username, ip)
        failures = _incr(_key("failures", scope, subject), settings.LOGIN_FAILURE_WINDOW_S)
        if failures >= scope.limit:
            _lock(scope, subject, username, ip, failures)


def login_succeeded(request: HttpRequest, username: str) -> None:
    """A correct sign-in clears the failures of this account from this client, nothing else."""
    cache.delete(_key("failures", PAIR, _subject(PAIR, username, client_ip(request))))


class ThrottledBasicAuthentication(BasicAuthentication):
    """HTTP basic auth with the same throttling as the sign-in page."""

    def authenticate_credentials(
        self, userid: str, password: str, request: Any = None
    ) -> tuple[Any, None]:
        http_request = getattr(request, "_request", request)
        if http_request is not None:
            wait = login_locked_for(http_request, userid)
            if wait:
                raise exceptions.Throttled(
                    wait=wait, detail="too many failed sign-ins; try again later"
                )
        user = authenticate(request=request, username=userid, password=password)
        if user is None or not user.is_active:
            if http_request is not None:
                login_failed(http_request, userid)
            raise exceptions.AuthenticationFailed("invalid username or password")
        if http_request is not None:
            login_succeeded(http_request, userid)
        return user, None
