"""``WS /v1/ws/worker``: a technician's phone.

The handshake must carry ``Authorization: Bearer <device token>``; without a
valid one the upgrade is refused with an HTTP 401 JSON response. An optional
``last_seq`` query parameter asks for every logged notice after that sequence
number (resume after a dropped connection).

After ``welcome`` the phone sends JSON text frames (see ``schemas`` and
docs/protocol.md). Every notice the server sends from the worker's log carries
``seq``. A malformed or unknown message gets an ``error`` frame and the
socket stays up; a frame over the size cap is closed with 1009 by the
protocol layer. The order of notices is the log's order: replayed ones first,
then live ones, none twice.

This is a plain ASGI endpoint: ``app.FieldcloudApp`` hands it the websocket
scope ahead of Starlette's routing and middleware, and it speaks the ASGI
websocket messages itself (``websocket.connect``/``accept``/``receive``/
``send``/``close``, and ``websocket.http.response.*`` for a refused upgrade).
Every location fix goes through this read loop, and every idle phone keeps
its session in memory, so both are kept lean.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from typing import Any

import msgspec
from starlette.datastructures import Headers, QueryParams
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from dispatch.errors import DispatchError
from dispatch.models import Availability, JobState, Worker
from dispatch.notices import iso
from dispatch.stores.ports import LoggedNotice

from ..auth import require_worker
from ..errors import (
    CLOSE_INTERNAL,
    ApiError,
    error_body,
    error_response,
    json_response,
    status_of,
    ws_error,
    ws_error_for,
)
from ..runtime import Runtime, Session
from ..schemas import (
    PHONE_TYPES,
    AcceptMsg,
    DeclineMsg,
    LocationMsg,
    PhoneMessage,
    PingMsg,
    ProgressMsg,
    StatusMsg,
    encoder,
    phone_decoder,
    ts_seconds,
)

log = logging.getLogger("fieldcloud")

PATH = "/v1/ws/worker"
"""Where phones connect (served by ``app.FieldcloudApp`` ahead of the routes)."""

SNAPSHOT_MAX_AGE_S = 15.0
"""The session keeps a snapshot of its worker so a location costs no store read.
It follows the worker's own actions and notices (assigned, job_cancelled) and
is re-read from the store at least this often, for changes made elsewhere."""

OUTBOX_LIMIT = 1024
"""Notices queued for a slow phone before it is disconnected (it resumes later)."""

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
    """The state of one accepted phone socket (and its ``Session`` in the runtime)."""

    def __init__(self, rt: Runtime, send: Send, worker: Worker) -> None:
        super().__init__(worker.id, self.close)
        self.rt = rt
        self.send = send
        self.worker = worker
        self.worker_read_at = time.monotonic()
        """When ``worker`` was last read from the store (see ``SNAPSHOT_MAX_AGE_S``)."""
        self.live = False
        """True once the replay is sent: from then on queued notices are written."""
        self.sent_seq = 0
        self.outbox: deque[LoggedNotice] | None = None
        """Live notices not yet written, in log order; only while there are some."""
        self.drainer: asyncio.Task[None] | None = None
        """Writes the outbox; exists only while the outbox has something in it."""

    async def run(self, receive: Receive, last_seq: int) -> None:
        rt = self.rt
        wid = self.worker_id
        feed = rt.service.stores.feed
        await rt.register(self)
        # Listen first so nothing published from now on is missed; queued notices
        # are written only after the replay, skipping what the replay already sent.
        stop = feed.listen(wid, self._enqueue)
        try:
            await self._welcome(last_seq)
            self.live = True
            if self.outbox and self.drainer is None:
                self.drainer = asyncio.create_task(self._drain())
            # Claimed in the keeper's next batch, then refreshed by it while open;
            # a newer socket of the worker on any instance takes the claim over.
            self.holder = f"{rt.instance_id}/{secrets.token_hex(4)}"
            rt.keeper.hold(self)
            await self._read_loop(receive)
        except DispatchError as exc:  # the replay failed: a backing service is away
            log.warning("phone %s: %s", wid, exc)
            await self.close(CLOSE_INTERNAL, "unavailable; reconnect with last_seq")
        except Exception:
            log.exception("phone %s: unexpected error", wid)
            await self.close(CLOSE_INTERNAL, "unexpected server error")
        finally:
            self.open = False
            stop()
            rt.unregister(self)
            if self.drainer is not None:
                self.drainer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self.drainer
            if self.claimed:
                # ``claimed`` stays set: if a refresh is in flight, the keeper
                # releases again once it is back.
                with contextlib.suppress(DispatchError):
                    await rt.presence.release(wid, self.holder)

    async def _welcome(self, last_seq: int) -> None:
        """Send ``welcome``, then the replay asked for by ``last_seq``."""
        service = self.rt.service
        worker = self.worker
        backlog = await service.stores.feed.replay(worker.id, max(last_seq, 0))
        await self._send(
            {
                "type": "welcome",
                "worker_id": worker.id,
                "org_id": worker.org_id,
                "name": worker.name,
                "status": worker.availability.value,
                "server_time": iso(service.clock()),
                "last_seq": backlog[-1].seq if backlog else None,
                "offer_timeout_s": service.config.offer_timeout_s,
                "max_frame_bytes": self.rt.settings.max_frame_bytes,
            }
        )
        if last_seq >= 0:
            for entry in backlog:
                await self._deliver(entry)
        else:
            self.sent_seq = backlog[-1].seq if backlog else 0

    def _enqueue(self, entry: LoggedNotice) -> None:
        """The feed's callback: queue a live notice and make sure it gets written."""
        if not self.open:
            return
        outbox = self.outbox
        if outbox is None:
            outbox = self.outbox = deque()
        elif len(outbox) >= OUTBOX_LIMIT:
            # The phone is not reading; drop the socket, the log keeps the notices.
            outbox.clear()
            self.open = False
            closing = self._send_close(CLOSE_INTERNAL, "too slow")
            task = asyncio.get_running_loop().create_task(closing)
            _BACKGROUND.add(task)
            task.add_done_callback(_BACKGROUND.discard)
            return
        outbox.append(entry)
        if self.live and self.drainer is None:
            self.drainer = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        """Write the outbox in order, then end (the next notice starts a new drain)."""
        try:
            outbox = self.outbox
            while outbox and self.open:
                await self._deliver(outbox.popleft())
        finally:
            self.outbox = None
            self.drainer = None

    async def _deliver(self, entry: LoggedNotice) -> None:
        if entry.seq <= self.sent_seq:
            return  # already sent by the replay
        self.sent_seq = entry.seq
        kind = entry.notice.get("type")
        if kind == "assigned":
            self.worker.availability = Availability.BUSY
        elif kind == "job_cancelled":
            self.worker.availability = Availability.AVAILABLE
        await self._send({**entry.notice, "seq": entry.seq})

    async def _send(self, frame: dict[str, Any]) -> None:
        await self._send_text(encoder.encode(frame).decode())

    async def _send_text(self, text: str) -> None:
        if self.open:
            try:
                await self.send({"type": "websocket.send", "text": text})
            except (OSError, RuntimeError):  # the phone is gone, or the server closed it
                self.open = False

    async def close(self, code: int, reason: str) -> None:
        """Close the socket (supersede, slow consumer, failure); once."""
        if self.open:
            self.open = False
            await self._send_close(code, reason)

    async def _send_close(self, code: int, reason: str) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            await self.send({"type": "websocket.close", "code": code, "reason": reason})

    async def _read_loop(self, receive: Receive) -> None:
        report_location = self.rt.service.report_location
        decode = phone_decoder.decode
        monotonic = time.monotonic
        wid = self.worker_id
        while True:
            message = await receive()
            text = message.get("text")
            if text is None:
                if message["type"] == "websocket.disconnect":
                    return
                await self._send(ws_error("invalid_message", "send JSON text frames"))
                continue
            try:
                msg = decode(text)
            except msgspec.ValidationError as exc:
                await self._send(_validation_error(text, exc))
                continue
            except msgspec.DecodeError as exc:
                await self._send(ws_error("invalid_json", f"frame is not valid JSON: {exc}"))
                continue
            try:
                if type(msg) is LocationMsg:  # the hot path, inline
                    ts = msg.ts
                    at = ts if ts is None or type(ts) is float else ts_seconds(ts)
                    fresh = monotonic() - self.worker_read_at < SNAPSHOT_MAX_AGE_S
                    self.worker = await report_location(
                        wid,
                        msg.lat,
                        msg.lng,
                        msg.accuracy_m,
                        at,
                        known=self.worker if fresh else None,
                    )
                    if not fresh:
                        self.worker_read_at = monotonic()
                else:
                    await self._handle(msg)
            except DispatchError as exc:
                await self._send(ws_error_for(exc))
            except ValueError as exc:
                await self._send(ws_error("invalid_message", str(exc)))

    async def _handle(self, msg: PhoneMessage) -> None:
        service = self.rt.service
        wid = self.worker_id
        if isinstance(msg, PingMsg):
            await self._send_text(_pong(service.clock()))
        elif isinstance(msg, StatusMsg):
            await service.set_status(wid, msg.status)
            self.worker.availability = msg.status
            await self._send({"type": "status", "status": msg.status.value})
        elif isinstance(msg, AcceptMsg):
            await service.accept(wid, msg.offer_id)
        elif isinstance(msg, DeclineMsg):
            await service.decline(wid, msg.offer_id)
            await self._send({"type": "declined", "offer_id": msg.offer_id})
        elif isinstance(msg, ProgressMsg):
            job = await service.progress(wid, msg.job_id, JobState(msg.state))
            if job.state is JobState.COMPLETED:
                self.worker.availability = Availability.AVAILABLE
            await self._send({"type": "progress", "job_id": job.id, "state": job.state.value})
        elif isinstance(msg, LocationMsg):  # pragma: no cover - handled inline by the read loop
            raise AssertionError("location frames are handled by the read loop")


class _Pong:
    """The ``pong`` frame for a clock reading, encoded once per millisecond.

    ``server_time`` has millisecond resolution, and a busy server answers
    several pings within one millisecond.
    """

    __slots__ = ("ms", "text")

    def __init__(self) -> None:
        self.ms = -1
        self.text = ""

    def __call__(self, now: float) -> str:
        ms = int(now * 1000.0)
        if ms != self.ms:
            self.text = encoder.encode({"type": "pong", "server_time": iso(now)}).decode()
            self.ms = ms
        return self.text


_pong = _Pong()


def _validation_error(text: str, exc: msgspec.ValidationError) -> dict[str, Any]:
    """Tell an unknown ``type`` apart from a bad field of a known one."""
    try:
        raw = msgspec.json.decode(text)
    except msgspec.DecodeError:
        raw = None
    if isinstance(raw, dict) and raw.get("type") not in PHONE_TYPES:
        return ws_error(
            "unknown_type",
            f"unknown message type {raw.get('type')!r}; expected one of {PHONE_TYPES}",
        )
    return ws_error("invalid_message", str(exc))
