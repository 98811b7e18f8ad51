"""Cheap clients for the load agents: a technician socket and a keep-alive HTTP client.

:class:`Phone` is a real RFC 6455 client: python-websockets' sans-I/O
``ClientProtocol`` does the handshake, parses what the server sends and answers
its keepalive pings, on a plain ``asyncio.Protocol`` (no task per socket, so
thousands fit in one process). Hot senders may write frames they encoded once
(:func:`text_frame`, masked as a client must) with :meth:`Phone.write_raw`: a
batch of location frames then costs the agent one ``write``, so the server,
not the load generator, is what saturates.

:class:`Http` speaks just enough HTTP/1.1 (one keep-alive connection, JSON
bodies with ``Content-Length``) to set up organisations and workers and to
post jobs, with the send time taken right before the request is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from typing import Any, cast

import msgspec
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

WS_PATH = "/v1/ws/worker"
PING = b'{"type":"ping"}'
PONG_PREFIX = b'{"type":"pong"'


def text_frame(payload: bytes) -> bytes:
    """``payload`` as one masked client text frame, ready to write."""
    return Frame(Opcode.TEXT, payload).serialize(mask=True)


PING_FRAME = text_frame(PING)


class HandshakeFailed(RuntimeError):
    """The server refused the websocket upgrade (or the socket closed first).

    ``status`` is the HTTP status of the refusal (``None`` if the socket closed).
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Phone(asyncio.Protocol):
    """One technician's websocket. Subclasses override :meth:`on_text` / :meth:`on_pong`.

    Application pings (``{"type":"ping"}``) are answered in order on a socket,
    after every frame sent before them has been handled, so a ``pong`` is the
    acknowledgement barrier for everything sent earlier. :meth:`ping` returns a
    future of the round trip in nanoseconds.
    """

    def __init__(self, port: int, token: str | None, path: str = WS_PATH) -> None:
        self._ws = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}{path}"), max_size=None)
        self._token = token
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self._pings: deque[tuple[int, asyncio.Future[int] | None]] = deque()

    # -- asyncio.Protocol ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        request = self._ws.connect()
        if self._token is not None:
            request.headers["Authorization"] = f"Bearer {self._token}"
        self._ws.send_request(request)
        self._flush()

    def data_received(self, data: bytes) -> None:
        now = time.time_ns()
        self._ws.receive_data(data)
        for event in self._ws.events_received():
            if isinstance(event, Frame):
                if event.opcode is Opcode.TEXT:
                    payload = bytes(event.data)
                    if payload.startswith(PONG_PREFIX):
                        self._pong(now)
                    else:
                        self.on_text(payload, now)
            elif isinstance(event, Response) and not self.opened.done():
                if event.status_code == 101 and self._ws.handshake_exc is None:
                    self.opened.set_result(None)
                else:
                    body = bytes(event.body or b"")[:200].decode(errors="replace")
                    self.opened.set_exception(
                        HandshakeFailed(f"{event.status_code}: {body}", event.status_code)
                    )
        self._flush()

    def eof_received(self) -> bool | None:
        self._ws.receive_eof()
        self._flush()
        return None

    @property
    def close_reason(self) -> str:
        """Why the socket closed, as far as the server said (close code and reason)."""
        rcvd = self._ws.close_rcvd
        if rcvd is None:
            return "closed without a close frame"
        return f"close {rcvd.code} {rcvd.reason!r}"

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(HandshakeFailed(f"connection lost: {exc!r}"))
        if not self.closed.done():
            self.closed.set_result(None)
        for _, fut in self._pings:
            if fut is not None and not fut.done():
                fut.set_exception(ConnectionError("socket closed before the pong"))
        self._pings.clear()

    # -- sending ---------------------------------------------------------------------

    def _flush(self) -> None:
        transport = self.transport
        if transport is None:
            return
        for chunk in self._ws.data_to_send():
            if chunk:
                transport.write(chunk)
            elif transport.can_write_eof():
                transport.write_eof()

    def send_text(self, payload: bytes) -> None:
        """Send one text frame through the protocol (framed and masked now)."""
        self._ws.send_text(payload)
        self._flush()

    def write_raw(self, frames: bytes) -> None:
        """Write frames encoded beforehand with :func:`text_frame`."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frames)

    def ping(self) -> asyncio.Future[int]:
        """Send an application ping; the future gets the round trip in ns."""
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pings.append((time.time_ns(), fut))
        self.write_raw(PING_FRAME)
        return fut

    def expect_pong(self) -> None:
        """Note a ping written by the caller inside a raw batch (no future)."""
        self._pings.append((time.time_ns(), None))

    def _pong(self, now: int) -> None:
        if self._pings:
            sent, fut = self._pings.popleft()
            if fut is not None and not fut.done():
                fut.set_result(now - sent)
        self.on_pong(now)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self._ws.send_close(1000)
            self._flush()
            self.transport.close()

    # -- hooks -----------------------------------------------------------------------

    def on_text(self, payload: bytes, now_ns: int) -> None:
        """A text frame other than ``pong`` arrived at ``now_ns`` (``time.time_ns``)."""

    def on_pong(self, now_ns: int) -> None:
        """A ``pong`` arrived at ``now_ns``."""


async def open_phone(phone: Phone, port: int, timeout_s: float = 30.0) -> Phone:
    """Connect ``phone`` to ``127.0.0.1:port`` and wait for the completed handshake."""
    loop = asyncio.get_running_loop()
    await loop.create_connection(lambda: phone, "127.0.0.1", port)
    await asyncio.wait_for(asyncio.shield(phone.opened), timeout_s)
    return phone


class HttpError(RuntimeError):
    """A setup call answered something other than what the bench needs."""


class Http:
    """One keep-alive HTTP/1.1 connection to ``127.0.0.1:port`` with JSON bodies."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> Http:
        self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self._port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self._writer.wait_closed()

    async def call(
        self, method: str, path: str, body: Any = None, token: str | None = None
    ) -> tuple[int, Any]:
        status, answer, _ = await self.timed_call(method, path, body, token)
        return status, answer

    async def timed_call(
        self, method: str, path: str, body: Any = None, token: str | None = None
    ) -> tuple[int, Any, int]:
        """Make a request; returns the status, the decoded body and the send ``time_ns``."""
        assert self._reader is not None, "use async with"
        assert self._writer is not None, "use async with"
        payload = b"" if body is None else msgspec.json.encode(body)
        head = [
            f"{method} {path} HTTP/1.1",
            f"Host: 127.0.0.1:{self._port}",
            f"Content-Length: {len(payload)}",
        ]
        if body is not None:
            head.append("Content-Type: application/json")
        if token is not None:
            head.append(f"Authorization: Bearer {token}")
        request = ("\r\n".join(head) + "\r\n\r\n").encode() + payload
        sent_ns = time.time_ns()
        self._writer.write(request)
        raw = await self._reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        data = await self._reader.readexactly(length) if length else b""
        return status, (msgspec.json.decode(data) if data else None), sent_ns

    async def expect(
        self, status: int, method: str, path: str, body: Any = None, token: str | None = None
    ) -> Any:
        """Make a request that must answer ``status``; returns the decoded body."""
        got, answer = await self.call(method, path, body, token)
        if got != status:
            raise HttpError(f"{method} {path} answered {got}, wanted {status}: {answer!r}")
        return answer
