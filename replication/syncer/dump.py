"""RESTORE payloads built from RDB items: the fast path of a full sync.

A DUMP payload is the value exactly as an RDB file stores it (type byte + serialized value),
followed by the RDB version as 2 little-endian bytes and the CRC-64 of everything before it as
8 little-endian bytes (Redis src/cluster.c, createDumpPayload / verifyDumpPayload). A destination
refuses a payload whose version is newer than its own with "ERR DUMP payload version or checksum
are wrong"; the engine then falls back to `decode.value_commands`.
"""

from __future__ import annotations

from replication.syncer.crc64 import crc64
from replication.syncer.rdb import Packer, RdbKey
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


def restore_packer(rdb_version: int, skip_prefix: bytes, expiry_floor: list[int]) -> Packer:
    """The full sync's fast path (`RdbParser.packer`): a key's `restore_packed` command built
    straight from the parser's buffer, with one checksum call and one format, no RdbKey and no
    function in between; byte for byte what `restore_packed` gives.

    It declines (None: the key comes as an RdbKey, for the full sync's own rules) keys whose
    name starts with `skip_prefix` and keys that expire at or before `expiry_floor[0]` (a list,
    so that the caller moves the floor as the load goes: the expiry gap of fullsync.py)."""
    version = rdb_version.to_bytes(2, "little")
    heads = _TYPE_BYTES
    # *6 RESTORE key ttl payload REPLACE ABSTTL; the payload: type, value, version, then CRC.
    persistent = (
        b"*6\r\n$7\r\nRESTORE\r\n$%d\r\n%b\r\n$1\r\n0\r\n$%d\r\n%b%b"
        b"\r\n$7\r\nREPLACE\r\n$6\r\nABSTTL\r\n"
    )
    expiring = (
        b"*6\r\n$7\r\nRESTORE\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n$%d\r\n%b%b"
        b"\r\n$7\r\nREPLACE\r\n$6\r\nABSTTL\r\n"
    )
    startswith = bytes.startswith
    checksum = crc64

    def pack(key: bytes, t: int, buf: bytes, start: int, end: int, expire: int) -> bytes | None:
        if startswith(key, skip_prefix):
            return None
        # One contiguous body for one checksum call: anycrc's per-call cost is what a ~100 byte
        # value costs, so one call on a copy beats two on the parts.
        body = heads[t] + buf[start:end] + version
        crc = checksum(body).to_bytes(8, "little")
        if expire == -1:
            return persistent % (len(key), key, len(body) + 8, body, crc)
        if expire <= expiry_floor[0]:
            return None
        ttl = b"%d" % expire
        return expiring % (len(key), key, len(ttl), ttl, len(body) + 8, body, crc)

    return pack
