"""The syncer: the data plane of Replica Of.

Reads sources with the replication protocol (full sync from the RDB snapshot, then the command
stream) and applies them to the destination. Plain asyncio; nothing here imports Django.
"""

from .checkpoint import CHECKPOINT_KEY, Checkpoint, CheckpointState, is_bookkeeping_key
from .engine import DestinationConfig, SourceConfig, SyncEngine
from .errors import (
    AuthError,
    CrossSlotError,
    ErrorKind,
    FatalSyncError,
    FullSyncRequired,
    OutOfMemoryError,
    OutputBufferLimitError,
    RetryableError,
    Side,
    SyncError,
)
from .resp import TlsOptions
from .status import LinkStatus, Phase, SourceStatus
from .urls import RedisUrl, UrlError, parse_redis_url

__all__ = [
    "CHECKPOINT_KEY",
    "AuthError",
    "Checkpoint",
    "CheckpointState",
    "CrossSlotError",
    "DestinationConfig",
    "ErrorKind",
    "FatalSyncError",
    "FullSyncRequired",
    "LinkStatus",
    "OutOfMemoryError",
    "OutputBufferLimitError",
    "Phase",
    "RedisUrl",
    "RetryableError",
    "Side",
    "SourceConfig",
    "SourceStatus",
    "SyncEngine",
    "SyncError",
    "TlsOptions",
    "UrlError",
    "is_bookkeeping_key",
    "parse_redis_url",
]
