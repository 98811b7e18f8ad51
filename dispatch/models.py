"""Domain records: organisations, workers, jobs, offers, assignments, events.

Rules for callers:

* Times are POSIX seconds (``float``) from the injected clock; never read the
  wall clock here.
* Ids are opaque strings; every record carries its organisation id and every
  lookup is scoped by it.
* ``Fix``, ``Assignment`` and ``JobEvent`` are immutable; ``Worker``, ``Job``
  and ``Offer`` change only through ``lifecycle`` and ``offers``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class WorkerKind(StrEnum):
    """How a worker is engaged by the organisation."""

    EMPLOYEE = "employee"
    CONTRACTOR = "contractor"
    FREELANCER = "freelancer"


class Availability(StrEnum):
    """Whether a worker can be offered work now."""

    AVAILABLE = "available"
    BUSY = "busy"
    OFF_DUTY = "off_duty"


class JobState(StrEnum):
    """Where a job is in its life; legal moves live in ``lifecycle``."""

    OPEN = "open"
    ASSIGNED = "assigned"
    EN_ROUTE = "en_route"
    ON_SITE = "on_site"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    UNFILLED = "unfilled"


class OfferState(StrEnum):
    """Where an offer is; every state but PENDING is final."""

    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    EXPIRED = "expired"
    TAKEN = "taken"
    CANCELLED = "cancelled"
    WITHDRAWN = "withdrawn"


@dataclass(frozen=True, slots=True)
class Organisation:
    """A tenant: one plant or one municipality."""

    id: str
    name: str
    created_at: float


@dataclass(frozen=True, slots=True)
class Fix:
    """A position report: where a worker was, how precisely, and when."""

    lat: float
    lng: float
    accuracy_m: float | None
    at: float


@dataclass(slots=True)
class Worker:
    """A technician of one organisation."""

    id: str
    org_id: str
    name: str
    kind: WorkerKind
    skills: frozenset[str]
    availability: Availability = Availability.OFF_DUTY
    fix: Fix | None = None
    created_at: float = 0.0


@dataclass(slots=True)
class Job:
    """A work order to be staffed, with the state of its offer waves.

    ``wave`` is 0 before the first wave and counts up; ``wave_radius_m`` and
    ``wave_deadline`` describe the wave now out (``wave_deadline`` is None when
    no wave is waiting on a deadline).
    """

    id: str
    org_id: str
    title: str
    lat: float
    lng: float
    skills: frozenset[str]
    priority: int
    state: JobState
    created_at: float
    updated_at: float
    description: str = ""
    external_ref: str | None = None
    worker_id: str | None = None
    wave: int = 0
    wave_radius_m: float = 0.0
    wave_deadline: float | None = None
    version: int = 0


@dataclass(slots=True)
class Offer:
    """One job offered to one worker in one wave."""

    id: str
    org_id: str
    job_id: str
    worker_id: str
    wave: int
    distance_m: float
    sent_at: float
    expires_at: float
    state: OfferState = OfferState.PENDING
    closed_at: float | None = None


@dataclass(frozen=True, slots=True)
class Assignment:
    """Who got the job, through which offer, and when."""

    job_id: str
    worker_id: str
    offer_id: str
    at: float


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One line of a job's append-only history.

    ``kind`` names what happened (``created``, ``wave``, ``offered``,
    ``declined``, ``expired``, ``assigned``, ``en_route``, ``on_site``,
    ``completed``, ``cancelled``, ``unfilled``, ``withdrawn``, ``released``,
    ``reopened``); ``data`` holds JSON-ready details — for a change a
    dispatcher made, ``by`` (``Actor.as_data``). ``seq`` is assigned by the
    store, 1-based per job.
    """

    job_id: str
    org_id: str
    at: float
    kind: str
    data: Mapping[str, Any] = field(default_factory=dict)
    seq: int = 0


@dataclass(frozen=True, slots=True)
class Dispatcher:
    """A person in an organisation's control room, with a token of their own.

    ``revoked_at`` is None while the token works; once revoked it never works
    again (the record stays, so the event log's ``by`` still names someone).
    """

    id: str
    org_id: str
    name: str
    created_at: float
    revoked_at: float | None = None


@dataclass(frozen=True, slots=True)
class Actor:
    """Who made a change by hand: a role (``org``, ``dispatcher``) and that caller's id.

    Recorded as ``by`` in the job event a dispatcher action appends.
    """

    role: str
    id: str

    def as_data(self) -> dict[str, str]:
        """The JSON-ready form stored in an event's ``data``."""
        return {"role": self.role, "id": self.id}
