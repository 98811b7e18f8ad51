"""JSON views of domain records, as the HTTP API returns them.

``worker_item`` and ``job_item`` are the shapes of the dispatcher's lists,
and the item shapes the live map's feed will send: keep them flat and small
(a worker: ``id, name, kind, status, lat, lng, fix_at``; a job: ``id, title,
state, lat, lng, worker_id, offers``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from dispatch.console import Ranked
from dispatch.listing import ListedJob
from dispatch.models import Dispatcher, Job, JobEvent, Offer, Organisation, Worker
from dispatch.notices import iso


def org_view(org: Organisation) -> dict[str, Any]:
    """An organisation as ``POST /v1/orgs`` shows it (its key is added there, once)."""
    return {"id": org.id, "name": org.name, "created_at": iso(org.created_at)}


def worker_view(worker: Worker) -> dict[str, Any]:
    """A worker with status and last fix (never the device token)."""
    fix = worker.fix
    return {
        "id": worker.id,
        "org_id": worker.org_id,
        "name": worker.name,
        "kind": worker.kind.value,
        "skills": sorted(worker.skills),
        "status": worker.availability.value,
        "last_fix": None
        if fix is None
        else {"lat": fix.lat, "lng": fix.lng, "accuracy_m": fix.accuracy_m, "at": iso(fix.at)},
        "created_at": iso(worker.created_at),
    }


def event_view(event: JobEvent) -> dict[str, Any]:
    """One entry of a job's history."""
    return {"seq": event.seq, "at": iso(event.at), "kind": event.kind, "data": dict(event.data)}


def job_view(job: Job, history: list[JobEvent] | None = None) -> dict[str, Any]:
    """A job; with ``history`` (oldest first) when one is given."""
    body: dict[str, Any] = {
        "id": job.id,
        "org_id": job.org_id,
        "title": job.title,
        "description": job.description,
        "external_ref": job.external_ref,
        "lat": job.lat,
        "lng": job.lng,
        "skills": sorted(job.skills),
        "priority": job.priority,
        "state": job.state.value,
        "worker_id": job.worker_id,
        "wave": job.wave,
        "wave_deadline": None if job.wave_deadline is None else iso(job.wave_deadline),
        "created_at": iso(job.created_at),
        "updated_at": iso(job.updated_at),
    }
    if history is not None:
        body["history"] = [event_view(e) for e in history]
    return body


def _when(ts: float | None) -> str | None:
    return None if ts is None else iso(ts)


def dispatcher_view(dispatcher: Dispatcher) -> dict[str, Any]:
    """A dispatcher (never the token: ``POST /v1/dispatchers`` adds it, once)."""
    return {
        "id": dispatcher.id,
        "name": dispatcher.name,
        "created_at": iso(dispatcher.created_at),
        "revoked_at": _when(dispatcher.revoked_at),
    }


def worker_item(worker: Worker) -> dict[str, Any]:
    """A worker as a list (and the map) shows it: where, in what status, since when."""
    fix = worker.fix
    return {
        "id": worker.id,
        "name": worker.name,
        "kind": worker.kind.value,
        "skills": sorted(worker.skills),
        "status": worker.availability.value,
        "lat": None if fix is None else fix.lat,
        "lng": None if fix is None else fix.lng,
        "accuracy_m": None if fix is None else fix.accuracy_m,
        "fix_at": None if fix is None else iso(fix.at),
    }


def offer_item(offer: Offer) -> dict[str, Any]:
    """An offer as a job item lists it: to whom, where it stands, until when."""
    return {
        "worker_id": offer.worker_id,
        "state": offer.state.value,
        "expires_at": iso(offer.expires_at),
    }


def job_item(listed: ListedJob) -> dict[str, Any]:
    """A job as a list (and the map) shows it, with the offers still out."""
    job = listed.job
    return {
        "id": job.id,
        "title": job.title,
        "state": job.state.value,
        "lat": job.lat,
        "lng": job.lng,
        "worker_id": job.worker_id,
        "skills": sorted(job.skills),
        "priority": job.priority,
        "wave": job.wave,
        "updated_at": iso(job.updated_at),
        "offers": [offer_item(o) for o in listed.offers],
    }


def offer_view(offer: Offer) -> dict[str, Any]:
    """An offer in full, as ``GET /v1/jobs/{id}`` lists every one of the job's."""
    return {
        "id": offer.id,
        **offer_item(offer),
        "wave": offer.wave,
        "distance_m": round(offer.distance_m, 1),
        "sent_at": iso(offer.sent_at),
        "closed_at": _when(offer.closed_at),
    }


def job_detail_view(job: Job, history: list[JobEvent], offers: Iterable[Offer]) -> dict[str, Any]:
    """A job with its history and every offer made for it, oldest first."""
    return {**job_view(job, history), "offers": [offer_view(o) for o in offers]}


def candidate_view(candidate: Ranked) -> dict[str, Any]:
    """A candidate: the worker item, distance, rank (eligible only) and the reason out."""
    return {
        **worker_item(candidate.worker),
        "distance_m": round(candidate.distance_m, 1),
        "rank": candidate.rank,
        "reason": None if candidate.reason is None else candidate.reason.value,
    }


def page_view(items: Sequence[dict[str, Any]], cursor: str | None) -> dict[str, Any]:
    """A page of a list: its items and the cursor of the next page (null on the last)."""
    return {"items": list(items), "next_cursor": cursor}
