"""PostgreSQL job store: jobs, offers and the append-only job event log.

Each table's columns are named like the fields of its model (``Job``,
``Offer``, ``JobEvent``); the column lists are read off the dataclasses, and
each statement sits next to the function that builds its arguments.

How races are decided (every instance shares one database):

* ``transaction(job_id)`` opens a database transaction and locks the job row
  with ``SELECT … FOR UPDATE``; concurrent transactions on one job, on any
  instance, queue on that lock. On normal exit it writes the job with
  ``UPDATE … WHERE id = $1 AND version = $old`` (a guard: a mismatch means
  something wrote the row without the lock, and the block is rolled back with
  ``Unavailable``), upserts the offers that are new or changed, appends the
  book's events with the next per-job ``seq`` values (``jobs.last_seq`` is
  advanced under the same lock, so sequences are contiguous), inserts the
  book's effects into the outbox (``outbox``), and commits. The locking
  read also tells whether the outbox still holds effects of the job
  (``book.backlog``).
  On an exception it rolls back: nothing of the block is kept.
* ``due`` is a plain read without locks, so any instance may return a job
  another instance is handling right now. That is safe: the second
  transaction waits for the first, then finds a later deadline and the
  engine's ``expire`` does nothing. ``FOR UPDATE SKIP LOCKED`` inside a short
  transaction would skip only the rows locked at that very moment (the lock
  ends with the short transaction, long before the real one starts), and it
  would write a row lock on every due row on every poll of every instance;
  it is not worth it.

Rules for callers:

* Hold a transaction briefly: other instances wait on the row lock.
* Do not open a transaction on a job inside a transaction on the same job
  (it waits for itself, like the memory store's lock).
* If a commit fails with ``Unavailable`` its outcome is unknown; read the
  job again before retrying.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import asyncpg

from geo import EARTH_RADIUS_M, InvalidArgument, haversine_m, latlng_to_cell, validate_latlng

from ...errors import NotFound, Unavailable
from ...lifecycle import ACTIVE_JOB_STATES
from ...models import Job, JobEvent, JobState, Offer, OfferState
from ...offers import JobBook
from ..ports import Nearby
from .outbox import BACKLOG, OUTBOX
from .pool import Q, params, pg_errors
from .rows import Table, column_value

__all__ = ["PgJobStore"]


# -- jobs: one row per job; a column per Job field, plus cell and last_seq ----------

JOBS = Table("jobs", Job)
_N = len(JOBS.columns)

_INSERT_JOB = f"INSERT INTO jobs ({JOBS.select}, cell, last_seq) VALUES ({params(_N + 2)})"
_UPDATE_JOB = (
    f"UPDATE jobs SET ({JOBS.select}, cell, last_seq) = ({params(_N + 2)})"
    f" WHERE id = $1 AND version = ${_N + 3}"
)
"""Write the whole row, guarded by the version it was read at (the last argument)."""


def _job_args(job: Job, cell: int, last_seq: int) -> tuple[Any, ...]:
    """``_INSERT_JOB``'s arguments (``_UPDATE_JOB``'s, but for the guard)."""
    return (*(column_value(getattr(job, c)) for c in JOBS.columns), cell, last_seq)


def _job(row: asyncpg.Record) -> Job:
    found = {c: row[c] for c in JOBS.columns}
    found["skills"] = frozenset(found["skills"])
    found["state"] = JobState(found["state"])
    return Job(**found)


_ACTIVE = sorted(s.value for s in ACTIVE_JOB_STATES)

# -- offers and events --------------------------------------------------------------

OFFERS = Table("offers", Offer)
"""Offers of a job, ordered by ``n`` (an identity column: insertion order)."""
EVENTS = Table("job_events", JobEvent)
"""The append-only log: ``seq`` per job, from ``jobs.last_seq``."""

_CHANGES = [c for c in OFFERS.columns if c not in ("id", "org_id", "job_id")]
_ON_OFFER_CONFLICT = (
    f"ON CONFLICT (id) DO UPDATE SET ({', '.join(_CHANGES)})"
    f" = ({', '.join('EXCLUDED.' + c for c in _CHANGES)})"
    " WHERE offers.job_id = EXCLUDED.job_id"
)
"""A changed offer is updated (never one of another job)."""


def _offer(row: asyncpg.Record) -> Offer:
    found = {c: row[c] for c in OFFERS.columns}
    found["state"] = OfferState(found["state"])
    return Offer(**found)


def _event_row(job: Job, event: JobEvent, seq: int) -> dict[str, Any]:
    return {**{c: getattr(event, c) for c in EVENTS.columns}, "job_id": job.id, "seq": seq}


_INSERT_EVENTS = EVENTS.insert_many(1)

# -- a transaction's write: one statement ----------------------------------------------

_F_OFFERS = _N + 4
_F_EVENTS = _F_OFFERS + len(OFFERS.columns)
_F_EFFECTS = _F_EVENTS + len(EVENTS.columns)

_WRITE = f"""
WITH job AS ({_UPDATE_JOB} RETURNING 1),
     offers AS ({OFFERS.insert_many(_F_OFFERS, _ON_OFFER_CONFLICT)}),
     events AS ({EVENTS.insert_many(_F_EVENTS)}),
     effects AS ({OUTBOX.insert_many(_F_EFFECTS)})
SELECT count(*) FROM job
"""
"""The job row (guarded by its version), its new and changed offers, its new events
and the transaction's effects, in one round trip; answers 1, or 0 if the guard failed."""


def _write_args(
    book: JobBook, cell: int, last_seq: int, version: int, offers: list[Offer]
) -> tuple[Any, ...]:
    """``_WRITE``'s arguments: the book after the transaction, read at ``version``."""
    job = book.job
    events = [_event_row(job, e, last_seq + i) for i, e in enumerate(book.log, start=1)]
    return (
        *_job_args(job, cell, last_seq + len(book.log)),
        version,
        *OFFERS.arrays(
            [{**{c: getattr(o, c) for c in OFFERS.columns}, "job_id": job.id} for o in offers]
        ),
        *EVENTS.arrays(events),
        *OUTBOX.arrays([{c: getattr(e, c) for c in OUTBOX.columns} for e in book.effects]),
    )


class PgJobStore:
    """Jobs, offers and events in PostgreSQL; see the module docstring."""

    def __init__(self, pool: asyncpg.Pool, resolution: int) -> None:
        self._pool = pool
        self._q = Q(pool)
        self._resolution = resolution

    async def add_job(self, job: Job, event: JobEvent) -> None:
        async with self._q.conn() as conn, conn.transaction():
            cell = latlng_to_cell(job.lat, job.lng, self._resolution)
            await conn.execute(_INSERT_JOB, *_job_args(job, cell, 1))
            await conn.execute(_INSERT_EVENTS, *EVENTS.arrays([_event_row(job, event, 1)]))

    async def get_job(self, org_id: str, job_id: str) -> Job | None:
        row = await self._q.fetchrow(
            f"SELECT {JOBS.select} FROM jobs WHERE id = $1 AND org_id = $2", job_id, org_id
        )
        return None if row is None else _job(row)

    async def get_jobs(self, org_id: str, job_ids: Sequence[str]) -> dict[str, Job]:
        rows = await self._q.fetch(
            f"SELECT {JOBS.select} FROM jobs WHERE id = ANY($1::text[]) AND org_id = $2",
            list(job_ids),
            org_id,
        )
        return {row["id"]: _job(row) for row in rows}

    async def history(self, org_id: str, job_id: str) -> list[JobEvent]:
        rows = await self._q.fetch(
            f"SELECT {EVENTS.select} FROM job_events"
            " WHERE job_id = $1 AND org_id = $2 ORDER BY seq",
            job_id,
            org_id,
        )
        return [JobEvent(**{c: r[c] for c in EVENTS.columns}) for r in rows]

    @asynccontextmanager
    async def transaction(self, job_id: str) -> AsyncIterator[JobBook]:
        with pg_errors():
            conn = await self._pool.acquire()
        try:
            tx = conn.transaction()
            with pg_errors():
                await tx.start()
            try:
                with pg_errors():
                    row = await conn.fetchrow(
                        f"SELECT {JOBS.select}, last_seq, {BACKLOG} FROM jobs WHERE id = $1"
                        " FOR UPDATE OF jobs",
                        job_id,
                    )
                    offer_rows = (
                        []
                        if row is None
                        else await conn.fetch(
                            f"SELECT {OFFERS.select} FROM offers WHERE job_id = $1 ORDER BY n",
                            job_id,
                        )
                    )
                if row is None:
                    raise NotFound("job", job_id)
                book = JobBook(
                    job=_job(row),
                    offers={r["id"]: _offer(r) for r in offer_rows},
                    backlog=row["backlog"],
                )
                before_job = replace(book.job)
                before_offers = {o.id: replace(o) for o in book.offers.values()}
                token = Q.bind(conn)
                try:
                    yield book
                finally:
                    Q.unbind(token)
                with pg_errors():
                    await self._write(conn, book, before_job, before_offers, row["last_seq"])
            except BaseException:
                await _rollback(tx)
                raise
            with pg_errors():
                await tx.commit()
            book.log = []
        finally:
            await _release(self._pool, conn)

    async def _write(
        self,
        conn: asyncpg.Connection,
        book: JobBook,
        before: Job,
        before_offers: dict[str, Offer],
        last_seq: int,
    ) -> None:
        job = book.job
        if job.id != before.id:
            raise ValueError("a transaction's book must keep its job id")
        changed = [o for o in book.offers.values() if before_offers.get(o.id) != o]
        if job == before and not book.log and not changed and not book.effects:
            return
        cell = latlng_to_cell(job.lat, job.lng, self._resolution)
        args = _write_args(book, cell, last_seq, before.version, changed)
        if await conn.fetchval(_WRITE, *args) != 1:
            raise Unavailable(f"job {job.id} changed outside its transaction; retry")

    async def job_of_offer(self, offer_id: str) -> str | None:
        job_id: str | None = await self._q.fetchval(
            "SELECT job_id FROM offers WHERE id = $1", offer_id
        )
        return job_id

    async def pending_offers_of(self, worker_id: str) -> list[Offer]:
        rows = await self._q.fetch(
            f"SELECT {OFFERS.select} FROM offers WHERE worker_id = $1 AND state = 'pending'"
            " ORDER BY n",
            worker_id,
        )
        return [_offer(r) for r in rows]

    async def active_job_of(self, worker_id: str) -> Job | None:
        row = await self._q.fetchrow(
            f"SELECT {JOBS.select} FROM jobs WHERE worker_id = $1 AND state = ANY($2::text[])"
            " ORDER BY updated_at DESC LIMIT 1",
            worker_id,
            _ACTIVE,
        )
        return None if row is None else _job(row)

    async def due(self, now: float, limit: int) -> list[str]:
        rows = await self._q.fetch(
            "SELECT id FROM jobs WHERE state = 'open' AND wave_deadline <= $1"
            " ORDER BY wave_deadline, id LIMIT $2",
            now,
            limit,
        )
        return [r["id"] for r in rows]

    async def next_deadline(self) -> float | None:
        deadline: float | None = await self._q.fetchval(
            "SELECT min(wave_deadline) FROM jobs WHERE state = 'open' AND wave_deadline IS NOT NULL"
        )
        return deadline

    async def has_open_jobs(self, org_id: str) -> bool:
        found = await self._q.fetchval(
            "SELECT EXISTS (SELECT 1 FROM jobs WHERE org_id = $1 AND state = 'open')", org_id
        )
        return bool(found)

    async def open_jobs_near(
        self, org_id: str, lat: float, lng: float, radius_m: float
    ) -> list[Nearby]:
        validate_latlng(lat, lng)
        if isinstance(radius_m, bool) or math.isnan(radius_m) or radius_m < 0:
            raise InvalidArgument(f"radius must be a number >= 0, got {radius_m!r}")
        lat_lo, lat_hi, (a_lo, a_hi), (b_lo, b_hi) = _bounding_box(lat, lng, radius_m)
        rows = await self._q.fetch(
            "SELECT id, lat, lng FROM jobs WHERE org_id = $1 AND state = 'open'"
            " AND lat BETWEEN $2 AND $3"
            " AND (lng BETWEEN $4 AND $5 OR lng BETWEEN $6 AND $7)",
            org_id,
            lat_lo,
            lat_hi,
            a_lo,
            a_hi,
            b_lo,
            b_hi,
        )
        hits = []
        for r in rows:
            distance = haversine_m(lat, lng, r["lat"], r["lng"])
            if distance <= radius_m:
                hits.append(Nearby(r["id"], distance, r["lat"], r["lng"]))
        hits.sort(key=lambda n: (n.distance_m, n.key))
        return hits


_EMPTY_RANGE = (1.0, 0.0)


def _bounding_box(
    lat: float, lng: float, radius_m: float
) -> tuple[float, float, tuple[float, float], tuple[float, float]]:
    """A lat range and two lng ranges that contain the haversine disk (with margin).

    The exact filter is the haversine distance afterwards; this only has to
    be a superset. The second lng range is used when the disk crosses the
    antimeridian, and is empty otherwise.
    """
    if math.isinf(radius_m):
        return -90.0, 90.0, (-180.0, 180.0), _EMPTY_RANGE
    angle = radius_m / EARTH_RADIUS_M * (1.0 + 1e-9) + 1e-12  # radians, rounded up
    dlat = math.degrees(angle) + 1e-9
    lat_lo, lat_hi = lat - dlat, lat + dlat
    if lat_lo <= -90.0 or lat_hi >= 90.0 or angle >= math.pi / 2:
        return max(lat_lo, -90.0), min(lat_hi, 90.0), (-180.0, 180.0), _EMPTY_RANGE
    ratio = math.sin(angle) / math.cos(math.radians(lat))
    if ratio >= 1.0:
        return lat_lo, lat_hi, (-180.0, 180.0), _EMPTY_RANGE
    dlng = math.degrees(math.asin(ratio)) * (1.0 + 1e-9) + 1e-9
    lng_lo, lng_hi = lng - dlng, lng + dlng
    if dlng >= 180.0:
        return lat_lo, lat_hi, (-180.0, 180.0), _EMPTY_RANGE
    if lng_lo < -180.0:
        return lat_lo, lat_hi, (-180.0, lng_hi), (lng_lo + 360.0, 180.0)
    if lng_hi > 180.0:
        return lat_lo, lat_hi, (lng_lo, 180.0), (-180.0, lng_hi - 360.0)
    return lat_lo, lat_hi, (lng_lo, lng_hi), _EMPTY_RANGE


async def _rollback(tx: Any) -> None:
    """Roll back; if the connection is gone there is nothing left to undo."""
    with contextlib.suppress(Exception):  # the server discards an aborted session's work
        await tx.rollback()


async def _release(pool: asyncpg.Pool, conn: asyncpg.Connection) -> None:
    try:
        await pool.release(conn)
    except Exception:
        conn.terminate()
