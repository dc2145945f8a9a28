"""The replication position, stored in the destination itself, atomically with the data.

Every batch of stream commands is applied as

    MULTI, <the commands>, [SELECT 0], HSET <CHECKPOINT_KEY> <link id> <position>, [SELECT db], EXEC

so the destination holds the data of exactly the commands up to `offset` and says so: after a
`kill -9` the syncer reads the hash, continues with `PSYNC replid offset+1` and applies every
command once. During a full sync the state is `loading`: an interrupted load cannot be continued
and means flush + full sync.

The key lives in database 0 under a name no application uses (`CHECKPOINT_KEY`). It is part of
the destination's keyspace, so comparisons must skip it: `is_bookkeeping_key()` is what the
comparison helpers (tests/support/compare.py, the benchmarks) call. On a Redis Cluster
destination the key is in the slot of its hash tag.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "CHECKPOINT_KEY",
    "JOB_TAG_FIELD",
    "Checkpoint",
    "CheckpointState",
    "is_bookkeeping_key",
]

CHECKPOINT_KEY = b"__replicaof:{syncer}:checkpoint"
# Field of the same hash naming the job that flushed the destination (SyncEngine(job_tag=...)):
# a job that finds another tag, or none, flushes and loads from scratch; the same tag resumes.
JOB_TAG_FIELD = b"__job"
_FORMAT = b"v1"


def is_bookkeeping_key(key: bytes | str) -> bool:
    """True for the syncer's own keys, which are not user data."""
    k = key.encode() if isinstance(key, str) else key
    return k.startswith(b"__replicaof:{syncer}:")


class CheckpointState(StrEnum):
    LOADING = "loading"  # a full sync started and has not finished: cannot be resumed
    STREAMING = "streaming"  # the snapshot is loaded; resume with PSYNC replid offset+1


@dataclass(frozen=True, slots=True)
class Checkpoint:
    state: CheckpointState
    replid: str
    offset: int  # last byte of the replication stream applied
    db: int = 0  # the stream's selected database at that offset

    def encode(self) -> bytes:
        return b" ".join(
            (
                _FORMAT,
                self.state.value.encode(),
                self.replid.encode(),
                b"%d" % self.offset,
                b"%d" % self.db,
            )
        )

    @classmethod
    def decode(cls, raw: bytes) -> Checkpoint | None:
        """The checkpoint, or None when `raw` is not one we wrote (treated as "no checkpoint")."""
        parts = raw.split(b" ")
        if len(parts) != 5 or parts[0] != _FORMAT:
            return None
        try:
            return cls(
                CheckpointState(parts[1].decode()), parts[2].decode(), int(parts[3]), int(parts[4])
            )
        except ValueError:
            return None
