"""A TCP proxy to put between a client and the broker, so a test can cut the network.

``cut()`` resets every live connection (both sides see the socket die, as when a link or a
NAT table goes away) and from then on accepts new connections but forwards nothing and
answers nothing: the client's connection attempts hang as they would on a dead route.
``restore()`` drops those stalled attempts (so clients retry at once) and forwards again::

    async with TcpProxy(("127.0.0.1", 5672)) as proxy:
        url = f"amqp://user:pw@127.0.0.1:{proxy.port}/"
        ...
        proxy.cut()
        proxy.restore()
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from types import TracebackType
from typing import Self

__all__ = ["TcpProxy"]

_CHUNK = 64 * 1024


class TcpProxy:
    def __init__(self, upstream: tuple[str, int], *, host: str = "127.0.0.1") -> None:
        self.upstream = upstream
        self.host = host
        self.port = 0
        self.is_cut = False
        self.accepted = 0  # connections accepted, forwarded or not
        self.cuts = 0  # live connections reset by cut()
        self._server: asyncio.Server | None = None
        self._live: set[asyncio.StreamWriter] = set()  # both ends of forwarded connections
        self._stalled: set[asyncio.StreamWriter] = set()  # accepted while cut
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in [*self._live, *self._stalled]:
            _reset(writer)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def cut(self) -> None:
        """Reset every live connection; stall new ones until :meth:`restore`."""
        self.is_cut = True
        self.cuts += len(self._live) // 2
        for writer in list(self._live):
            _reset(writer)
        self._live.clear()

    def restore(self) -> None:
        """Forward again; connection attempts stalled meanwhile are dropped, to retry."""
        self.is_cut = False
        for writer in list(self._stalled):
            _reset(writer)
        self._stalled.clear()

    @property
    def live_connections(self) -> int:
        return len(self._live) // 2

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self.is_cut:
            self._stalled.add(writer)
            return  # held open, silent, until restore() or close()
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            _reset(writer)
            return
        if self.is_cut:  # cut while connecting upstream
            _reset(up_writer)
            self._stalled.add(writer)
            return
        self._live |= {writer, up_writer}
        for source, target in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, target, (writer, up_writer)))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(
        self,
        source: asyncio.StreamReader,
        target: asyncio.StreamWriter,
        pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
    ) -> None:
        try:
            while data := await source.read(_CHUNK):
                target.write(data)
                await target.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            for writer in pair:
                self._live.discard(writer)
                _reset(writer)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (SO_LINGER 0): the peer sees the connection die, not a goodbye."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(Exception):
        writer.transport.abort()
