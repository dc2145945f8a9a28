"""RESTORE payloads built from RDB items: the fast path of a full sync.

A DUMP payload is the value exactly as an RDB file stores it (type byte + serialized value),
followed by the RDB version as 2 little-endian bytes and the CRC-64 of everything before it as
8 little-endian bytes (Redis src/cluster.c, createDumpPayload / verifyDumpPayload). A destination
refuses a payload whose version is newer than its own with "ERR DUMP payload version or checksum
are wrong"; the engine then falls back to `decode.value_commands`.
"""

from __future__ import annotations

from replication.syncer.crc64 import crc64
from replication.syncer.rdb import RdbKey
from replication.syncer.resp import pack_restore

_TYPE_BYTES = tuple(bytes((t,)) for t in range(256))
_VERSION_BYTES: dict[int, bytes] = {}
_JOIN_ABOVE = 1 << 16  # larger payloads: checksum in pieces, copy once


def dump_payload(rdb_type: int, payload: bytes, rdb_version: int) -> bytes:
    """The DUMP/RESTORE serialization of a value taken from an RDB of version `rdb_version`."""
    version = _VERSION_BYTES.get(rdb_version)
    if version is None:
        if not 0 < rdb_version <= 0xFFFF:
            raise ValueError(f"bad RDB version {rdb_version}")
        version = _VERSION_BYTES[rdb_version] = rdb_version.to_bytes(2, "little")
    if not 0 <= rdb_type <= 255:
        raise ValueError(f"bad RDB type {rdb_type}")
    head = _TYPE_BYTES[rdb_type]
    if len(payload) > _JOIN_ABOVE:
        crc = crc64(version, crc64(payload, crc64(head)))
        return b"".join((head, payload, version, crc.to_bytes(8, "little")))
    body = head + payload + version
    return body + crc64(body).to_bytes(8, "little")


def restore_command(
    key: bytes, item: RdbKey, rdb_version: int, now_ms: int | None = None
) -> list[bytes]:
    """RESTORE key ttl payload REPLACE ABSTTL, with ttl the absolute expiry in ms or 0 for none.

    RESTORE treats a ttl of 0 as "no expiry", so an expiry at or before the epoch (possible only in
    a damaged file) is sent as 1 ms: already expired, the key is not created. `now_ms` is accepted
    for the agreed signature and not used: with ABSTTL the destination itself drops keys whose
    expiry has passed, and the engine decides whether to send them at all.
    """
    del now_ms
    return [
        b"RESTORE",
        key,
        _ttl(item.expire_ms),
        dump_payload(item.type, item.payload, rdb_version),
        b"REPLACE",
        b"ABSTTL",
    ]


def restore_packed(key: bytes, item: RdbKey, rdb_version: int) -> bytes:
    """`restore_command` already packed as RESP (what a standalone destination is sent)."""
    return pack_restore(
        key, _ttl(item.expire_ms), dump_payload(item.type, item.payload, rdb_version)
    )


def _ttl(expire_ms: int) -> bytes:
    if expire_ms == -1:
        return b"0"
    if expire_ms < 1:
        return b"1"
    return b"%d" % expire_ms
