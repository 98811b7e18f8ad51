"""The phone protocol without a server: frames and results in, frames and calls out.

Synchronous throughout: no event loop, no socket, and both clocks pinned
(``Clocks``). The endpoint's side of each exchange is played by the test:
it carries out nothing, it hands the protocol what a call would return.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from dispatch.errors import NotEligible, NotFound, OfferClosed, Unavailable
from dispatch.models import Availability, Job, JobState, Worker, WorkerKind
from dispatch.stores.ports import LoggedNotice
from mobile_api.protocol.calls import (
    Accept,
    Close,
    Decline,
    Progress,
    Release,
    Replay,
    ReportLocation,
    SetStatus,
    WriteNotices,
)
from mobile_api.protocol.phone import PhoneConfig, PhoneProtocol, State

T0 = 1_764_633_600.0
"""2025-12-02T00:00:00Z: the pinned wall clock."""


@dataclass
class Clocks:
    """The wall clock and the monotonic clock, moved only by the test."""

    wall: float = T0
    mono: float = 100.0

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


@pytest.fixture
def clocks() -> Clocks:
    return Clocks()


@pytest.fixture
def config(clocks: Clocks) -> PhoneConfig:
    return PhoneConfig(
        offer_timeout_s=30.0,
        max_frame_bytes=16_384,
        clock=lambda: clocks.wall,
        monotonic=lambda: clocks.mono,
        outbound_limit=4,
        snapshot_max_age_s=15.0,
    )


def worker(availability: Availability = Availability.AVAILABLE) -> Worker:
    return Worker("wrk_1", "org_1", "Ann", WorkerKind.EMPLOYEE, frozenset(), availability)


def logged(seq: int, kind: str = "offer", **fields: Any) -> LoggedNotice:
    return LoggedNotice(seq, {"type": kind, **fields})


def take(proto: PhoneProtocol) -> list[dict[str, Any]]:
    """What the endpoint writes after a step: the replies it takes, decoded."""
    return [json.loads(text) for text in proto.take_replies()]


def drain(proto: PhoneProtocol) -> list[dict[str, Any]]:
    """What a notice writer writes until the protocol says there is no more."""
    frames = []
    while (text := proto.next_notice()) is not None:
        frames.append(json.loads(text))
    return frames


def opened(
    config: PhoneConfig, *, last_seq: int = -1, backlog: tuple[int, ...] = ()
) -> PhoneProtocol:
    """A protocol through its opening: replay carried out, welcome and replay written, live."""
    proto = PhoneProtocol(config, worker())
    call = proto.start(last_seq)
    assert call == Replay(max(last_seq, 0))
    assert proto.replayed([logged(s) for s in backlog]) is None
    take(proto)
    assert proto.replay_sent() is None
    assert proto.state is State.OPEN
    return proto


# -- opening -----------------------------------------------------------------


def test_welcome_describes_the_worker_and_the_server(config: PhoneConfig) -> None:
    """The first frame is ``welcome``: who the worker is, the pinned server time, the log's
    latest seq and the limits the phone must keep."""
    proto = PhoneProtocol(config, worker(Availability.OFF_DUTY))
    assert proto.start(-1) == Replay(0)
    proto.replayed([logged(7), logged(8)])
    assert take(proto) == [
        {
            "type": "welcome",
            "worker_id": "wrk_1",
            "org_id": "org_1",
            "name": "Ann",
            "status": "off_duty",
            "server_time": "2025-12-02T00:00:00.000Z",
            "last_seq": 8,
            "offer_timeout_s": 30.0,
            "max_frame_bytes": 16_384,
        }
    ]


def test_without_last_seq_nothing_is_replayed_and_logged_notices_are_not_resent(
    config: PhoneConfig,
) -> None:
    """A first connection gets no backlog; a live notice already in the log is dropped, a
    newer one is written."""
    proto = PhoneProtocol(config, worker())
    proto.start(-1)
    assert proto.notice(logged(8)) is None  # published while the log was read
    proto.replayed([logged(7), logged(8)])
    assert [f["type"] for f in take(proto)] == ["welcome"]
    assert proto.replay_sent() == WriteNotices()
    assert drain(proto) == []
    assert proto.notice(logged(9)) == WriteNotices()
    assert [f["seq"] for f in drain(proto)] == [9]


def test_an_empty_log_welcomes_with_last_seq_null(config: PhoneConfig) -> None:
    """With nothing logged yet the welcome's ``last_seq`` is null."""
    proto = PhoneProtocol(config, worker())
    proto.start(-1)
    proto.replayed([])
    assert take(proto)[0]["last_seq"] is None


def test_replay_then_live_in_log_order_and_none_twice(config: PhoneConfig) -> None:
    """Live notices that arrive while the log is read and written are held back until the
    replay is out, then written after it, without the ones the replay already carried."""
    proto = PhoneProtocol(config, worker())
    assert proto.start(4) == Replay(4)
    assert proto.notice(logged(6)) is None
    proto.replayed([logged(5), logged(6)])
    assert proto.notice(logged(7)) is None  # while the replay is being written
    frames = take(proto)
    assert [(f["type"], f.get("seq")) for f in frames] == [
        ("welcome", None),
        ("offer", 5),
        ("offer", 6),
    ]
    assert proto.replay_sent() == WriteNotices()
    assert [f["seq"] for f in drain(proto)] == [7]
    assert proto.sent_seq == 7


def test_replay_sent_asks_for_no_writer_when_nothing_waits(config: PhoneConfig) -> None:
    """Going live with no notice held back needs no writer."""
    proto = PhoneProtocol(config, worker())
    proto.start(0)
    proto.replayed([logged(1)])
    assert [f.get("seq") for f in take(proto)] == [None, 1]
    assert proto.replay_sent() is None


def test_a_replay_that_fails_closes_with_1011(config: PhoneConfig) -> None:
    """When the log cannot be read the socket is closed so that the phone resumes later."""
    proto = PhoneProtocol(config, worker())
    call = proto.start(3)
    assert proto.failed(call, Unavailable("Redis is away")) == Close(
        1011, "unavailable; reconnect with last_seq"
    )
    assert proto.state is State.CLOSED
    assert proto.replies is None
    assert proto.replay_sent() is None


# -- notices -----------------------------------------------------------------


def test_one_writer_at_a_time_and_asked_for_again_after_it_ends(config: PhoneConfig) -> None:
    """The first waiting notice asks for a writer; more notices join it; once the writer
    found nothing more, the next notice asks again."""
    proto = opened(config)
    assert proto.notice(logged(1)) == WriteNotices()
    assert proto.notice(logged(2)) is None
    assert json.loads(proto.next_notice() or "")["seq"] == 1
    assert proto.notice(logged(3)) is None
    assert [f["seq"] for f in drain(proto)] == [2, 3]
    assert proto.notice(logged(4)) == WriteNotices()


def test_a_notice_frame_is_the_notice_with_its_seq(config: PhoneConfig) -> None:
    """A notice goes out as logged, with its ``seq`` added."""
    proto = opened(config)
    proto.notice(logged(11, "offer_closed", offer_id="off_1", job_id="job_1", reason="taken"))
    assert drain(proto) == [
        {
            "type": "offer_closed",
            "offer_id": "off_1",
            "job_id": "job_1",
            "reason": "taken",
            "seq": 11,
        }
    ]


def test_a_phone_that_does_not_read_is_closed_past_the_outbound_limit(
    config: PhoneConfig,
) -> None:
    """Up to ``outbound_limit`` notices wait; the next closes the socket with 1011 "too
    slow" and nothing more is queued or written (the log keeps them for the resume)."""
    proto = opened(config)
    calls = [proto.notice(logged(seq)) for seq in range(1, 5)]
    assert calls == [WriteNotices(), None, None, None]
    assert proto.notice(logged(5)) == Close(1011, "too slow")
    assert proto.state is State.CLOSED
    assert proto.notice(logged(6)) is None
    assert proto.next_notice() is None


def test_a_notice_written_lowers_the_count_towards_the_limit(config: PhoneConfig) -> None:
    """A phone that reads, however slowly, is never closed: the limit counts what waits."""
    proto = opened(config)
    for seq in range(1, 50):
        assert not isinstance(proto.notice(logged(seq)), Close)
        assert proto.next_notice() is not None


def test_notices_keep_the_worker_snapshot_current(config: PhoneConfig) -> None:
    """``assigned`` makes the snapshot busy, ``job_cancelled`` available again."""
    proto = opened(config)
    seen = []
    for entry in (
        logged(1, "assigned", offer_id="off_1", job_id="job_1"),
        logged(2, "job_cancelled", job_id="job_1", reason=""),
    ):
        proto.notice(entry)
        drain(proto)
        seen.append(proto.worker.availability)
    assert seen == [Availability.BUSY, Availability.AVAILABLE]


def test_after_close_nothing_is_queued(config: PhoneConfig) -> None:
    """Once the socket is closed, notices are dropped and no writer is asked for."""
    proto = opened(config)
    proto.notice(logged(1))
    proto.closed()
    assert proto.notice(logged(2)) is None
    assert proto.next_notice() is None


# -- locations ---------------------------------------------------------------


def test_a_location_is_a_call_carrying_the_snapshot_while_it_is_fresh(
    config: PhoneConfig, clocks: Clocks
) -> None:
    """A fix becomes ``ReportLocation`` with the snapshot as ``known``; past its maximum age
    the snapshot is left out (a store read), and the fresh worker returned starts a new age."""
    proto = opened(config)
    call = proto.receive_text('{"type":"location","lat":48.85,"lng":2.35,"accuracy_m":8}')
    assert call == ReportLocation(48.85, 2.35, 8.0, None, proto.worker)
    assert proto.replies is None
    clocks.advance(15.0)
    stale = proto.receive_text('{"type":"location","lat":48.85,"lng":2.35}')
    assert isinstance(stale, ReportLocation)
    assert stale.known is None
    read = worker(Availability.BUSY)
    proto.located(stale, read)
    assert proto.worker is read
    again = proto.receive_text('{"type":"location","lat":48.85,"lng":2.35}')
    assert isinstance(again, ReportLocation)
    assert again.known is read


@pytest.mark.parametrize(
    ("ts", "at"),
    [(T0 - 5, T0 - 5), ('"2025-12-02T00:00:00Z"', T0), ('"2025-12-02T01:00:00+01:00"', T0)],
)
def test_a_location_time_is_posix_seconds(config: PhoneConfig, ts: object, at: float) -> None:
    """``ts`` as a number or as ISO 8601 with a zone reaches the call as POSIX seconds."""
    proto = opened(config)
    call = proto.receive_text(f'{{"type":"location","lat":1,"lng":2,"ts":{ts}}}')
    assert isinstance(call, ReportLocation)
    assert call.at == at


def test_a_location_time_without_a_zone_is_refused(config: PhoneConfig) -> None:
    """A naive ISO time makes no call and gets ``invalid_message``."""
    proto = opened(config)
    call = proto.receive_text('{"type":"location","lat":1,"lng":2,"ts":"2025-12-02T00:00:00"}')
    assert call is None
    [frame] = take(proto)
    assert frame["code"] == "invalid_message"
    assert "time zone" in frame["message"]


def test_a_location_the_service_refuses_gets_its_error_frame(config: PhoneConfig) -> None:
    """A domain error from ``report_location`` becomes its error frame; the snapshot stays."""
    proto = opened(config)
    before = proto.worker
    call = proto.receive_text('{"type":"location","lat":1,"lng":2}')
    assert isinstance(call, ReportLocation)
    assert proto.failed(call, Unavailable("Redis is away")) is None
    assert take(proto) == [{"type": "error", "code": "unavailable", "message": "Redis is away"}]
    assert proto.worker is before


# -- other messages ----------------------------------------------------------


def test_a_ping_is_answered_with_the_servers_time_and_no_call(
    config: PhoneConfig, clocks: Clocks
) -> None:
    """``ping`` needs no service: ``pong`` with the pinned clock, to the millisecond."""
    proto = opened(config)
    clocks.advance(1.2345)
    assert proto.receive_text('{"type":"ping"}') is None
    assert take(proto) == [{"type": "pong", "server_time": "2025-12-02T00:00:01.234Z"}]


def test_status_is_set_then_acknowledged_and_kept_in_the_snapshot(config: PhoneConfig) -> None:
    """``status`` calls ``SetStatus``; once done, the snapshot follows and the phone is told."""
    proto = opened(config)
    call = proto.receive_text('{"type":"status","status":"off_duty"}')
    assert call == SetStatus(Availability.OFF_DUTY)
    assert proto.replies is None
    proto.status_set(call)
    assert proto.worker.availability is Availability.OFF_DUTY
    assert take(proto) == [{"type": "status", "status": "off_duty"}]


def test_accept_is_answered_by_the_assigned_notice_only(config: PhoneConfig) -> None:
    """``accept`` calls ``Accept``; its success writes nothing (the notice follows)."""
    proto = opened(config)
    call = proto.receive_text('{"type":"accept","offer_id":"off_1"}')
    assert call == Accept("off_1")
    proto.accepted(call)
    assert proto.replies is None


def test_decline_is_acknowledged(config: PhoneConfig) -> None:
    """``decline`` calls ``Decline`` and is answered with ``declined``."""
    proto = opened(config)
    call = proto.receive_text('{"type":"decline","offer_id":"off_1"}')
    assert call == Decline("off_1")
    proto.declined(call)
    assert take(proto) == [{"type": "declined", "offer_id": "off_1"}]


def test_completing_the_job_makes_the_snapshot_available(config: PhoneConfig) -> None:
    """``progress`` calls ``Progress``; the job's new state is echoed, and a completed job
    frees the worker in the snapshot."""
    proto = opened(config)
    proto.worker.availability = Availability.BUSY
    call = proto.receive_text('{"type":"progress","job_id":"job_1","state":"completed"}')
    assert call == Progress("job_1", JobState.COMPLETED)
    job = Job("job_1", "org_1", "Fix", 1.0, 2.0, frozenset(), 0, JobState.COMPLETED, T0, T0)
    proto.progressed(call, job)
    assert proto.worker.availability is Availability.AVAILABLE
    assert take(proto) == [{"type": "progress", "job_id": "job_1", "state": "completed"}]


def test_release_hands_the_job_back_and_makes_the_snapshot_available(
    config: PhoneConfig,
) -> None:
    """``release`` calls ``Release`` with its reason (empty by default); the job is
    echoed open and the worker is available again in the snapshot."""
    proto = opened(config)
    proto.worker.availability = Availability.BUSY
    call = proto.receive_text('{"type":"release","job_id":"job_1","reason":"flat tyre"}')
    assert call == Release("job_1", "flat tyre")
    assert proto.receive_text('{"type":"release","job_id":"job_1"}') == Release("job_1", "")
    job = Job("job_1", "org_1", "Fix", 1.0, 2.0, frozenset(), 0, JobState.OPEN, T0, T0)
    proto.released(call, job)
    assert proto.worker.availability is Availability.AVAILABLE
    assert take(proto) == [{"type": "released", "job_id": "job_1", "state": "open"}]


def test_going_off_duty_with_a_job_gets_an_error_naming_the_job(config: PhoneConfig) -> None:
    """A ``NotEligible`` that names a job puts its id on the error frame; the snapshot stays."""
    proto = opened(config)
    proto.worker.availability = Availability.BUSY
    call = proto.receive_text('{"type":"status","status":"off_duty"}')
    assert call is not None
    assert proto.failed(call, NotEligible("job job_1 is yours", job_id="job_1")) is None
    assert proto.worker.availability is Availability.BUSY
    assert take(proto) == [
        {
            "type": "error",
            "code": "not_eligible",
            "message": "job job_1 is yours",
            "job_id": "job_1",
        }
    ]


def test_a_refused_call_gets_an_error_frame_naming_the_offer(config: PhoneConfig) -> None:
    """An ``OfferClosed`` answer carries the offer and the reason; others their code."""
    proto = opened(config)
    call = proto.receive_text('{"type":"accept","offer_id":"off_1"}')
    assert call is not None
    assert proto.failed(call, OfferClosed("off_1", "taken")) is None
    assert proto.failed(call, NotFound("offer", "off_1")) is None
    assert proto.failed(call, ValueError("bad value")) is None
    assert take(proto) == [
        {
            "type": "error",
            "code": "offer_closed",
            "message": "offer off_1 is closed (taken)",
            "offer_id": "off_1",
            "reason": "taken",
        },
        {"type": "error", "code": "not_found", "message": "offer 'off_1' not found"},
        {"type": "error", "code": "invalid_message", "message": "bad value"},
    ]


@pytest.mark.parametrize(
    ("text", "code", "words"),
    [
        ("{broken", "invalid_json", "not valid JSON"),
        ('{"lat": 48.8, "lng": 2.35}', "unknown_type", "no `type`"),
        ('{"type": null}', "unknown_type", "no `type`"),
        ('{"type": "teleport"}', "unknown_type", "'teleport'"),
        ('{"type": 7}', "unknown_type", "unknown message type 7"),
        ('{"type": "location", "lng": 2.35}', "invalid_message", "`lat`"),
        ('{"type": "location", "lat": 91, "lng": 2.35}', "invalid_message", "$.lat"),
        ("[1, 2]", "invalid_message", "Expected"),
    ],
)
def test_a_bad_frame_gets_one_error_frame_and_no_call(
    config: PhoneConfig, text: str, code: str, words: str
) -> None:
    """Malformed, untyped, unknown or invalid frames are answered by one error frame that
    names the problem; the socket stays open."""
    proto = opened(config)
    assert proto.receive_text(text) is None
    [frame] = take(proto)
    assert frame["type"] == "error"
    assert frame["code"] == code
    assert words in frame["message"]
    assert proto.state is State.OPEN


def test_a_binary_frame_gets_an_error_frame(config: PhoneConfig) -> None:
    """The protocol is JSON text; a binary frame is refused with ``invalid_message``."""
    proto = opened(config)
    proto.receive_binary()
    assert take(proto) == [
        {"type": "error", "code": "invalid_message", "message": "send JSON text frames"}
    ]
