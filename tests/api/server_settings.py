"""Settings of the console server that tests/api/test_schema.py runs Schemathesis against.

Two changes, both about the volume of a run (a thousand requests and more), none about what is
tested:
- HTTP basic auth checks the password on every request; with the production hasher (PBKDF2, a
  million rounds) that alone would take most of the run, so the admin's hash is turned into a
  cheap one at its first sign-in;
- Schemathesis sends wrong credentials on purpose (ignored_auth): the run must not lock the admin
  out of its own test (throttling has tests of its own).
"""

from __future__ import annotations

from config.settings import *  # noqa: F403

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.MD5PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
LOGIN_FAILURE_LIMIT = LOGIN_ACCOUNT_FAILURE_LIMIT = 1_000_000
