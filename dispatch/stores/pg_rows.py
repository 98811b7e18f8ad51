"""Rows of the job tables: column lists, statements, and record <-> model conversions.

Used by ``pg_jobs``; nothing here talks to the database. Times are stored as
the float seconds the models use; skills as sorted ``text[]``; states as
their enum values.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from ..lifecycle import ACTIVE_JOB_STATES
from ..models import Job, JobEvent, JobState, Offer, OfferState

__all__ = [
    "ACTIVE",
    "INSERT_EVENT",
    "JOB_COLS",
    "OFFER_COLS",
    "UPDATE_JOB",
    "UPSERT_OFFER",
    "event_args",
    "job_args",
    "job_from",
    "offer_args",
    "offer_from",
]

JOB_COLS = (
    "id, org_id, title, description, external_ref, lat, lng, skills, priority, state,"
    " worker_id, wave, wave_radius_m, wave_deadline, version, created_at, updated_at"
)
OFFER_COLS = (
    "id, org_id, job_id, worker_id, wave, distance_m, sent_at, expires_at, state, closed_at"
)
ACTIVE = sorted(s.value for s in ACTIVE_JOB_STATES)

UPDATE_JOB = """
UPDATE jobs SET title = $3, description = $4, external_ref = $5, lat = $6, lng = $7,
       cell = $8, skills = $9, priority = $10, state = $11, worker_id = $12, wave = $13,
       wave_radius_m = $14, wave_deadline = $15, version = $16, updated_at = $17,
       last_seq = $18
 WHERE id = $1 AND version = $2
"""

UPSERT_OFFER = f"""
INSERT INTO offers ({OFFER_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (id) DO UPDATE SET
    worker_id = EXCLUDED.worker_id, wave = EXCLUDED.wave, distance_m = EXCLUDED.distance_m,
    sent_at = EXCLUDED.sent_at, expires_at = EXCLUDED.expires_at, state = EXCLUDED.state,
    closed_at = EXCLUDED.closed_at
WHERE offers.job_id = EXCLUDED.job_id
"""

INSERT_EVENT = """
INSERT INTO job_events (job_id, seq, org_id, at, kind, data) VALUES ($1, $2, $3, $4, $5, $6)
"""


def job_args(job: Job) -> tuple[Any, ...]:
    return (
        job.id,
        job.org_id,
        job.title,
        job.description,
        job.external_ref,
        job.lat,
        job.lng,
        sorted(job.skills),
        job.priority,
        job.state.value,
        job.worker_id,
        job.wave,
        job.wave_radius_m,
        job.wave_deadline,
        job.version,
        job.created_at,
        job.updated_at,
    )


def job_from(row: asyncpg.Record) -> Job:
    return Job(
        id=row["id"],
        org_id=row["org_id"],
        title=row["title"],
        lat=row["lat"],
        lng=row["lng"],
        skills=frozenset(row["skills"]),
        priority=row["priority"],
        state=JobState(row["state"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        description=row["description"],
        external_ref=row["external_ref"],
        worker_id=row["worker_id"],
        wave=row["wave"],
        wave_radius_m=row["wave_radius_m"],
        wave_deadline=row["wave_deadline"],
        version=row["version"],
    )


def offer_from(row: asyncpg.Record) -> Offer:
    return Offer(
        id=row["id"],
        org_id=row["org_id"],
        job_id=row["job_id"],
        worker_id=row["worker_id"],
        wave=row["wave"],
        distance_m=row["distance_m"],
        sent_at=row["sent_at"],
        expires_at=row["expires_at"],
        state=OfferState(row["state"]),
        closed_at=row["closed_at"],
    )


def offer_args(offer: Offer, job_id: str) -> tuple[Any, ...]:
    return (
        offer.id,
        offer.org_id,
        job_id,
        offer.worker_id,
        offer.wave,
        offer.distance_m,
        offer.sent_at,
        offer.expires_at,
        offer.state.value,
        offer.closed_at,
    )


def event_args(job: Job, event: JobEvent, seq: int) -> tuple[Any, ...]:
    return (job.id, seq, event.org_id, event.at, event.kind, dict(event.data))
