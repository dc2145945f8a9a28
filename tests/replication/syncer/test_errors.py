"""Error classification: every server reply prefix to its exception class and kind, the kinds of
the classes, and what an error says about where it happened."""

from __future__ import annotations

import pytest

from replication.syncer.errors import (
    AUTH_PHRASES,
    REPLY_ERRORS,
    AuthError,
    CrossSlotError,
    ErrorKind,
    FatalSyncError,
    FullSyncRequired,
    Origin,
    OutOfMemoryError,
    OutputBufferLimitError,
    ProtocolError,
    RetryableError,
    Side,
    SyncError,
    classify_reply_error,
)

# Every prefix the table knows, as a server sends it: class, kind, fatal.
PREFIXES = [
    ("NOAUTH Authentication required.", AuthError, "auth", True),
    ("WRONGPASS invalid username-password pair or user is disabled.", AuthError, "auth", True),
    ("NOPERM User admin has no permissions to run the 'psync' command", AuthError, "auth", True),
    ("INVALIDPASSWORD the password is wrong", AuthError, "auth", True),
    ("CROSSSLOT Keys in request don't hash to the same slot", CrossSlotError, "cross_slot", True),
    ("OOM command not allowed when used memory > 'maxmemory'.", OutOfMemoryError, "oom", True),
    ("LOADING Redis is loading the dataset in memory", RetryableError, "unavailable", False),
    ("BUSY Redis is busy running a script.", RetryableError, "unavailable", False),
    (
        "TRYAGAIN Multiple keys request during rehashing of slot",
        RetryableError,
        "unavailable",
        False,
    ),
    ("MASTERDOWN Link with MASTER is down", RetryableError, "unavailable", False),
    ("CLUSTERDOWN The cluster is down", RetryableError, "unavailable", False),
    ("NOREPLICAS Not enough good replicas to write.", RetryableError, "unavailable", False),
    ("READONLY You can't write against a read only replica.", RetryableError, "readonly", False),
]


def test_the_table_is_what_these_tests_cover() -> None:
    assert sorted(REPLY_ERRORS) == sorted(m.split(" ", 1)[0] for m, *_ in PREFIXES)


@pytest.mark.parametrize(("message", "cls", "kind", "fatal"), PREFIXES)
def test_every_prefix(message: str, cls: type[SyncError], kind: str, fatal: bool) -> None:
    at = Origin(Side.DESTINATION, "10.0.0.5:6379", 2)
    err = classify_reply_error(message, where="destination", command=b"SET", origin=at)
    assert type(err) is cls
    assert err.kind == kind and isinstance(err.kind, ErrorKind)
    assert err.fatal is fatal
    assert isinstance(err, FatalSyncError if fatal else RetryableError)
    assert (err.side, err.source, err.endpoint) == ("destination", 2, "10.0.0.5:6379")
    assert message in str(err)


def test_the_prefix_is_read_in_any_case_and_only_as_the_first_word() -> None:
    assert classify_reply_error("oom nope", where="w").kind == "oom"
    err = classify_reply_error("ERR value is not OOM", where="w")
    assert type(err) is FatalSyncError and err.kind == "command"


@pytest.mark.parametrize("phrase", AUTH_PHRASES)
def test_auth_phrases_anywhere(phrase: str) -> None:
    err = classify_reply_error(f"ERR {phrase}", where="redis://a:1")
    assert type(err) is AuthError and err.kind == "auth"


@pytest.mark.parametrize(
    "message",
    [
        "ERR unknown command 'FOO'",
        "WRONGTYPE Operation against a key holding the wrong kind of value",
        "EXECABORT Transaction discarded because of previous errors.",
        "MOVED 3999 127.0.0.1:6381",
        "NOSCRIPT No matching script.",
        "",
    ],
)
def test_anything_else_is_a_refused_command_and_fatal(message: str) -> None:
    """Skipping a command the destination refused would make it silently diverge."""
    err = classify_reply_error(message, where="destination", command=b"HSET")
    assert type(err) is FatalSyncError and err.fatal
    assert err.kind == "command"
    assert str(err) == f"destination: command refused (command HSET): {message}"


def test_messages_stay_as_they_were() -> None:
    w = "redis://admin:***@db:12000"
    assert (
        str(classify_reply_error("WRONGPASS bad", where=w))
        == f"{w}: authentication failed: WRONGPASS bad"
    )
    assert (
        str(classify_reply_error("OOM full", where="destination", command=b"RESTORE"))
        == "destination: out of memory (command RESTORE): OOM full — raise maxmemory on destination"
        " or free memory"
    )
    assert (
        str(classify_reply_error("CROSSSLOT x", where="destination", command=b"MSET"))
        == "destination: cross-slot command (command MSET): CROSSSLOT x"
    )
    assert str(classify_reply_error("LOADING wait", where=w)) == f"{w}: LOADING wait"
    assert (
        str(classify_reply_error("READONLY no", where=w))
        == f"{w}: is a read-only replica now: READONLY no"
    )
    assert str(classify_reply_error("ERR no", where=w)) == f"{w}: command refused: ERR no"


def test_without_origin_nothing_is_claimed() -> None:
    err = classify_reply_error("OOM x", where="w")
    assert (err.side, err.source, err.endpoint) == (None, None, None)


@pytest.mark.parametrize(
    ("cls", "kind", "fatal"),
    [
        (SyncError, "internal", False),
        (FatalSyncError, "command", True),
        (AuthError, "auth", True),
        (CrossSlotError, "cross_slot", True),
        (OutOfMemoryError, "oom", True),
        (OutputBufferLimitError, "output_buffer", True),
        (RetryableError, "unavailable", False),
        (ProtocolError, "protocol", False),
    ],
)
def test_each_class_has_a_default_kind(cls: type[SyncError], kind: str, fatal: bool) -> None:
    err = cls("message")
    assert (err.kind, err.fatal, str(err)) == (kind, fatal, "message")
    assert cls("m", kind=ErrorKind.TLS).kind == "tls"


def test_full_sync_required() -> None:
    err = FullSyncRequired(
        "src-1", "its backlog is too small", origin=Origin(Side.SOURCE, "a:1", 0)
    )
    assert str(err) == "src-1: full sync required: its backlog is too small"
    assert (err.where, err.reason) == ("src-1", "its backlog is too small")
    assert (err.kind, err.side, err.source, err.endpoint) == ("full_sync", "source", 0, "a:1")
    assert not err.fatal and not isinstance(err, RetryableError | FatalSyncError)


def test_on_source_fills_only_a_missing_source() -> None:
    err = RetryableError("x", origin=Origin(Side.DESTINATION, "d:1"))
    err.on_source(3)
    assert err.source == 3 and err.side == "destination"
    err.on_source(5)
    assert err.source == 3
    named = RetryableError("x", origin=Origin(Side.SOURCE, "s:1", 0))
    named.on_source(7)
    assert named.source == 0


def test_every_kind_is_a_plain_lowercase_word() -> None:
    values = [k.value for k in ErrorKind]
    assert len(set(values)) == len(values)
    assert all(v.replace("_", "").isalpha() and v.islower() for v in values)
    assert {"auth", "cross_slot", "oom", "output_buffer", "tls", "refused", "timeout"} <= set(
        values
    )
    assert {"closed", "protocol", "full_sync", "command", "internal"} <= set(values)
