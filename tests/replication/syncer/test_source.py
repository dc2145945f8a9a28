"""The replica side of the protocol against real servers: finding a source's primaries, the
handshake, PSYNC's answers, the snapshot in both transfer formats, and the link's errors."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest

from replication.syncer.errors import AuthError, FatalSyncError, RetryableError
from replication.syncer.rdb import RdbKey, RdbParser
from replication.syncer.source import PsyncReply, SourceLink, discover_primaries
from replication.syncer.urls import RedisUrl, parse_redis_url
from tests.support.servers import RedisClusterServers, RedisServer, free_port, silent_port

pytestmark = pytest.mark.integration

Servers = Callable[..., RedisServer]


def _url(server: RedisServer, tail: str = "") -> RedisUrl:
    return parse_redis_url(server.url + tail)


async def _load(link: SourceLink) -> tuple[PsyncReply, RdbParser, int]:
    """Connect, ask for a full sync and read the whole snapshot: (reply, parser, keys)."""
    await link.connect()
    reply = await link.psync(None, -1)
    parser = RdbParser()
    keys = 0
    async for chunk in link.rdb_chunks():
        keys += sum(type(item) is RdbKey for item in parser.feed(chunk))
    return reply, parser, keys


def test_a_standalone_server_is_its_own_only_primary(servers: Servers) -> None:
    src = servers()
    url = _url(src)
    assert asyncio.run(discover_primaries(url)) == [url]


def test_cluster_no_is_believed_without_connecting() -> None:
    url = parse_redis_url(f"redis://127.0.0.1:{free_port()}?cluster=no")
    assert asyncio.run(discover_primaries(url)) == [url]


@pytest.fixture
def cluster() -> Iterator[RedisClusterServers]:
    with RedisClusterServers(3) as c:
        yield c


def test_a_cluster_has_one_url_per_primary(cluster: RedisClusterServers) -> None:
    url = parse_redis_url(f"redis://127.0.0.1:{cluster.nodes[1].port}")
    found = asyncio.run(discover_primaries(url))
    assert sorted(u.port for u in found) == sorted(n.port for n in cluster.nodes)
    assert all(u.host == "127.0.0.1" and u.cluster is False for u in found)


def test_cluster_yes_on_a_standalone_server_is_a_config_error(servers: Servers) -> None:
    src = servers()
    with pytest.raises(FatalSyncError) as info:
        asyncio.run(discover_primaries(_url(src, "?cluster=yes"), source=4))
    err = info.value
    assert "not a cluster node" in str(err)
    assert (err.kind, err.side, err.source, err.endpoint) == (
        *("config", "source", 4),
        f"127.0.0.1:{src.port}",
    )


@pytest.mark.parametrize("diskless", [False, True])
def test_full_sync_snapshot_then_continue(servers: Servers, diskless: bool) -> None:
    """FULLRESYNC with a snapshot (length-prefixed, or EOF-marked when diskless) that parses to
    its end; then PSYNC at the snapshot's offset continues (+CONTINUE) and the stream carries
    the writes made since."""
    args = ["--repl-diskless-sync", "yes" if diskless else "no", "--repl-diskless-sync-delay", "0"]
    src = servers(args=args)
    c = src.client()
    for i in range(500):
        c.set(f"k:{i}", "v" * 50)

    async def run() -> tuple[PsyncReply, RdbParser, int, int | None, PsyncReply, bytes]:
        first = SourceLink(_url(src))
        try:
            reply, parser, keys = await _load(first)
            size = first.rdb_size
            first.send_ack(reply.offset)
        finally:
            first.close()
        c.set("after", "1")
        again = SourceLink(_url(src))
        try:
            await again.connect()
            cont = await again.psync(reply.replid, reply.offset)
            data = b""
            while b"after" not in data:
                data += await again.read()
        finally:
            again.close()
        return reply, parser, keys, size, cont, data

    reply, parser, keys, size, cont, data = asyncio.run(run())
    assert reply.full and len(reply.replid) == 40 and reply.offset >= 0
    assert parser.done and keys == 500
    assert (size is None) == diskless
    assert not cont.full and cont.replid == reply.replid and cont.offset == reply.offset
    assert b"SET" in data.upper()


def test_an_unknown_history_gets_a_full_resync(servers: Servers) -> None:
    src = servers()

    async def run() -> PsyncReply:
        link = SourceLink(_url(src))
        try:
            await link.connect()
            return await link.psync("0123456789abcdef" * 2 + "01234567", 1000)
        finally:
            link.close()

    reply = asyncio.run(run())
    assert reply.full and reply.replid != "0123456789abcdef" * 2 + "01234567"


def _connect(url: str, *, read_timeout: float = 60.0, source: int | None = None) -> None:
    """Only the handshake (AUTH, REPLCONF) of a link to `url`."""

    async def run() -> None:
        link = SourceLink(parse_redis_url(url), read_timeout=read_timeout, source=source)
        try:
            await link.connect()
        finally:
            link.close()

    asyncio.run(run())


def test_wrong_password_at_connect_is_auth_with_its_origin(servers: Servers) -> None:
    src = servers(password="right")
    with pytest.raises(AuthError) as info:
        _connect(f"redis://:nope@127.0.0.1:{src.port}", source=6)
    err = info.value
    assert (err.kind, err.side, err.source, err.endpoint) == (
        *("auth", "source", 6),
        f"127.0.0.1:{src.port}",
    )
    assert "nope" not in str(err)


def test_a_source_that_never_answers_times_out() -> None:
    with silent_port() as port, pytest.raises(RetryableError) as info:
        _connect(f"redis://127.0.0.1:{port}", read_timeout=0.3)
    assert info.value.kind == "timeout" and "no reply" in str(info.value)


def test_a_replica_link_the_source_kills_is_closed(servers: Servers) -> None:
    src = servers()
    src.client().set("k", "v")

    async def run() -> None:
        link = SourceLink(_url(src), source=0)
        try:
            await _load(link)
            src.client().client_kill_filter(_type="replica")
            while True:
                await link.read()
        finally:
            link.close()

    with pytest.raises(RetryableError) as info:
        asyncio.run(run())
    err = info.value
    assert (err.kind, err.side, err.source) == ("closed", "source", 0)
    assert "closed the replication link" in str(err)
