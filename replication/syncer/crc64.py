"""CRC-64/Jones: the checksum at the end of RDB files and DUMP payloads.

`crc64(data, crc)` continues a running checksum, so a stream fed in chunks gets the same value as
the whole file. A full sync checksums every byte twice (the snapshot as it streams, and each
RESTORE payload), so the implementation matters: anycrc (carry-less multiplication where the CPU
has it, tables otherwise) runs at memory speed, some 40 times crcmod's byte-at-a-time C loop;
crcmod's C routine is the fallback where anycrc is not installed. `IMPLEMENTATION` says which.
"""

from __future__ import annotations

from collections.abc import Callable

Buffer = bytes | bytearray | memoryview

# crc64(data, crc=0): the CRC-64/Jones of `data`, continuing from `crc` (the checksum of the
# bytes before it). Bound below to the fastest implementation installed, with no wrapper of ours
# in between: a full sync calls it once per key.
crc64: Callable[..., int]
IMPLEMENTATION: str


def crcmod_crc64() -> Callable[[Buffer, int], int]:
    """crcmod's C routine for CRC-64/Jones, called directly."""
    import crcmod

    # Reflected polynomial 0xad93d23594c935a9 (Jones), init 0, no final xor, as Redis' crc64.c.
    fun = crcmod.mkCrcFun(0x1AD93D23594C935A9, initCrc=0, rev=True, xorOut=0)
    # crcmod's function is a Python closure around its C routine (crcmod._crcfunext) with the
    # defaults (crc, table, routine); with no final xor it passes (data, crc, table) through
    # unchanged, so call the routine itself: one call per key loaded.
    _initial, table, routine = fun.__defaults__ or (0, b"", None)
    assert callable(routine) and isinstance(table, bytes), "unexpected crcmod internals"

    def crc64(data: Buffer, crc: int = 0) -> int:
        return int(routine(data, crc, table))

    return crc64


def anycrc_crc64() -> Callable[[Buffer, int], int]:
    """anycrc's CRC64-REDIS model (the same parameters); raises ImportError without anycrc."""
    import anycrc

    # calc(data, init=None): init None is the model's, 0; empty data returns init.
    calc: Callable[[Buffer, int], int] = anycrc.Model("CRC64-REDIS").calc
    return calc


try:
    crc64, IMPLEMENTATION = anycrc_crc64(), "anycrc"
except ImportError:  # pragma: no cover - the fallback is tested through crcmod_crc64()
    crc64, IMPLEMENTATION = crcmod_crc64(), "crcmod"


class Crc64:
    """A running checksum over a stream fed in chunks."""

    __slots__ = ("value",)

    def __init__(self, value: int = 0) -> None:
        self.value = value

    def update(self, data: Buffer) -> int:
        self.value = crc64(data, self.value)
        return self.value
