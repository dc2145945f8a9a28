"""Errors of the syncer and how they are classified.

Two kinds, and nothing in between (nothing is silently dropped):

- `FatalSyncError`: the sync stops and needs the operator (wrong password, cross-slot command into a
  sharded destination, out of memory, a source that keeps dropping us because of its
  `client-output-buffer-limit`, a command the destination refuses).
- `RetryableError`: the link is re-established with backoff and replication resumes from the
  checkpoint (connection errors, timeouts, LOADING, a master that is busy).

`FullSyncRequired` is neither: the source cannot continue from our position (backlog too small, a
new history after a crash or `DEBUG CHANGE-REPL-ID`); the caller decides to flush and start over.
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "CrossSlotError",
    "FatalSyncError",
    "FullSyncRequired",
    "OutOfMemoryError",
    "OutputBufferLimitError",
    "ProtocolError",
    "RetryableError",
    "SyncError",
    "classify_reply_error",
]


class SyncError(Exception):
    """Base of all syncer errors."""

    fatal = False


class FatalSyncError(SyncError):
    """Stops the sync; the message is meant for the operator."""

    fatal = True


class AuthError(FatalSyncError):
    """Authentication with a source or the destination failed."""


class CrossSlotError(FatalSyncError):
    """A multi-key command whose keys live in different slots of a sharded destination."""


class OutOfMemoryError(FatalSyncError):
    """The destination (or a source) ran out of memory (`maxmemory`)."""


class OutputBufferLimitError(FatalSyncError):
    """The source closed the replication link repeatedly while we were loading."""


class RetryableError(SyncError):
    """A transient failure: reconnect with backoff and resume."""


class ProtocolError(RetryableError):
    """The peer sent something that is not valid RESP/replication protocol."""


class FullSyncRequired(SyncError):
    """The source cannot continue from the saved position: flush and full sync everything."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: full sync required: {reason}")
        self.source = source
        self.reason = reason


_RETRY_PREFIXES = ("LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN", "CLUSTERDOWN", "NOREPLICAS")
_AUTH_PREFIXES = ("NOAUTH", "WRONGPASS", "NOPERM", "INVALIDPASSWORD")


def classify_reply_error(message: str, *, where: str, command: bytes | None = None) -> SyncError:
    """Turn an error reply from `where` into the right exception.

    Only the error replies listed as retryable are retried; any other error reply to a command we
    apply stops the sync, because skipping it would make the destination silently diverge.
    """
    head = message.split(" ", 1)[0].upper()
    cmd = f" (command {command.decode(errors='replace')[:40]})" if command else ""
    if (
        head in _AUTH_PREFIXES
        or "invalid username-password" in message
        or "invalid password" in message
    ):
        return AuthError(f"{where}: authentication failed: {message}")
    if head == "CROSSSLOT":
        return CrossSlotError(f"{where}: cross-slot command{cmd}: {message}")
    if head == "OOM":
        return OutOfMemoryError(
            f"{where}: out of memory{cmd}: {message} — raise maxmemory on {where} or free memory"
        )
    if head in _RETRY_PREFIXES:
        return RetryableError(f"{where}: {message}")
    if head == "READONLY":
        return RetryableError(f"{where}: is a read-only replica now: {message}")
    return FatalSyncError(f"{where}: command refused{cmd}: {message}")
