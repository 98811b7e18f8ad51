"""A request's GeoReport view, read live off its dispatch job (pure).

What a citizen sees follows the job:

==============  ========  =====================================================
job state       status    status_notes
==============  ========  =====================================================
open            open      ``awaiting a crew``
unfilled        open      ``awaiting a crew`` (nobody took it yet; it stays open)
assigned        open      ``crew assigned``
en_route        open      ``crew on the way``
on_site         open      ``crew on site``
completed       closed    ``completed``
cancelled       closed    ``cancelled``
==============  ========  =====================================================

``expected_datetime`` appears once a technician has accepted: the arrival
expected from the technician's last fix at ``travel_speed_mps`` in a straight
line (from the time of that fix), then — while on site — the time they
arrived; a closed request has none (``updated_datetime`` says when it closed).
``updated_datetime`` is the job's last change (for a closed request, when it
closed). Rules for callers: pass the technician's fix only to compute the
time; the view never carries a technician's identity, id or position, nor the
citizen's contact details.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from geo import haversine_m

from ..models import Fix, Job, JobEvent, JobState
from .models import ServiceRequest

NOTES: dict[JobState, tuple[str, str]] = {
    JobState.OPEN: ("open", "awaiting a crew"),
    JobState.UNFILLED: ("open", "awaiting a crew"),
    JobState.ASSIGNED: ("open", "crew assigned"),
    JobState.EN_ROUTE: ("open", "crew on the way"),
    JobState.ON_SITE: ("open", "crew on site"),
    JobState.COMPLETED: ("closed", "completed"),
    JobState.CANCELLED: ("closed", "cancelled"),
}
"""GeoReport ``status`` and ``status_notes`` for each job state."""

STATUSES = ("open", "closed")

FIELDS = (
    "service_request_id",
    "status",
    "status_notes",
    "service_name",
    "service_code",
    "description",
    "agency_responsible",
    "service_notice",
    "requested_datetime",
    "updated_datetime",
    "expected_datetime",
    "address",
    "address_id",
    "zipcode",
    "lat",
    "long",
    "media_url",
)
"""The elements of a GeoReport ``request``, in the specification's order."""


def w3(ts: float) -> str:
    """POSIX seconds in the W3C format the specification shows (``2010-01-01T00:00:00Z``)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_of(job: Job) -> str:
    """``open`` or ``closed`` for the job's state."""
    return NOTES[job.state][0]


@dataclass(frozen=True, slots=True)
class Progress:
    """What the view needs of a job besides the job itself."""

    history: list[JobEvent]
    crew_fix: Fix | None = None
    """The assigned technician's last fix (used for the time only, never shown)."""


def expected_at(job: Job, progress: Progress, travel_speed_mps: float) -> float | None:
    """When the crew is expected on site, or arrived there; None before an accept."""
    if job.state is JobState.ON_SITE:
        arrived = [e.at for e in progress.history if e.kind == "on_site"]
        return arrived[-1] if arrived else None
    if job.state not in (JobState.ASSIGNED, JobState.EN_ROUTE):
        return None
    fix = progress.crew_fix
    if fix is None:
        return None
    distance = haversine_m(fix.lat, fix.lng, job.lat, job.lng)
    return fix.at + distance / travel_speed_mps


def request_view(
    request: ServiceRequest,
    job: Job,
    progress: Progress,
    agency: str,
    travel_speed_mps: float,
) -> dict[str, Any]:
    """The GeoReport ``request`` element (``FIELDS``, in order; absent values are None)."""
    status, notes = NOTES[job.state]
    expected = expected_at(job, progress, travel_speed_mps)
    return {
        "service_request_id": request.id,
        "status": status,
        "status_notes": notes,
        "service_name": request.service_name,
        "service_code": request.service_code,
        "description": request.description,
        "agency_responsible": agency,
        "service_notice": "",
        "requested_datetime": w3(request.requested_at),
        "updated_datetime": w3(max(job.updated_at, request.requested_at)),
        "expected_datetime": None if expected is None else w3(expected),
        "address": request.address,
        "address_id": request.address_id,
        "zipcode": request.zipcode,
        "lat": request.lat,
        "long": request.long,
        "media_url": request.media_url,
    }
