"""In-process dispatchers and lists: the memory backend's ``DispatcherStore`` and ``Listings``.

``MemoryListings`` reads the memory backend's own records (the worker and job
stores it is built with), so what it lists is what the service changed, at
once. A page scans the organisation's records: linear in the
organisation's size (the ``limit + 1`` smallest ids of the matches), which
suits the single process this backend serves. Like ``get_workers``, a
worker page holds the live records: treat them as read-only.
"""

from __future__ import annotations

import heapq
from dataclasses import replace

from ..listing import JobQuery, ListedJob, Page, WorkerQuery, matches_job, matches_worker, page_of
from ..models import Dispatcher, Offer, OfferState, Worker
from .memory import MemoryJobStore, MemoryWorkerStore

__all__ = ["MemoryDispatcherStore", "MemoryListings"]


class MemoryDispatcherStore:
    """Dispatchers by id and by token hash."""

    def __init__(self) -> None:
        self._dispatchers: dict[str, Dispatcher] = {}
        self._by_token: dict[str, str] = {}

    async def add_dispatcher(self, dispatcher: Dispatcher, token_hash: str) -> None:
        self._dispatchers[dispatcher.id] = dispatcher
        self._by_token[token_hash] = dispatcher.id

    async def dispatcher_by_token(self, token_hash: str) -> Dispatcher | None:
        found = self._dispatchers.get(self._by_token.get(token_hash, ""))
        return None if found is None or found.revoked_at is not None else found

    async def dispatchers(self, org_id: str) -> list[Dispatcher]:
        mine = [d for d in self._dispatchers.values() if d.org_id == org_id]
        return sorted(mine, key=lambda d: (d.created_at, d.id))

    async def revoke(self, org_id: str, dispatcher_id: str, at: float) -> Dispatcher | None:
        found = self._dispatchers.get(dispatcher_id)
        if found is None or found.org_id != org_id:
            return None
        if found.revoked_at is None:
            found = self._dispatchers[dispatcher_id] = replace(found, revoked_at=at)
        return found


class MemoryListings:
    """Lists over a memory backend's worker and job stores."""

    def __init__(self, workers: MemoryWorkerStore, jobs: MemoryJobStore) -> None:
        self._workers = workers
        self._jobs = jobs

    async def workers(self, org_id: str, query: WorkerQuery) -> Page[Worker]:
        after = query.after or ""
        found = heapq.nsmallest(
            query.limit + 1,
            (
                w
                for w in self._workers._workers.values()
                if w.org_id == org_id and w.id > after and matches_worker(w, query)
            ),
            key=lambda w: w.id,
        )
        return page_of(found, [w.id for w in found], query.limit)

    async def jobs(self, org_id: str, query: JobQuery) -> Page[ListedJob]:
        after = query.after or ""
        found = heapq.nsmallest(
            query.limit + 1,
            (
                j
                for j in self._jobs._jobs.values()
                if j.org_id == org_id and j.id > after and matches_job(j, query)
            ),
            key=lambda j: j.id,
        )
        listed = [
            ListedJob(
                replace(j),
                [o for o in self._offers(j.id) if o.state is OfferState.PENDING],
            )
            for j in found
        ]
        return page_of(listed, [j.id for j in found], query.limit)

    async def offers_of(self, org_id: str, job_id: str) -> list[Offer]:
        job = self._jobs._jobs.get(job_id)
        return [] if job is None or job.org_id != org_id else self._offers(job_id)

    def _offers(self, job_id: str) -> list[Offer]:
        offers = self._jobs._offers
        return [replace(offers[o]) for o in self._jobs._offers_of_job.get(job_id, ())]
