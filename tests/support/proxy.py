"""A TCP proxy the test controls: cut every link, refuse new ones, throttle the download side.

It runs its own asyncio loop in a daemon thread, so it serves synchronous tests, asyncio tests and
subprocesses alike:

    with TcpProxy(server.port) as proxy:
        url = f"redis://127.0.0.1:{proxy.port}"
        proxy.throttle(200_000)   # bytes per second from the server to the client
        proxy.cut()               # close every open connection (both sides)
        proxy.refuse(True)        # new connections are closed at once
        proxy.pause()             # a silent partition: nothing passes, nothing is closed
        proxy.resume()

`make_socket` creates the socket of each connection to the target, for a target that only a
socket made elsewhere can reach (tests/support/hosts.py: inside a network namespace); `tls`
serves clients over TLS in front of a plain target (a server built without TLS).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from collections.abc import Callable
from typing import Any

from .servers import free_port

_CHUNK = 65536


class TcpProxy:
    def __init__(
        self,
        target_port: int,
        target_host: str = "127.0.0.1",
        port: int | None = None,
        *,
        make_socket: Callable[[], socket.socket] | None = None,
        tls: ssl.SSLContext | None = None,
    ):
        self.target = (target_host, target_port)
        self.make_socket = make_socket
        self.tls = tls  # served to clients (a TLS endpoint in front of a plain server)
        self.port = port or free_port()
        self.rate: float | None = None  # bytes/s server → client; None = unlimited
        self.refusing = False
        self.connections_total = 0  # connections passed through to the target
        self.accepted_total = 0  # every connection accepted, including ones the target refused
        self.bytes_down = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._flowing: asyncio.Event | None = None  # cleared while paused

    # -- control, from the test's thread -------------------------------------------------------

    def start(self) -> TcpProxy:
        self._thread.start()
        self._call(self._start)
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._call(self._stop)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def cut(self) -> int:
        """Close every open connection; returns how many were cut."""
        return int(self._call(self._cut))

    def refuse(self, on: bool = True) -> None:
        self.refusing = on

    def throttle(self, bytes_per_second: float | None) -> None:
        self.rate = bytes_per_second

    def pause(self) -> None:
        """A silent partition: no byte passes either way (new connections are accepted but hear
        nothing), no connection is closed, no FIN, no RST; `resume()` lets it all through."""
        self._call(self._set_flowing(False))

    def resume(self) -> None:
        self._call(self._set_flowing(True))

    @property
    def open_links(self) -> int:
        return len(self._links)

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _call(self, fn: Callable[[], Any]) -> Any:
        async def run() -> Any:
            return await fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    # -- inside the loop -----------------------------------------------------------------------

    async def _start(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", self.port, ssl=self.tls
        )

    def _set_flowing(self, on: bool) -> Callable[[], Any]:
        async def flip() -> None:
            assert self._flowing is not None
            if on:
                self._flowing.set()
            else:
                self._flowing.clear()

        return flip

    async def _stop(self) -> None:
        await self._cut()
        if self._server is not None:
            self._server.close()
        # Finish every connection handler, so none is destroyed pending when the loop stops.
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    async def _cut(self) -> int:
        links = list(self._links)
        for a, b in links:
            for w in (a, b):
                with contextlib.suppress(Exception):
                    w.transport.abort()
        self._links.clear()
        return len(links)

    async def _handle(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        self.accepted_total += 1
        if self.refusing:
            c_writer.transport.abort()
            return
        assert self._flowing is not None
        await self._flowing.wait()  # paused: the connection is accepted and hears nothing
        try:
            s_reader, s_writer = await self._open_target()
        except OSError:
            c_writer.transport.abort()
            return
        self.connections_total += 1
        pair = (c_writer, s_writer)
        self._links.add(pair)
        up = asyncio.create_task(self._pump(c_reader, s_writer, throttled=False))
        down = asyncio.create_task(self._pump(s_reader, c_writer, throttled=True))
        # Cancelled only by stop(); end normally, as Python 3.11's start_server logs a cancelled
        # connection handler as an error.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        for t in (up, down):
            t.cancel()
        for w in pair:
            with contextlib.suppress(Exception):
                w.transport.abort()
        self._links.discard(pair)

    async def _open_target(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.make_socket is None:
            return await asyncio.open_connection(*self.target)
        sock = self.make_socket()
        try:
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, self.target)
        except BaseException:
            sock.close()
            raise
        return await asyncio.open_connection(sock=sock)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, throttled: bool
    ) -> None:
        while True:
            rate = self.rate if throttled else None
            data = await reader.read(
                _CHUNK if rate is None else max(1, min(_CHUNK, int(rate / 20)))
            )
            if not data:
                with contextlib.suppress(Exception):
                    writer.write_eof()
                return
            assert self._flowing is not None
            await self._flowing.wait()  # paused: hold the bytes, say nothing
            if throttled:
                self.bytes_down += len(data)
            writer.write(data)
            await writer.drain()
            if rate:
                await asyncio.sleep(len(data) / rate)
