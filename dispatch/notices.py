"""The notices a worker's phone receives, built in one place.

Each is a JSON-ready dict with a ``type``; the websocket layer adds the log
sequence number (``seq``) and serialises it. Times are ISO 8601 UTC strings.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from .models import Job, Offer


def iso(ts: float) -> str:
    """POSIX seconds as an ISO 8601 UTC string with milliseconds."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def offer_notice(offer: Offer, job: Job) -> dict[str, Any]:
    """A job is offered to the worker until ``expires_at``."""
    return {
        "type": "offer",
        "offer_id": offer.id,
        "job": {
            "id": job.id,
            "title": job.title,
            "lat": job.lat,
            "lng": job.lng,
            "skills": sorted(job.skills),
            "priority": job.priority,
        },
        "distance_m": round(offer.distance_m, 1),
        "wave": offer.wave,
        "expires_at": iso(offer.expires_at),
    }


def assigned_notice(offer_id: str, job_id: str) -> dict[str, Any]:
    """The worker's accept won: the job is theirs."""
    return {"type": "assigned", "offer_id": offer_id, "job_id": job_id}


def offer_closed_notice(offer_id: str, job_id: str, reason: str) -> dict[str, Any]:
    """The offer can no longer be accepted (taken, expired, cancelled, withdrawn)."""
    return {"type": "offer_closed", "offer_id": offer_id, "job_id": job_id, "reason": reason}


def job_cancelled_notice(job_id: str, reason: str) -> dict[str, Any]:
    """The job the worker was assigned to was cancelled; they are free again."""
    return {"type": "job_cancelled", "job_id": job_id, "reason": reason}
