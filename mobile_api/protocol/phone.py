"""The technician's phone protocol (``WS /v1/ws/worker``), without I/O.

``PhoneProtocol`` is one phone socket's state. The endpoint feeds it events
and carries out what it asks for; it never awaits. The wire format is
docs/protocol.md.

How the endpoint drives it (``mobile_api.sockets.worker`` does exactly this):

1. Listen to the worker's feed and hand every notice to ``notice`` — before
   the replay is read, so that nothing published meanwhile is missed.
2. Carry out ``start(last_seq)`` (a ``Replay``) and hand the backlog to
   ``replayed``; write ``take_replies()`` (``welcome``, then the replayed
   notices); then call ``replay_sent``. Live notices are held back until
   then, and those the replay already sent are dropped (by ``seq``): replay,
   then live, none twice.
3. For each text frame, ``receive_text``; for each binary frame,
   ``receive_binary``. Either may return a call: carry it out and hand the
   result to the matching method (``located``, ``status_set``, ``accepted``,
   ``declined``, ``progressed``, ``released``), or its ``DispatchError``/``ValueError`` to
   ``failed``. Then, when ``replies`` is not None, write ``take_replies()``
   in order. Handle one frame at a time: the phone's frames are answered in
   the order sent.
4. When a call is ``WriteNotices``, start one writer that writes
   ``next_notice()`` until it returns None; the protocol asks again when the
   next notice arrives. When a call is ``Close``, close the socket with its
   code and reason. Call ``closed`` once the socket is closed, by either side.

Rules the protocol keeps:

* Every notice carries the ``seq`` of the worker's log; ``sent_seq`` is the
  highest one written, and nothing at or below it is written again.
* A phone that does not read holds at most ``PhoneConfig.outbound_limit``
  notices here; one more closes it (1011, "too slow"): it resumes from the
  log with ``last_seq``.
* A malformed, invalid or refused message gets one ``error`` frame and the
  socket stays up.
* The worker snapshot (``worker``) follows the phone's own actions and its
  notices (``assigned``, ``job_cancelled``), so a location costs no store
  read; it is passed to ``report_location`` only while younger than
  ``PhoneConfig.snapshot_max_age_s`` (by the monotonic clock), for changes
  made elsewhere.

The calls are the records of ``calls``. Room is left on purpose for what
comes next: ``replayed`` may answer a call of its own (a snapshot when the
log no longer reaches back), a reply may follow any result (a ``cadence``
frame after a location or a status), and new messages (batches of
locations) are new calls.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Any

import msgspec

from dispatch.errors import DispatchError
from dispatch.models import Availability, Job, JobState, Worker
from dispatch.notices import iso
from dispatch.stores.ports import LoggedNotice

from ..schemas import (
    PHONE_TYPES,
    AcceptMsg,
    DeclineMsg,
    LocationMsg,
    PingMsg,
    ProgressMsg,
    ReleaseMsg,
    StatusMsg,
    phone_decoder,
    ts_seconds,
)
from .calls import (
    WRITE_NOTICES,
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
from .frames import CLOSE_INTERNAL, Frame, encode, error, error_for

__all__ = ["PhoneConfig", "PhoneProtocol", "State"]

OUTBOUND_LIMIT = 1024
"""Notices held for a phone that does not read before it is closed (it resumes later)."""

SNAPSHOT_MAX_AGE_S = 15.0
"""How long the worker snapshot stands in for a store read (see the module docstring)."""

_decode = phone_decoder.decode
"""Bound once: looking the method up per frame costs a bound-method object each time."""


class State(Enum):
    """Where a socket is: replaying its log, live, or closed."""

    OPENING = "opening"
    """Until ``replay_sent``: frames are not read yet, live notices are held back."""
    OPEN = "open"
    CLOSED = "closed"


class PhoneConfig(msgspec.Struct, frozen=True):
    """What every phone socket of a server shares (one instance per server)."""

    offer_timeout_s: float
    max_frame_bytes: int
    clock: Callable[[], float] = time.time
    """Wall-clock time (the service's clock): ``server_time`` in frames."""
    monotonic: Callable[[], float] = time.monotonic
    """For the snapshot's age only."""
    outbound_limit: int = OUTBOUND_LIMIT
    snapshot_max_age_s: float = SNAPSHOT_MAX_AGE_S


class PhoneProtocol:
    """One phone socket's protocol state; see the module docstring for how to drive it."""

    __slots__ = (
        "_outbox",
        "_resume",
        "_writing",
        "config",
        "replies",
        "sent_seq",
        "state",
        "worker",
        "worker_read_at",
    )

    def __init__(self, config: PhoneConfig, worker: Worker) -> None:
        self.config = config
        self.worker = worker
        """The snapshot of the worker (read at the handshake, then kept up to date)."""
        self.worker_read_at = config.monotonic()
        """When ``worker`` was last read from the store (monotonic clock)."""
        self.state = State.OPENING
        self.sent_seq = 0
        """The highest ``seq`` written to the phone."""
        self.replies: list[str] | None = None
        """Frames to write now, in order (None: none); the endpoint takes them."""
        self._resume = False
        self._outbox: deque[LoggedNotice] | None = None
        """Live notices not written yet, in log order; only while there are some."""
        self._writing = False
        """A notice writer is running (asked for with ``WriteNotices``, ends at None)."""

    # -- opening ---------------------------------------------------------------

    def start(self, last_seq: int) -> Replay:
        """The first call: the log after ``last_seq`` (``-1``: the phone asked for none).

        Without ``last_seq`` the log is still read, for the ``welcome``'s latest seq.
        """
        self._resume = last_seq >= 0
        return Replay(max(last_seq, 0))

    def replayed(self, backlog: Sequence[LoggedNotice]) -> Call | None:
        """Queue ``welcome`` and (when asked for) the backlog in ``replies``."""
        worker = self.worker
        config = self.config
        self._reply(
            {
                "type": "welcome",
                "worker_id": worker.id,
                "org_id": worker.org_id,
                "name": worker.name,
                "status": worker.availability.value,
                "server_time": iso(config.clock()),
                "last_seq": backlog[-1].seq if backlog else None,
                "offer_timeout_s": config.offer_timeout_s,
                "max_frame_bytes": config.max_frame_bytes,
            }
        )
        if self._resume:
            for entry in backlog:
                frame = self._notice_frame(entry)
                if frame is not None:
                    self._add_reply(frame)
        elif backlog:
            self.sent_seq = backlog[-1].seq
        return None

    def replay_sent(self) -> WriteNotices | None:
        """The ``welcome`` and the replay are written: live from now on."""
        if self.state is not State.OPENING:
            return None
        self.state = State.OPEN
        return self._wake()

    # -- notices ---------------------------------------------------------------

    def notice(self, entry: LoggedNotice) -> WriteNotices | Close | None:
        """A live notice from the worker's feed (in log order)."""
        if self.state is State.CLOSED:
            return None
        outbox = self._outbox
        if outbox is None:
            outbox = self._outbox = deque()
        elif len(outbox) >= self.config.outbound_limit:
            # The phone is not reading: drop the socket, the log keeps the notices.
            self.closed()
            return Close(CLOSE_INTERNAL, "too slow")
        outbox.append(entry)
        return self._wake() if self.state is State.OPEN else None

    def next_notice(self) -> str | None:
        """The next notice frame to write, or None: the writer ends (asked for again later)."""
        outbox = self._outbox
        while outbox and self.state is State.OPEN:
            frame = self._notice_frame(outbox.popleft())
            if frame is not None:
                return frame
        self._outbox = None
        self._writing = False
        return None

    def take_replies(self) -> list[str]:
        """The frames to write now, in order; ``replies`` is None again after."""
        replies = self.replies
        self.replies = None
        return [] if replies is None else replies

    def closed(self) -> None:
        """The socket is closed: nothing more is queued or written."""
        self.state = State.CLOSED
        self._outbox = None

    # -- the phone's frames ----------------------------------------------------

    def receive_text(self, text: str) -> Call | None:
        """A text frame from the phone; answered in ``replies``, or by the call returned."""
        try:
            msg = _decode(text)
        except msgspec.ValidationError as exc:
            self._reply(_validation_error(text, exc))
            return None
        except msgspec.DecodeError as exc:
            self._reply(error("invalid_json", f"frame is not valid JSON: {exc}"))
            return None
        if type(msg) is LocationMsg:  # the hot path: a position fix
            at = msg.ts
            if at is not None and type(at) is not float:
                try:
                    at = ts_seconds(at)
                except ValueError as exc:
                    self._reply(error("invalid_message", str(exc)))
                    return None
            config = self.config
            fresh = config.monotonic() - self.worker_read_at < config.snapshot_max_age_s
            return ReportLocation(
                msg.lat, msg.lng, msg.accuracy_m, at, self.worker if fresh else None
            )
        if type(msg) is PingMsg:
            self._add_reply(_pong(self.config.clock()))
            return None
        if type(msg) is StatusMsg:
            return SetStatus(msg.status)
        if type(msg) is AcceptMsg:
            return Accept(msg.offer_id)
        if type(msg) is DeclineMsg:
            return Decline(msg.offer_id)
        if type(msg) is ReleaseMsg:
            return Release(msg.job_id, msg.reason)
        assert type(msg) is ProgressMsg
        return Progress(msg.job_id, JobState(msg.state))

    def receive_binary(self) -> None:
        """A binary frame: the protocol is JSON text."""
        self._reply(error("invalid_message", "send JSON text frames"))

    # -- results of calls ------------------------------------------------------

    def located(self, call: ReportLocation, worker: Worker) -> None:
        """``report_location`` returned ``worker`` (a fresh read when ``call.known`` was None)."""
        self.worker = worker
        if call.known is None:
            self.worker_read_at = self.config.monotonic()

    def status_set(self, call: SetStatus) -> None:
        self.worker.availability = call.status
        if call.status is Availability.OFF_DUTY:
            self.worker.fix = None  # the server forgot it too
        self._reply({"type": "status", "status": call.status.value})

    def accepted(self, call: Accept) -> None:
        """Nothing to answer: the ``assigned`` notice is the answer."""

    def declined(self, call: Decline) -> None:
        self._reply({"type": "declined", "offer_id": call.offer_id})

    def progressed(self, call: Progress, job: Job) -> None:
        if job.state is JobState.COMPLETED:
            self.worker.availability = Availability.AVAILABLE
        self._reply({"type": "progress", "job_id": job.id, "state": job.state.value})

    def released(self, call: Release, job: Job) -> None:
        """The job is handed back (open again): the worker is available."""
        self.worker.availability = Availability.AVAILABLE
        self._reply({"type": "released", "job_id": job.id, "state": job.state.value})

    def failed(self, call: Call, exc: DispatchError | ValueError) -> Close | None:
        """A call raised ``exc``: an error frame, or for the replay a close (resume later)."""
        if isinstance(call, Replay):
            self.closed()
            return Close(CLOSE_INTERNAL, "unavailable; reconnect with last_seq")
        if isinstance(exc, DispatchError):
            self._reply(error_for(exc))
        else:
            self._reply(error("invalid_message", str(exc)))
        return None

    # -- helpers ---------------------------------------------------------------

    def _reply(self, frame: Frame) -> None:
        self._add_reply(encode(frame))

    def _add_reply(self, text: str) -> None:
        replies = self.replies
        if replies is None:
            self.replies = [text]
        else:
            replies.append(text)

    def _wake(self) -> WriteNotices | None:
        """Ask for a writer when notices wait and none runs."""
        if self._outbox and not self._writing:
            self._writing = True
            return WRITE_NOTICES
        return None

    def _notice_frame(self, entry: LoggedNotice) -> str | None:
        """The frame of a logged notice, or None if it was written already."""
        if entry.seq <= self.sent_seq:
            return None
        self.sent_seq = entry.seq
        kind = entry.notice.get("type")
        if kind == "assigned":
            self.worker.availability = Availability.BUSY
        elif kind == "job_cancelled":
            self.worker.availability = Availability.AVAILABLE
        return encode({**entry.notice, "seq": entry.seq})


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
            self.text = encode({"type": "pong", "server_time": iso(now)})
            self.ms = ms
        return self.text


_pong = _Pong()


def _validation_error(text: str, exc: msgspec.ValidationError) -> Frame:
    """Tell a missing or unknown ``type`` apart from a bad field of a known one."""
    try:
        raw: Any = msgspec.json.decode(text)
    except msgspec.DecodeError:
        raw = None
    if isinstance(raw, dict):
        kind = raw.get("type")
        if kind is None:
            return error("unknown_type", f"the frame has no `type`; expected one of {PHONE_TYPES}")
        if kind not in PHONE_TYPES:
            return error(
                "unknown_type", f"unknown message type {kind!r}; expected one of {PHONE_TYPES}"
            )
    return error("invalid_message", str(exc))
