"""Checkpoints: what the destination stores as its replication position, and the syncer's keys."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replication.syncer.checkpoint import (
    CHECKPOINT_KEY,
    Checkpoint,
    CheckpointState,
    is_bookkeeping_key,
)

REPLID = "8f1c" * 10


@given(
    state=st.sampled_from(list(CheckpointState)),
    replid=st.text(alphabet="0123456789abcdef", min_size=40, max_size=40),
    offset=st.integers(-1, 2**63 - 1),
    db=st.integers(0, 15),
)
def test_encode_decode_round_trip(
    state: CheckpointState, replid: str, offset: int, db: int
) -> None:
    ckpt = Checkpoint(state, replid, offset, db)
    assert Checkpoint.decode(ckpt.encode()) == ckpt


def test_encoding_is_versioned_plain_words() -> None:
    raw = Checkpoint(CheckpointState.STREAMING, REPLID, 1234, 3).encode()
    assert raw == f"v1 streaming {REPLID} 1234 3".encode()
    assert Checkpoint(CheckpointState.LOADING, REPLID, 7).db == 0


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"garbage",
        b"v1 streaming",
        f"v2 streaming {REPLID} 1 0".encode(),  # a format we do not know
        f"v1 resting {REPLID} 1 0".encode(),  # a state we do not know
        f"v1 streaming {REPLID} one 0".encode(),
        f"v1 streaming {REPLID} 1 zero".encode(),
        f"v1 streaming {REPLID} 1 0 extra".encode(),
        f"v1  streaming {REPLID} 1 0".encode(),
    ],
)
def test_anything_else_is_no_checkpoint(raw: bytes) -> None:
    assert Checkpoint.decode(raw) is None


def test_bookkeeping_keys() -> None:
    assert is_bookkeeping_key(CHECKPOINT_KEY)
    assert is_bookkeeping_key(CHECKPOINT_KEY.decode())
    assert is_bookkeeping_key(b"__replicaof:{syncer}:anything")
    for key in (b"__replicaof:checkpoint", b"user:1", "__replicaof:{other}:x", b""):
        assert not is_bookkeeping_key(key)
