"""External sources an admin checked in the Add source dialog but has not saved yet.

They are kept server-side, in the admin's session and encrypted like every secret at rest, and
the page refers to each by a random token: the source's URL (with its password) travels once,
from the dialog to the check, and never back into a page, a script or the hidden field of the
edit form, even when a refused save renders the form again. Signing out forgets them.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from typing import Any

from console.crypto import decrypt, encrypt
from replication.sources import SourceInput

SESSION_KEY = "replica_pending_sources"
# More than a destination can have (32): an admin may check and drop a few before saving.
MAX_PENDING = 64


def _store(session: Any) -> dict[str, dict[str, Any]]:
    store = session.get(SESSION_KEY)
    return store if isinstance(store, dict) else {}


def pending_put(session: Any, *, destination_uid: int, source: SourceInput) -> str:
    """Keep `source` for the edit of `destination_uid`; returns its token."""
    store = _store(session)
    token = secrets.token_urlsafe(18)
    store[token] = {"d": destination_uid, "s": encrypt(json.dumps(dataclasses.asdict(source)))}
    while len(store) > MAX_PENDING:
        store.pop(next(iter(store)))  # the oldest (dicts keep insertion order)
    session[SESSION_KEY] = store
    return token


def pending_get(session: Any, *, destination_uid: int, token: object) -> SourceInput | None:
    """The source kept under `token` for this destination, or None."""
    entry = _store(session).get(token) if isinstance(token, str) else None
    if entry is None or entry.get("d") != destination_uid:
        return None
    try:
        return SourceInput(**json.loads(decrypt(entry["s"])))
    except (ValueError, TypeError, KeyError):
        return None


def pending_forget(session: Any, *, destination_uid: int) -> None:
    """Forget what was kept for this destination (after its sources were saved)."""
    store = {t: e for t, e in _store(session).items() if e.get("d") != destination_uid}
    session[SESSION_KEY] = store
