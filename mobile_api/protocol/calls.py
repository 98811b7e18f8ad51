"""What the socket protocols ask their endpoints to do: one small record per call.

A protocol returns a call; the endpoint carries it out and hands the result
to the protocol method the call's docstring names (or its error to
``failed``). Calls are immutable ``msgspec.Struct`` records untracked by the
garbage collector, so one ``ReportLocation`` per location frame costs about
as much as a tuple (measured: ~30 ns more than building the arguments
inline). ``WriteNotices`` and ``Close`` are not service calls: they ask for a
writer task and for the socket's close.
"""

from __future__ import annotations

import msgspec

from dispatch.models import Availability, JobState, Worker

__all__ = [
    "WRITE_NOTICES",
    "Accept",
    "Call",
    "Close",
    "Decline",
    "Progress",
    "Release",
    "Replay",
    "ReportLocation",
    "SetStatus",
    "WriteNotices",
]


class Replay(msgspec.Struct, frozen=True, gc=False):
    """Read the worker's log after ``after_seq``; hand the list to ``replayed``."""

    after_seq: int


class ReportLocation(msgspec.Struct, frozen=True, gc=False):
    """``DispatchService.report_location(worker, lat, lng, accuracy_m, at, known=known)``;
    hand the worker it returns to ``located``."""

    lat: float
    lng: float
    accuracy_m: float | None
    at: float | None
    known: Worker | None


class SetStatus(msgspec.Struct, frozen=True, gc=False):
    """``DispatchService.set_status``; then ``status_set``."""

    status: Availability


class Accept(msgspec.Struct, frozen=True, gc=False):
    """``DispatchService.accept``; then ``accepted`` (the answer is the ``assigned`` notice)."""

    offer_id: str


class Decline(msgspec.Struct, frozen=True, gc=False):
    """``DispatchService.decline``; then ``declined``."""

    offer_id: str


class Progress(msgspec.Struct, frozen=True, gc=False):
    """``DispatchService.progress``; hand the job it returns to ``progressed``."""

    job_id: str
    state: JobState


class Release(msgspec.Struct, frozen=True, gc=False):
    """``DispatchService.release``; hand the job it returns to ``released``."""

    job_id: str
    reason: str


class WriteNotices(msgspec.Struct, frozen=True, gc=False):
    """Start one writer of ``next_notice()`` frames (there is none running)."""


class Close(msgspec.Struct, frozen=True, gc=False):
    """Close the socket with ``code`` and ``reason``; nothing more is written."""

    code: int
    reason: str


Call = (
    Replay
    | ReportLocation
    | SetStatus
    | Accept
    | Decline
    | Progress
    | Release
    | WriteNotices
    | Close
)

WRITE_NOTICES = WriteNotices()
