"""CRC-64/Jones: the checksum at the end of RDB files and DUMP payloads.

Backed by crcmod's C extension; `crc64(data, crc)` continues a running checksum, so a stream fed in
chunks gets the same value as the whole file.
"""

from __future__ import annotations

from collections.abc import Callable

import crcmod

Buffer = bytes | bytearray | memoryview

# Reflected polynomial 0xad93d23594c935a9 (Jones), init 0, no final xor, as Redis' crc64.c.
_crc64 = crcmod.mkCrcFun(0x1AD93D23594C935A9, initCrc=0, rev=True, xorOut=0)
# crcmod's function is a Python closure around its C routine (crcmod._crcfunext) with the
# defaults (crc, table, routine); with no final xor it passes (data, crc, table) through
# unchanged, so call the routine itself: one call per key loaded.
_initial, _table, _routine = _crc64.__defaults__ or (0, b"", None)
assert callable(_routine) and isinstance(_table, bytes), "unexpected crcmod internals"
_c_crc64: Callable[[Buffer, int, bytes], int] = _routine


def crc64(data: Buffer, crc: int = 0) -> int:
    """The CRC-64/Jones of `data`, continuing from `crc` (the checksum of the bytes before it)."""
    return _c_crc64(data, crc, _table)


class Crc64:
    """A running checksum over a stream fed in chunks."""

    __slots__ = ("value",)

    def __init__(self, value: int = 0) -> None:
        self.value = value

    def update(self, data: Buffer) -> int:
        self.value = crc64(data, self.value)
        return self.value
