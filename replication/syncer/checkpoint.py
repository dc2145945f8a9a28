"""The replication position, stored in the destination itself, atomically with the data.

Every batch of stream commands is applied as

    MULTI, <the commands>, [SELECT 0], HSET <CHECKPOINT_KEY> <link id> <position>, [SELECT db], EXEC

so the destination holds the data of exactly the commands up to `offset` and says so: after a
`kill -9` the syncer reads the hash, continues with `PSYNC replid offset+1` and applies every
command once. During a full sync the state is `loading`: an interrupted load cannot be continued
and means flush + full sync.

Blind batches. A batch made only of *blind writes* (`SET key value`, `SET key value PXAT ms`,
`DEL`/`UNLINK`: commands that replace or remove whole keys whatever they held; see
`resp._blind_run`) is sent as a plain pipeline followed by its checkpoint, without MULTI, when the
destination has a single link (one source, not sharded). After a crash inside such a batch the
destination holds some prefix of it and the previous checkpoint, and the batch is applied again
from its start. Each key then ends as the batch's last write to it left it, the same as applying
the batch once. The difference can be seen only while that recovery runs, and only
for a key written twice in that one cut batch: a reader may see its earlier value for a moment.
Why bother: inside MULTI the destination queues a whole batch and runs it later from cold
caches. Under a saturating SET load it spent about 30% more CPU than a native replica, and the
lag grew (bench/streaming.py). With several links, or any other command, batches stay in MULTI.

The key lives in database 0 under a name no application uses (`CHECKPOINT_KEY`). It is part of
the destination's keyspace, so comparisons must skip it: `is_bookkeeping_key()` is what the
comparison helpers (tests/support/compare.py, the benchmarks) and the console's key counts call.
On a Redis Cluster destination the key is in the slot of its hash tag.

The identity of the copy: the checkpoint says how far the data goes, but only as long as the data
is still there. A destination that restarted without persistence, was flushed behind our back, or
one shard of which came back empty, holds less than its checkpoint claims (or no checkpoint, and
only the writes since). So every load writes an *epoch marker* — a random token — into the
destination, one key per primary (`EPOCH_KEY`; `epoch_key(n)` for the other shards of a cluster,
each in a slot of its own shard), and the engine checks the markers when a round starts and every
second while it runs: a marker missing, or another token, means the data it stood for is gone,
and everything is flushed and loaded again (engine.py). The markers are bookkeeping keys too.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "BOOKKEEPING_PREFIX",
    "CHECKPOINT_KEY",
    "EPOCH_KEY",
    "JOB_TAG_FIELD",
    "Checkpoint",
    "CheckpointState",
    "epoch_key",
    "is_bookkeeping_key",
]

# Every key of the syncer starts with this (the hash tag may go on: `{syncer-3}`).
BOOKKEEPING_PREFIX = b"__replicaof:{syncer"
CHECKPOINT_KEY = b"__replicaof:{syncer}:checkpoint"
EPOCH_KEY = b"__replicaof:{syncer}:epoch"
# Field of the same hash naming the job that flushed the destination (SyncEngine(job_tag=...)):
# a job that finds another tag, or none, flushes and loads from scratch; the same tag resumes.
JOB_TAG_FIELD = b"__job"
_FORMAT = b"v1"


def epoch_key(n: int) -> bytes:
    """The epoch marker with hash tag `syncer-<n>` (cluster.py picks n per shard)."""
    return b"__replicaof:{syncer-%d}:epoch" % n


def is_bookkeeping_key(key: bytes | str) -> bool:
    """True for the syncer's own keys, which are not user data."""
    k = key.encode() if isinstance(key, str) else key
    return k.startswith(BOOKKEEPING_PREFIX)


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
