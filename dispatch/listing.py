"""What a dispatcher lists: filters, pages, and the listed items (pure, no I/O).

``WorkerQuery`` and ``JobQuery`` are the filters of ``GET /v1/workers`` and
``GET /v1/jobs``; every backend's ``Listings`` answers them with a ``Page``.
``matches_worker`` and ``matches_job`` are the filters themselves, so a
backend that cannot express one in its query language (a worker's fix lives
in Redis, not in PostgreSQL) applies the same rule as the memory backend.

Pagination is keyset on the record id: a page holds the first ``limit``
matching records with ``id > after``, in id order, and ``Page.last`` is the
id to pass as the next ``after`` (None on the last page). Ids never change,
so a walk through the pages neither skips nor repeats a record, whatever is
inserted meanwhile (a record inserted during a walk may or may not be seen).

Rules for callers: ``limit`` is at least 1 (the edge caps it); an empty
``states``/``statuses``/``kinds`` means any; ``skill`` is a normalised
(lower-case) skill name; ``bbox`` is ``(west, south, east, north)`` in
degrees, and a ``west`` greater than ``east`` crosses the antimeridian.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from .models import Availability, Job, JobState, Offer, Worker, WorkerKind

T = TypeVar("T")

BBox = tuple[float, float, float, float]
"""``(west, south, east, north)`` in degrees."""


@dataclass(frozen=True, slots=True)
class WorkerQuery:
    """Filters of a worker list; ``updated_since`` applies to the last fix's time."""

    limit: int
    after: str | None = None
    statuses: frozenset[Availability] = frozenset()
    kinds: frozenset[WorkerKind] = frozenset()
    skill: str | None = None
    bbox: BBox | None = None
    updated_since: float | None = None


@dataclass(frozen=True, slots=True)
class JobQuery:
    """Filters of a job list; ``skill`` keeps jobs that require it."""

    limit: int
    after: str | None = None
    states: frozenset[JobState] = frozenset()
    skill: str | None = None
    bbox: BBox | None = None
    updated_since: float | None = None


@dataclass(frozen=True, slots=True)
class ListedJob:
    """A job with the offers still out (pending), oldest first."""

    job: Job
    offers: Sequence[Offer] = ()


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list; ``last`` is the ``after`` of the next page (None: no more)."""

    items: list[T] = field(default_factory=list)
    last: str | None = None


def in_bbox(lat: float, lng: float, bbox: BBox) -> bool:
    """Whether ``(lat, lng)`` lies in ``bbox`` (edges included; see the module docstring)."""
    west, south, east, north = bbox
    if not south <= lat <= north:
        return False
    if west <= east:
        return west <= lng <= east
    return lng >= west or lng <= east


def matches_worker(worker: Worker, q: WorkerQuery) -> bool:
    """Whether ``worker`` passes every filter of ``q`` (not the page bounds)."""
    if q.statuses and worker.availability not in q.statuses:
        return False
    if q.kinds and worker.kind not in q.kinds:
        return False
    if q.skill is not None and q.skill not in worker.skills:
        return False
    fix = worker.fix
    if q.bbox is not None and (fix is None or not in_bbox(fix.lat, fix.lng, q.bbox)):
        return False
    return q.updated_since is None or (fix is not None and fix.at >= q.updated_since)


def matches_job(job: Job, q: JobQuery) -> bool:
    """Whether ``job`` passes every filter of ``q`` (not the page bounds)."""
    if q.states and job.state not in q.states:
        return False
    if q.skill is not None and q.skill not in job.skills:
        return False
    if q.bbox is not None and not in_bbox(job.lat, job.lng, q.bbox):
        return False
    return q.updated_since is None or job.updated_at >= q.updated_since


def page_of(found: Sequence[T], ids: Sequence[str], limit: int) -> Page[T]:
    """The page of ``found``: up to ``limit + 1`` matches in id order (``ids``: theirs).

    A backend fetches one match more than the page holds: if it finds it, a
    next page exists and starts after the page's last id.
    """
    items = list(found[:limit])
    return Page(items, ids[limit - 1] if len(found) > limit else None)
