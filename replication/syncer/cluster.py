"""Writing into a Redis Cluster destination: slot routing, one pipeline per primary, redirects.

- The slot map comes from `CLUSTER SLOTS` of the destination; a key's slot is CRC16 (XMODEM, the
  C implementation in `binascii.crc_hqx`) of the key or of its `{hash tag}`, modulo 16384.
- The keys of a command come from the key specs that `COMMAND` reports (begin_search index /
  keyword, find_keys range / keynum, subcommands included), so every command the source can send
  is routed by the destination's own description of it.
- A command whose keys map to different slots is a fatal `CrossSlotError`; keyless commands
  (FLUSHALL, FUNCTION LOAD, SCRIPT FLUSH …) go to every primary; `PUBLISH` to one.
- `MOVED` re-routes the command and updates the map; `ASK` sends `ASKING` + the command. A batch
  counts as applied only once its redirected commands are applied too. A slot's commands keep
  going to the old primary, which redirects them in order, until it has answered everything
  sent to it, so that a slot migration on the destination never reorders them.

Exactly-once is weaker than on a standalone destination: Redis Cluster runs `MULTI` only within
one slot, so a batch is applied on several primaries without a transaction, and the checkpoint
(in the slot of its hash tag) is written once every primary acknowledged the batch. A crash
between the two re-applies that batch (at-least-once for the last batch).
"""

from __future__ import annotations

import asyncio
import binascii
import functools
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import hiredis

from .checkpoint import CHECKPOINT_KEY, EPOCH_KEY, Checkpoint, epoch_key
from .errors import (
    CrossSlotError,
    ErrorKind,
    FatalSyncError,
    Origin,
    RetryableError,
    Side,
    classify_reply_error,
)
from .resp import RespConnection, TlsOptions, pack, pack_command
from .urls import RedisUrl
from .writer import MAX_IN_FLIGHT, Command, Pipeline, StreamBatch, read_checkpoint_hash

__all__ = ["ClusterWriter", "KeySpecs", "key_slot"]

SLOTS = 16384
_BROADCAST_NONE = frozenset({b"PUBLISH", b"PING", b"ECHO"})


def key_slot(key: bytes) -> int:
    """The cluster slot of `key`, honouring `{hash tags}`."""
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            key = key[start + 1 : end]
    return binascii.crc_hqx(key, 0) % SLOTS


def _flat(pairs: Any) -> dict[bytes, Any]:
    if isinstance(pairs, dict):
        return {k if isinstance(k, bytes) else str(k).encode(): v for k, v in pairs.items()}
    return {pairs[i]: pairs[i + 1] for i in range(0, len(pairs) - 1, 2)}


@dataclass(slots=True)
class _Spec:
    begin: str  # "index" | "keyword" | "unknown"
    index: int = 0
    keyword: bytes = b""
    startfrom: int = 0
    find: str = "range"  # "range" | "keynum" | "unknown"
    lastkey: int = 0
    keystep: int = 1
    limit: int = 0
    keynumidx: int = 0
    firstkey: int = 1


@dataclass(slots=True)
class _Command:
    specs: list[_Spec] = field(default_factory=list)
    subcommands: dict[bytes, _Command] = field(default_factory=dict)
    legacy: tuple[int, int, int] = (0, 0, 0)  # first, last, step (for servers without specs)


class KeySpecs:
    """Which arguments of a command are keys, from the server's `COMMAND` reply."""

    def __init__(self, commands: dict[bytes, _Command]) -> None:
        self.commands = commands

    @classmethod
    def from_command_reply(cls, reply: list[Any]) -> KeySpecs:
        return cls({bytes(c[0]).upper(): cls._command(c) for c in reply})

    @classmethod
    def _command(cls, c: list[Any]) -> _Command:
        cmd = _Command(legacy=(int(c[3]), int(c[4]), int(c[5])))
        if len(c) > 8:
            for raw in c[8] or []:
                cmd.specs.append(cls._spec(_flat(raw)))
        if len(c) > 9:
            for sub in c[9] or []:
                name = bytes(sub[0]).upper().split(b"|", 1)[-1]
                cmd.subcommands[name] = cls._command(sub)
        return cmd

    @staticmethod
    def _spec(d: dict[bytes, Any]) -> _Spec:
        bs = _flat(d.get(b"begin_search", []))
        fk = _flat(d.get(b"find_keys", []))
        spec = _Spec(begin=bytes(bs.get(b"type", b"unknown")).decode())
        bspec = _flat(bs.get(b"spec", []))
        if spec.begin == "index":
            spec.index = int(bspec.get(b"index", 0))
        elif spec.begin == "keyword":
            spec.keyword = bytes(bspec.get(b"keyword", b"")).upper()
            spec.startfrom = int(bspec.get(b"startfrom", 0))
        spec.find = bytes(fk.get(b"type", b"unknown")).decode()
        fspec = _flat(fk.get(b"spec", []))
        if spec.find == "range":
            spec.lastkey = int(fspec.get(b"lastkey", 0))
            spec.keystep = int(fspec.get(b"keystep", 1))
            spec.limit = int(fspec.get(b"limit", 0))
        elif spec.find == "keynum":
            spec.keynumidx = int(fspec.get(b"keynumidx", 0))
            spec.firstkey = int(fspec.get(b"firstkey", 1))
            spec.keystep = int(fspec.get(b"keystep", 1))
        return spec

    def keys(self, args: Sequence[bytes]) -> list[bytes]:
        """The key arguments of `args` (empty for keyless or unknown commands)."""
        cmd = self.commands.get(args[0].upper())
        if cmd is None:
            return []
        if cmd.subcommands and len(args) > 1:
            cmd = cmd.subcommands.get(args[1].upper(), cmd)
        if not cmd.specs:
            first, last, step = cmd.legacy
            if first <= 0:
                return []
            last = len(args) + last if last < 0 else last
            return list(args[first : last + 1 : max(step, 1)])
        out: list[bytes] = []
        argc = len(args)
        for spec in cmd.specs:
            out += _spec_keys(spec, args, argc)
        return out


def _spec_keys(spec: _Spec, args: Sequence[bytes], argc: int) -> list[bytes]:
    # Follows getKeysUsingKeySpecs() in Redis's db.c.
    if spec.begin == "index":
        first = spec.index
    elif spec.begin == "keyword":
        found = -1
        if spec.startfrom >= 0:
            rng: range = range(spec.startfrom, argc)
        else:
            rng = range(argc + spec.startfrom, 0, -1)
        for i in rng:
            if 0 < i < argc and args[i].upper() == spec.keyword:
                found = i
                break
        if found < 0:
            return []
        first = found + 1
    else:
        return []
    if spec.find == "range":
        if spec.lastkey >= 0:
            last = first + spec.lastkey
        elif not spec.limit:
            last = argc + spec.lastkey
        else:
            last = first + ((argc - first) // spec.limit + spec.lastkey)
        step = spec.keystep
    elif spec.find == "keynum":
        try:
            numkeys = int(args[first + spec.keynumidx])
        except (IndexError, ValueError):
            return []
        first = first + spec.firstkey
        step = spec.keystep
        last = first + (numkeys - 1) * step
    else:
        return []
    last = min(last, argc - 1)
    if first >= argc or last < first:
        return []
    return list(args[first : last + 1 : step])


@dataclass(slots=True)
class _Pending:
    parts: int
    ckpt: Checkpoint | None
    link_id: str
    on_done: Callable[[], None] | None


class ClusterWriter:
    """A Redis Cluster destination (see module doc). `source` is the index of the source whose
    link writes through it (None for the engine's own connection), for its errors."""

    needs_args = True

    def __init__(
        self,
        url: RedisUrl,
        tls: TlsOptions | None = None,
        *,
        max_in_flight: int = MAX_IN_FLIGHT,
        source: int | None = None,
    ) -> None:
        self.url = url
        self.tls = tls
        self.max_in_flight = max_in_flight  # for the whole writer, shared by its pipelines
        self.source = source
        # Errors found here rather than by a server (cross-slot, database numbers, the slot map).
        self.origin = Origin(Side.DESTINATION, url.address, source)
        self.slot_node: list[str] = [""] * SLOTS
        self.pipes: dict[str, Pipeline] = {}
        self.specs: KeySpecs | None = None
        self._urls: dict[str, RedisUrl] = {}
        self._pending: deque[_Pending] = deque()
        self._ckpt_slot = key_slot(CHECKPOINT_KEY)
        self._moved: dict[int, str] = {}  # slot -> its new primary, once the old one is idle

    async def open(self) -> None:
        seed = await RespConnection.open(
            self.url, self.tls, select_db=False, side=Side.DESTINATION, source=self.source
        )
        try:
            self.specs = KeySpecs.from_command_reply(await seed.call(b"COMMAND"))
            slots = await seed.call(b"CLUSTER", b"SLOTS")
        finally:
            await seed.aclose()
        for lo, hi, primary, *_ in slots:
            host = primary[0].decode() or self.url.host
            addr = f"{host}:{int(primary[1])}"
            self._urls[addr] = RedisUrl(
                host=host,
                port=int(primary[1]),
                tls=self.url.tls,
                username=self.url.username,
                password=self.url.password,
                sni=self.url.sni,
                connect_timeout=self.url.connect_timeout,
            )
            for s in range(int(lo), int(hi) + 1):
                self.slot_node[s] = addr
        if "" in self.slot_node:
            raise RetryableError(
                f"{self.url.address}: not every slot is served (cluster down?)",
                kind=ErrorKind.UNAVAILABLE,
                origin=self.origin,
            )
        per_pipe = max(256 << 10, self.max_in_flight // len(self._urls))
        for addr, url in self._urls.items():
            conn = await RespConnection.open(
                url, self.tls, select_db=False, side=Side.DESTINATION, source=self.source
            )
            self.pipes[addr] = Pipeline(conn, redirect=self._redirect, max_in_flight=per_pipe)

    async def aclose(self) -> None:
        for p in self.pipes.values():
            await p.aclose()
        self.pipes = {}

    def _pipe_for_slot(self, slot: int) -> Pipeline:
        return self.pipes[self._node_for(slot)]

    def _redirect(self, msg: str, cmd: bytes, applied: Callable[[], None]) -> None:
        """Send a redirected command again, to the primary named (after ASKING for ASK).

        Order: every command of a slot still goes to the node we had for it, which redirects
        them in the order it received them, until that node has answered everything we sent it;
        only then does MOVED change where the slot's commands go (`_route`). So a later command
        never overtakes an earlier one that is being redirected."""
        kind, slot_s, addr = msg.split()[:3]
        pipe = self.pipes.get(addr)
        if pipe is None:
            raise RetryableError(
                f"destination: {msg}: a primary we do not know yet; reconnecting",
                kind=ErrorKind.UNAVAILABLE,
                origin=Origin(Side.DESTINATION, addr, self.source),
            )
        if kind == "MOVED":
            self._moved[int(slot_s)] = addr
            pipe.send_nowait(cmd, 1, on_done=applied, cmds=(cmd,))
        else:
            pipe.send_nowait(pack(b"ASKING") + cmd, 2, on_done=applied)

    def _node_for(self, slot: int) -> str:
        """Where this slot's commands go now (see `_redirect` for a slot that moved)."""
        new = self._moved.get(slot)
        if new is not None and self.pipes[self.slot_node[slot]].idle:
            self.slot_node[slot] = new
            del self._moved[slot]
        return self.slot_node[slot]

    def slot_of(self, args: Sequence[bytes]) -> int | None:
        """The one slot of the command's keys; None when keyless; CrossSlotError otherwise."""
        assert self.specs is not None
        if args[0].upper() == b"RESTORE":
            return key_slot(args[1])
        keys = self.specs.keys(args)
        if not keys:
            return None
        slot = key_slot(keys[0])
        for k in keys[1:]:
            if key_slot(k) != slot:
                name = args[0].decode(errors="replace")
                raise CrossSlotError(
                    f"destination is a Redis Cluster: {name} with keys in different slots "
                    f"({keys[0][:40]!r} and {k[:40]!r}) cannot be applied there",
                    origin=self.origin,
                )
        return slot

    async def read_checkpoints(self) -> dict[str, Checkpoint]:
        pipe = self._pipe_for_slot(self._ckpt_slot)

        async def call(*args: bytes) -> Any:
            (reply,) = await pipe.call(pack(*args))
            if type(reply) is hiredis.ReplyError:
                raise classify_reply_error(str(reply), where="destination", origin=pipe.origin)
            return reply

        return await read_checkpoint_hash(call)

    def epoch_keys(self) -> list[bytes]:
        """One epoch marker per primary, each in a slot that primary serves: the one with the
        checkpoint's own hash tag, then `{syncer-<n>}` for the others (the first n that lands)."""
        keys = {self.slot_node[key_slot(EPOCH_KEY)]: EPOCH_KEY}
        n = 0
        while len(keys) < len(self.pipes):
            key = epoch_key(n)
            keys.setdefault(self.slot_node[key_slot(key)], key)
            n += 1
        return [keys[addr] for addr in sorted(keys)]

    async def flushall(self) -> None:
        for p in self.pipes.values():
            await p.send(pack(b"FLUSHALL"), 1)
        await self.wait_idle()

    async def probe(self, cmd: Sequence[bytes]) -> Any:
        await self.wait_idle()
        slot = self.slot_of(cmd)
        pipes = list(self.pipes.values()) if slot is None else [self._pipe_for_slot(slot)]
        reply: Any = None
        for p in pipes:
            (reply,) = await p.call(pack(*cmd))
        return reply

    async def select(self, db: int) -> None:
        if db != 0:
            raise FatalSyncError(
                f"the source uses database {db}, but a Redis Cluster destination has only "
                "database 0",
                kind=ErrorKind.UNSUPPORTED,
                origin=self.origin,
            )

    def _route(self, cmds: Sequence[Sequence[bytes]]) -> dict[str, list[bytes]]:
        by_node: dict[str, list[bytes]] = {}
        for args in cmds:
            name = args[0].upper()
            if name == b"SELECT":
                if args[1] != b"0":
                    raise FatalSyncError(
                        f"the source uses database {args[1].decode()}, but a Redis Cluster "
                        "destination has only database 0",
                        kind=ErrorKind.UNSUPPORTED,
                        origin=self.origin,
                    )
                continue
            packed = pack_command(tuple(args))
            slot = self.slot_of(args)
            if slot is not None:
                by_node.setdefault(self._node_for(slot), []).append(packed)
            elif name in _BROADCAST_NONE:
                by_node.setdefault(next(iter(self.pipes)), []).append(packed)
            else:
                for addr in self.pipes:
                    by_node.setdefault(addr, []).append(packed)
        return by_node

    async def _send(
        self,
        by_node: dict[str, list[bytes]],
        ckpt: Checkpoint | None,
        link_id: str,
        on_done: Callable[[], None] | None,
    ) -> None:
        pending = _Pending(len(by_node), ckpt, link_id, on_done)
        self._pending.append(pending)

        def part_done() -> None:
            pending.parts -= 1
            self._complete()

        if not by_node:
            self._complete()
        for addr, packed in by_node.items():
            await self.pipes[addr].send(packed, len(packed), on_done=part_done, cmds=packed)

    def _complete(self) -> None:
        """Batches finish in order; the checkpoint follows the last batch every primary acked."""
        last: _Pending | None = None
        while self._pending and self._pending[0].parts <= 0:
            last = self._pending.popleft()
            if last.on_done is not None and last.ckpt is None:
                last.on_done()
            if last.ckpt is not None:
                ckpt_done = last.on_done
                self._pipe_for_slot(self._ckpt_slot).send_nowait(
                    pack(b"HSET", CHECKPOINT_KEY, last.link_id, last.ckpt.encode()),
                    1,
                    on_done=ckpt_done,
                )

    async def load(
        self, cmds: list[Command], on_done: Callable[[], None] | None, *, one_line: bool = False
    ) -> None:
        # needs_args: the engine gives this writer arguments, never packed commands; its replies
        # (MOVED/ASK included) are matched one by one whatever `one_line` says.
        await self._send(self._route(cast(list[list[bytes]], cmds)), None, "", on_done)

    async def commit_load(self, link_id: str, ckpt: Checkpoint) -> None:
        await self.wait_idle()
        await self._pipe_for_slot(self._ckpt_slot).send(
            pack(b"HSET", CHECKPOINT_KEY, link_id, ckpt.encode()), 1
        )
        await self.wait_idle()

    async def apply_stream(self, batch: StreamBatch) -> None:
        # `blind` changes nothing here: every batch is already written without MULTI and its
        # checkpoint follows once every primary acknowledged it (module docstring).
        await self._send(
            self._route(batch.cmds),
            batch.ckpt,
            batch.link_id,
            functools.partial(batch.on_applied, batch.ncmds),
        )

    async def wait_idle(self) -> None:
        for _ in range(3):  # redirected commands may land on another primary meanwhile
            for p in list(self.pipes.values()):
                await p.wait_idle()
            await asyncio.sleep(0)

    def sent_after_error(self) -> int:
        # Per primary: another primary's batches are not ordered with the failed one anyway, and
        # those it applied carry the checkpoint only if it holds the checkpoint's slot.
        return sum(p.sent_after_error for p in self.pipes.values())
