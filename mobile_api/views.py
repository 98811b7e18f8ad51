"""JSON views of domain records, as the HTTP API returns them."""

from __future__ import annotations

from typing import Any

from dispatch.models import Job, JobEvent, Organisation, Worker
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
