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
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from typing import Any

import msgspec
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from dispatch.errors import DispatchError
from dispatch.models import Availability, JobState, Worker
from dispatch.notices import iso
from dispatch.stores.ports import LoggedNotice, Presence

from .auth import require_worker
from .errors import (
    CLOSE_INTERNAL,
    CLOSE_SUPERSEDED,
    ApiError,
    error_body,
    json_response,
    ws_error,
    ws_error_for,
)
from .runtime import Runtime, Session
from .schemas import (
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

SNAPSHOT_MAX_AGE_S = 15.0
"""The session keeps a snapshot of its worker so a location costs no store read.
It follows the worker's own actions and notices (assigned, job_cancelled) and
is re-read from the store at least this often, for changes made elsewhere."""

OUTBOX_LIMIT = 1024
"""Notices queued for a slow phone before it is disconnected (it resumes later)."""


async def worker_socket(ws: WebSocket) -> None:
    """Serve one phone until it leaves."""
    rt: Runtime = ws.app.state.runtime
    try:
        worker = await require_worker(ws.headers, rt.service, rt.admin_token)
        last_seq = _last_seq(ws.query_params.get("last_seq"))
    except ApiError as exc:
        await ws.send_denial_response(json_response(error_body(exc.code, exc.message), exc.status))
        return
    await ws.accept()
    await PhoneSession(rt, ws, worker).run(last_seq)


def _last_seq(raw: str | None) -> int:
    if raw is None:
        return -1
    if not raw.isdigit() or len(raw) > 18:
        raise ApiError(400, "invalid_query", "last_seq must be a non-negative integer")
    return int(raw)


class PhoneSession:
    """The state of one accepted phone socket."""

    def __init__(self, rt: Runtime, ws: WebSocket, worker: Worker) -> None:
        self.rt = rt
        self.ws = ws
        self.worker = worker
        self.outbox: asyncio.Queue[LoggedNotice | None] = asyncio.Queue(OUTBOX_LIMIT)
        self.sent_seq = 0
        self.session = Session(worker.id, self.close)
        self.holder = f"{rt.instance_id}/{secrets.token_hex(4)}"
        self.worker_read_at = time.monotonic()
        """When ``worker`` was last read from the store (see ``SNAPSHOT_MAX_AGE_S``)."""

    async def run(self, last_seq: int) -> None:
        service = self.rt.service
        feed = service.stores.feed
        await self.rt.register(self.session)
        # Listen first so nothing published from now on is missed; the writer
        # starts only after the replay, and skips what the replay already sent.
        stop = feed.listen(self.worker.id, self._enqueue)
        writer: asyncio.Task[None] | None = None
        heartbeat: asyncio.Task[None] | None = None
        try:
            backlog = await feed.replay(self.worker.id, max(last_seq, 0))
            await self._send(
                {
                    "type": "welcome",
                    "worker_id": self.worker.id,
                    "org_id": self.worker.org_id,
                    "name": self.worker.name,
                    "status": self.worker.availability.value,
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
            writer = asyncio.create_task(self._write_loop(), name=f"ws-writer-{self.worker.id}")
            if self.rt.presence is not None:
                heartbeat = asyncio.create_task(self._hold_presence(self.rt.presence))
            await self._read_loop()
        except WebSocketDisconnect:
            pass
        finally:
            stop()
            self.rt.unregister(self.session)
            for task in (writer, heartbeat):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            if self.rt.presence is not None:
                with contextlib.suppress(DispatchError):
                    await self.rt.presence.release(self.worker.id, self.holder)

    async def _hold_presence(self, presence: Presence) -> None:
        """Claim the worker for this socket and keep the claim; lose it → close 4001.

        The claim names this socket (instance id plus a nonce), so a newer socket
        on any instance takes it over; this one notices at its next refresh,
        ``presence_refresh_s`` later at most. The claim lives three refreshes.
        """
        wid, me = self.worker.id, self.holder
        every = self.rt.settings.presence_refresh_s
        claimed = False
        while True:
            try:
                if not claimed:
                    await presence.claim(wid, me, 3 * every)
                    claimed = True
                elif not await presence.refresh(wid, me, 3 * every):
                    await self.close(CLOSE_SUPERSEDED, "superseded by a newer connection")
                    return
            except DispatchError:
                pass  # Redis is away: keep the socket, try again later
            await asyncio.sleep(every)

    def _enqueue(self, entry: LoggedNotice) -> None:
        try:
            self.outbox.put_nowait(entry)
        except asyncio.QueueFull:
            # The phone is not reading; drop the socket, the log keeps the notices.
            asyncio.get_running_loop().create_task(self.close(CLOSE_INTERNAL, "too slow"))

    async def _write_loop(self) -> None:
        while True:
            entry = await self.outbox.get()
            if entry is None:
                return
            await self._deliver(entry)

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
        if self.ws.application_state is WebSocketState.CONNECTED:
            with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                await self.ws.send_text(encoder.encode(frame).decode())

    async def close(self, code: int, reason: str) -> None:
        """Close the socket (used for supersede and slow consumers)."""
        if self.ws.application_state is WebSocketState.CONNECTED:
            with contextlib.suppress(RuntimeError):
                await self.ws.close(code, reason)

    async def _read_loop(self) -> None:
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                await self._send(ws_error("invalid_message", "send JSON text frames"))
                continue
            try:
                msg = phone_decoder.decode(text)
            except msgspec.ValidationError as exc:
                await self._send(_validation_error(text, exc))
                continue
            except msgspec.DecodeError as exc:
                await self._send(ws_error("invalid_json", f"frame is not valid JSON: {exc}"))
                continue
            try:
                await self._handle(msg)
            except DispatchError as exc:
                await self._send(ws_error_for(exc))
            except ValueError as exc:
                await self._send(ws_error("invalid_message", str(exc)))

    async def _handle(self, msg: PhoneMessage) -> None:
        service = self.rt.service
        wid = self.worker.id
        if isinstance(msg, LocationMsg):
            fresh = time.monotonic() - self.worker_read_at < SNAPSHOT_MAX_AGE_S
            self.worker = await service.report_location(
                wid,
                msg.lat,
                msg.lng,
                msg.accuracy_m,
                ts_seconds(msg.ts),
                known=self.worker if fresh else None,
            )
            if not fresh:
                self.worker_read_at = time.monotonic()
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
        elif isinstance(msg, PingMsg):
            await self._send({"type": "pong", "server_time": iso(service.clock())})


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
