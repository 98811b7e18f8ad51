"""``WS /v1/ws/worker``: a technician's phone (the I/O side).

The handshake must carry ``Authorization: Bearer <device token>``; without a
valid one the upgrade is refused with an HTTP 401 JSON response. An optional
``last_seq`` query parameter asks for every logged notice after that sequence
number (resume after a dropped connection).

What is said on the socket — welcome, replay then live, acks, errors, the
outbound limit — is decided by ``protocol.phone.PhoneProtocol``; this module
moves its frames and carries out its calls, in the order its docstring lays
down. A frame over the size cap is closed with 1009 by the server's
websocket layer.

This is a plain ASGI endpoint: ``app.FieldcloudApp`` hands it the websocket
scope ahead of Starlette's routing and middleware, and it speaks the ASGI
websocket messages itself (``websocket.connect``/``accept``/``receive``/
``send``/``close``, and ``websocket.http.response.*`` for a refused upgrade).
Every location fix goes through this read loop, and every idle phone keeps
its session in memory, so both are kept lean: a location's call is carried
out inline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import assert_never

from starlette.datastructures import Headers, QueryParams
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from dispatch.errors import DispatchError
from dispatch.models import Worker
from dispatch.stores.ports import LoggedNotice

from ..auth import require_worker
from ..errors import ApiError, error_body, error_response, json_response, status_of
from ..protocol.calls import (
    Accept,
    Call,
    Close,
    Decline,
    Progress,
    Release,
    Replay,
    ReportLocation,
    SetStatus,
    WriteNotices,
)
from ..protocol.frames import CLOSE_INTERNAL
from ..protocol.phone import PhoneProtocol
from ..runtime import Runtime, Session

log = logging.getLogger("fieldcloud")

PATH = "/v1/ws/worker"
"""Where phones connect (served by ``app.FieldcloudApp`` ahead of the routes)."""

_BACKGROUND: set[asyncio.Task[None]] = set()
"""Close tasks started from a synchronous callback (kept referenced until done)."""


async def worker_socket(rt: Runtime, scope: Scope, receive: Receive, send: Send) -> None:
    """Serve one phone until it leaves (an ASGI websocket scope)."""
    try:
        worker = await require_worker(Headers(scope=scope), rt.service, rt.admin_token)
        last_seq = _last_seq(scope)
    except ApiError as exc:
        await _deny(scope, send, json_response(error_body(exc.code, exc.message), exc.status))
        return
    except DispatchError as exc:  # a backing service is away: 503, retry shortly
        await _deny(scope, send, error_response(status_of(exc), exc.code, exc.message))
        return
    if (await receive())["type"] != "websocket.connect":
        return  # the phone left during the handshake
    await send({"type": "websocket.accept"})
    await PhoneSession(rt, send, worker).run(receive, last_seq)


def _last_seq(scope: Scope) -> int:
    query: bytes = scope.get("query_string", b"")
    raw = QueryParams(query).get("last_seq") if query else None
    if raw is None:
        return -1
    if not raw.isdigit() or len(raw) > 18:
        raise ApiError(400, "invalid_query", "last_seq must be a non-negative integer")
    return int(raw)


async def _deny(scope: Scope, send: Send, response: Response) -> None:
    """Refuse the upgrade with ``response`` (an HTTP response instead of the 101)."""
    if "websocket.http.response" in (scope.get("extensions") or {}):
        await send(
            {
                "type": "websocket.http.response.start",
                "status": response.status_code,
                "headers": response.raw_headers,
            }
        )
        await send({"type": "websocket.http.response.body", "body": response.body})
    else:  # a server without the denial extension answers 403 to a close
        await send({"type": "websocket.close", "code": 1008, "reason": ""})


class PhoneSession(Session):
    """One accepted phone socket: its protocol, its writer, its ``Session`` in the runtime."""

    __slots__ = ("protocol", "rt", "send", "writer")

    def __init__(self, rt: Runtime, send: Send, worker: Worker) -> None:
        super().__init__(worker.id)
        self.rt = rt
        self.send = send
        self.protocol = PhoneProtocol(rt.phone, worker)
        self.writer: asyncio.Task[None] | None = None
        """Writes the protocol's notices; exists only while it has some to write."""

    async def run(self, receive: Receive, last_seq: int) -> None:
        rt = self.rt
        wid = self.worker_id
        await rt.register(self)
        # Listen first so nothing published from now on is missed; the protocol
        # holds live notices back until the replay is written, and drops repeats.
        stop = rt.service.stores.feed.listen(wid, self._notice)
        try:
            await self._carry_out(self.protocol.start(last_seq))
            await self._write_replies()
            call = self.protocol.replay_sent()
            if call is not None:
                await self._carry_out(call)
            if self.open:
                # Claimed in the keeper's next batch, then refreshed by it while open;
                # a newer socket of the worker on any instance takes the claim over.
                self.holder = f"{rt.instance_id}/{secrets.token_hex(4)}"
                rt.keeper.hold(self)
                await self._read_loop(receive)
        except Exception:
            log.exception("phone %s: unexpected error", wid)
            await self.close(CLOSE_INTERNAL, "unexpected server error")
        finally:
            self.open = False
            self.protocol.closed()
            stop()
            rt.left(self, self.protocol.worker.org_id)
            if self.writer is not None:
                self.writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self.writer
            if self.claimed:
                # ``claimed`` stays set: if a refresh is in flight, the keeper
                # releases again once it is back.
                with contextlib.suppress(DispatchError):
                    await rt.presence.release(wid, self.holder)

    async def _read_loop(self, receive: Receive) -> None:
        protocol = self.protocol
        receive_text = protocol.receive_text
        received = self.rt.received  # counted for the metrics, by call
        located = protocol.located
        report_location = self.rt.service.report_location
        wid = self.worker_id
        while True:
            message = await receive()
            text = message.get("text")
            if text is not None:
                call = receive_text(text)
                received[type(call)] += 1
                if type(call) is ReportLocation:  # the hot path, inline
                    try:
                        worker = await report_location(
                            wid, call.lat, call.lng, call.accuracy_m, call.at, known=call.known
                        )
                    except (DispatchError, ValueError) as exc:
                        protocol.failed(call, exc)
                    else:
                        located(call, worker)
                elif call is not None:
                    await self._carry_out(call)
            elif message["type"] == "websocket.disconnect":
                return
            else:
                protocol.receive_binary()
            if protocol.replies is not None:
                await self._write_replies()

    async def _carry_out(self, call: Call) -> None:
        """Make the protocol's call and hand it the result (then any call that follows)."""
        protocol = self.protocol
        service = self.rt.service
        wid = self.worker_id
        follow: Call | None = None
        try:
            match call:
                case ReportLocation():
                    worker = await service.report_location(
                        wid, call.lat, call.lng, call.accuracy_m, call.at, known=call.known
                    )
                    protocol.located(call, worker)
                case SetStatus():
                    await service.set_status(wid, call.status)
                    protocol.status_set(call)
                case Accept() | Decline() | Progress() | Release():
                    await self._job_call(call)
                case Replay():
                    backlog = await service.stores.feed.replay(wid, call.after_seq)
                    follow = protocol.replayed(backlog)
                case WriteNotices():
                    self._start_writer()
                case Close():
                    await self.close(call.code, call.reason)
                case _:
                    assert_never(call)
        except (DispatchError, ValueError) as exc:
            if isinstance(call, Replay):
                log.warning("phone %s: %s", wid, exc)
            follow = protocol.failed(call, exc)
        if follow is not None:
            await self._carry_out(follow)

    async def _job_call(self, call: Accept | Decline | Progress | Release) -> None:
        """The phone's answer to an offer or its word on its job: the service, then the protocol."""
        protocol = self.protocol
        service = self.rt.service
        wid = self.worker_id
        match call:
            case Accept():
                await service.accept(wid, call.offer_id)
                protocol.accepted(call)
            case Decline():
                await service.decline(wid, call.offer_id)
                protocol.declined(call)
            case Progress():
                protocol.progressed(call, await service.progress(wid, call.job_id, call.state))
            case Release():
                protocol.released(call, await service.release(wid, call.job_id, call.reason))
            case _:
                assert_never(call)

    def _notice(self, entry: LoggedNotice) -> None:
        """The feed's callback: hand the notice to the protocol and do what it asks."""
        call = self.protocol.notice(entry)
        if call is None:
            return
        if type(call) is WriteNotices:
            self._start_writer()
        elif type(call) is Close and self.open:
            self.open = False
            task = asyncio.get_running_loop().create_task(self._send_close(call.code, call.reason))
            _BACKGROUND.add(task)
            task.add_done_callback(_BACKGROUND.discard)

    def _start_writer(self) -> None:
        if self.writer is None and self.open:
            self.writer = asyncio.get_running_loop().create_task(self._write_notices())

    async def _write_notices(self) -> None:
        """Write the protocol's notices in order, then end (the protocol asks again)."""
        next_notice = self.protocol.next_notice
        try:
            while self.open:
                text = next_notice()
                if text is None:
                    return
                await self._send_text(text)
        finally:
            self.writer = None

    async def _write_replies(self) -> None:
        for text in self.protocol.take_replies():
            await self._send_text(text)

    async def _send_text(self, text: str) -> None:
        if self.open:
            try:
                await self.send({"type": "websocket.send", "text": text})
            except (OSError, RuntimeError):  # the phone is gone, or the server closed it
                self.open = False
                self.protocol.closed()

    async def close(self, code: int, reason: str) -> None:
        """Close the socket (supersede, slow consumer, failure); once."""
        if self.open:
            self.open = False
            self.protocol.closed()
            await self._send_close(code, reason)

    async def _send_close(self, code: int, reason: str) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            await self.send({"type": "websocket.close", "code": code, "reason": reason})
