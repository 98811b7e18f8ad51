"""A TCP link a test can cut: a loopback forwarder in front of a real server.

``Link(host, port)`` listens on a free loopback port (``link.port``) and
forwards every connection to ``host:port``, byte for byte. ``cut()`` closes
every forwarded connection at once and refuses new ones (each is accepted
and closed straight away), which is what a client sees when its server goes
away; ``mend()`` forwards again. The server behind the link keeps running,
so a test can take a shared service "down" for one process only.

Rules for callers: ``await link.start()`` before use and ``await
link.close()`` afterwards (or use ``async with Link(...)``); run it on the
test's own event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType

CHUNK = 65_536


class Link:
    """A cuttable loopback forwarder to ``host:port``."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.is_cut = False
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def __aenter__(self) -> Link:
        await self.start()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def cut(self) -> None:
        """Close every forwarded connection and refuse new ones until ``mend()``."""
        self.is_cut = True
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()

    def mend(self) -> None:
        """Forward new connections again."""
        self.is_cut = False

    async def close(self) -> None:
        """Stop listening and drop every connection."""
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.is_cut:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._open.update((writer, up_writer))
        pumps = (
            asyncio.create_task(self._pump(reader, up_writer)),
            asyncio.create_task(self._pump(up_reader, writer)),
        )
        self._tasks.update(pumps)
        for pump in pumps:
            pump.add_done_callback(self._tasks.discard)

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        """Copy ``source`` to ``sink`` until either side closes; then close ``sink``."""
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await source.read(CHUNK):
                sink.write(data)
                await sink.drain()
        self._open.discard(sink)
        sink.transport.abort()
