"""Errors of the syncer and how they are classified.

Two kinds, and nothing in between (nothing is silently dropped):

- `FatalSyncError`: the sync stops and needs the operator (wrong password, cross-slot command into a
  sharded destination, out of memory, a source that keeps dropping us because of its
  `client-output-buffer-limit`, a command the destination refuses).
- `RetryableError`: the link is re-established with backoff and replication resumes from the
  checkpoint (connection errors, timeouts, LOADING, a master that is busy).

`FullSyncRequired` is neither: the source cannot continue from our position (backlog too small, a
new history after a crash or `DEBUG CHANGE-REPL-ID`); the caller decides to flush and start over.

Fatal or retryable says what happens next; what went wrong, and where, is data on every error, so
that nobody has to read it back out of the message (which is for the operator, in plain words):

- `kind` (`ErrorKind`): what went wrong, one of the list below;
- `side` (`Side`): the server that failed or refused, a source or the destination (None when no
  server is involved: a bad configuration, an engine-wide check);
- `source`: the index in `SyncEngine.sources` of the source whose replication link hit the error.
  It is set for errors of that source *and* for errors of the destination while applying that
  source's data (an OOM or a cross-slot command names the destination as `side` and the source
  that sent the command as `source`); None when no link is involved (finding out what the
  destination is, reading the checkpoints at the start of a round, the number of sources);
- `endpoint`: `host:port` of that server, when there is one.

They are set where the error is raised: every connection knows its side, its endpoint and the
source it serves (see `Origin`). Error replies of servers are classified by `classify_reply_error`
through `REPLY_ERRORS`, a table from the reply's first word to (exception class, kind), as redis-py
does with `EXCEPTION_CLASSES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

__all__ = [
    "AUTH_PHRASES",
    "REPLY_ERRORS",
    "AuthError",
    "CrossSlotError",
    "ErrorKind",
    "FatalSyncError",
    "FullSyncRequired",
    "Origin",
    "OutOfMemoryError",
    "OutputBufferLimitError",
    "ProtocolError",
    "RetryableError",
    "Side",
    "SyncError",
    "classify_reply_error",
]


class ErrorKind(StrEnum):
    """What went wrong. The browser and the control plane pick their advice from this."""

    AUTH = "auth"  # a server refused our credentials or permissions (WRONGPASS, NOAUTH, NOPERM)
    CROSS_SLOT = "cross_slot"  # a multi-key command whose keys are in different slots (cluster)
    OOM = "oom"  # a server is at its maxmemory (-OOM)
    OUTPUT_BUFFER = "output_buffer"  # the source kept closing the link while we were behind
    TLS = "tls"  # TLS handshake failed, or the server's certificate is not trusted
    TLS_CLIENT = "tls_client"  # a TLS server refused our client (syncer) certificate
    REFUSED = "refused"  # cannot connect: connection refused, host unreachable, unknown name
    TIMEOUT = "timeout"  # connecting took too long, or a link stayed silent too long
    CLOSED = "closed"  # the peer closed the connection (end of stream)
    LOST = "lost"  # the connection broke under us (reset, broken pipe)
    PROTOCOL = "protocol"  # the peer sent something that is not valid RESP/replication protocol
    UNAVAILABLE = "unavailable"  # busy for now: LOADING, BUSY, TRYAGAIN, CLUSTERDOWN, reshaping
    READONLY = "readonly"  # the destination (or one of its shards) is a read-only replica now
    FULL_SYNC = "full_sync"  # the saved position cannot be continued: flush and load everything
    COMMAND = "command"  # a server refused a command we sent (any other error reply)
    CONFIG = "config"  # the configuration cannot work: bad URL, number of sources, a cycle
    UNSUPPORTED = "unsupported"  # data the destination cannot take as it is (RDB version, db N)
    INTERNAL = "internal"  # the syncer itself failed (a bug): the message has the details


class Side(StrEnum):
    SOURCE = "source"
    DESTINATION = "destination"


@dataclass(frozen=True, slots=True)
class Origin:
    """Where errors of one connection (or one link) come from: given to each error raised there."""

    side: Side
    endpoint: str | None  # host:port; None when the URL could not even be parsed
    source: int | None = None  # index in SyncEngine.sources; None when no link is involved


class SyncError(Exception):
    """Base of all syncer errors: a message for the operator, plus what and where (module doc)."""

    fatal: ClassVar[bool] = False
    default_kind: ClassVar[ErrorKind] = ErrorKind.INTERNAL

    kind: ErrorKind
    side: Side | None
    source: int | None
    endpoint: str | None

    def __init__(
        self, message: str, *, kind: ErrorKind | None = None, origin: Origin | None = None
    ) -> None:
        super().__init__(message)
        self.kind = kind if kind is not None else self.default_kind
        self.side = origin.side if origin is not None else None
        self.endpoint = origin.endpoint if origin is not None else None
        self.source = origin.source if origin is not None else None

    def on_source(self, source: int) -> None:
        """Name the source whose link this happened on, unless the raiser already did (for
        errors of writers that a custom `writer_factory` built without knowing the source)."""
        if self.source is None:
            self.source = source


class FatalSyncError(SyncError):
    """Stops the sync; the message is meant for the operator."""

    fatal = True
    default_kind = ErrorKind.COMMAND


class AuthError(FatalSyncError):
    """Authentication with a source or the destination failed."""

    default_kind = ErrorKind.AUTH


class CrossSlotError(FatalSyncError):
    """A multi-key command whose keys live in different slots of a sharded destination."""

    default_kind = ErrorKind.CROSS_SLOT


class OutOfMemoryError(FatalSyncError):
    """The destination (or a source) ran out of memory (`maxmemory`)."""

    default_kind = ErrorKind.OOM


class OutputBufferLimitError(FatalSyncError):
    """The source closed the replication link repeatedly while we were loading."""

    default_kind = ErrorKind.OUTPUT_BUFFER


class RetryableError(SyncError):
    """A transient failure: reconnect with backoff and resume."""

    default_kind = ErrorKind.UNAVAILABLE


class ProtocolError(RetryableError):
    """The peer sent something that is not valid RESP/replication protocol."""

    default_kind = ErrorKind.PROTOCOL


class FullSyncRequired(SyncError):
    """The source cannot continue from the saved position: flush and full sync everything.

    `where` names the link (or "destination") in the message; `source` is the link's source
    index like on every SyncError."""

    default_kind = ErrorKind.FULL_SYNC

    def __init__(self, where: str, reason: str, *, origin: Origin | None = None) -> None:
        super().__init__(f"{where}: full sync required: {reason}", origin=origin)
        self.where = where
        self.reason = reason


Classification = tuple[type[SyncError], ErrorKind]
_AUTH: Classification = (AuthError, ErrorKind.AUTH)
_BUSY: Classification = (RetryableError, ErrorKind.UNAVAILABLE)

# The first word of an error reply → what it means for us. Only the error replies listed as
# retryable are retried; any other error reply to a command we apply stops the sync (see
# `classify_reply_error`), because skipping it would make the destination silently diverge.
REPLY_ERRORS: dict[str, Classification] = {
    "NOAUTH": _AUTH,
    "WRONGPASS": _AUTH,
    "NOPERM": _AUTH,
    "INVALIDPASSWORD": _AUTH,
    "CROSSSLOT": (CrossSlotError, ErrorKind.CROSS_SLOT),
    "OOM": (OutOfMemoryError, ErrorKind.OOM),
    "LOADING": _BUSY,
    "BUSY": _BUSY,
    "TRYAGAIN": _BUSY,
    "MASTERDOWN": _BUSY,
    "CLUSTERDOWN": _BUSY,
    "NOREPLICAS": _BUSY,
    "READONLY": (RetryableError, ErrorKind.READONLY),
}
# Authentication failures that older servers and proxies report after other words ("-ERR invalid
# password" before Redis 6): looked for anywhere in the message, before the table.
AUTH_PHRASES = ("invalid username-password", "invalid password")
# Any other error reply.
_REFUSED: Classification = (FatalSyncError, ErrorKind.COMMAND)


def classify_reply_error(
    message: str, *, where: str, command: bytes | None = None, origin: Origin | None = None
) -> SyncError:
    """Turn an error reply from `where` (words for the message) into the right exception, with
    the kind from `REPLY_ERRORS` and the place from `origin`."""
    head = message.split(" ", 1)[0].upper()
    cls, kind = (
        _AUTH
        if any(phrase in message for phrase in AUTH_PHRASES)
        else REPLY_ERRORS.get(head, _REFUSED)
    )
    cmd = f" (command {command.decode(errors='replace')[:40]})" if command else ""
    if cls is AuthError:
        text = f"{where}: authentication failed: {message}"
    elif cls is CrossSlotError:
        text = f"{where}: cross-slot command{cmd}: {message}"
    elif cls is OutOfMemoryError:
        text = f"{where}: out of memory{cmd}: {message} — raise maxmemory on {where} or free memory"
    elif kind is ErrorKind.READONLY:
        text = f"{where}: is a read-only replica now: {message}"
    elif cls is RetryableError:
        text = f"{where}: {message}"
    else:
        text = f"{where}: command refused{cmd}: {message}"
    return cls(text, kind=kind, origin=origin)
