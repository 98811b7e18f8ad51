"""In-process backend: every port in plain dicts, for one process.

Single-instance only: nothing persists across restarts and nothing is shared
between processes. Atomicity comes from the event loop: no method awaits
between its check and its write, and ``transaction`` holds a per-job
``asyncio.Lock`` and works on copies that replace the stored records only when
the block exits normally; then the book's effects go into the ``MemoryOutbox``.
Writes made through the other stores inside a transaction block take effect
at once and are not undone if the block fails (the service makes such a
write — a released worker's availability — the last step of a block).

Records handed out by ``get_*`` are copies, except ``get_workers``, whose
workers are the live records for the matcher's hot path: treat them as
read-only.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections import OrderedDict, defaultdict, deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace

from geo import CellIndex

from ..effects import Effect
from ..errors import NotFound
from ..lifecycle import ACTIVE_JOB_STATES
from ..models import (
    Availability,
    Fix,
    Job,
    JobEvent,
    JobState,
    Offer,
    OfferState,
    Organisation,
    Worker,
)
from ..offers import JobBook
from .open311_memory import MemoryOpen311Store
from .ports import LoggedNotice, Nearby, Notice, Stores


class MemoryOrgStore:
    """Organisations by id and by API-key hash."""

    def __init__(self) -> None:
        self._orgs: dict[str, Organisation] = {}
        self._by_key: dict[str, str] = {}

    async def add_org(self, org: Organisation, key_hash: str) -> None:
        self._orgs[org.id] = org
        self._by_key[key_hash] = org.id

    async def org_by_key(self, key_hash: str) -> Organisation | None:
        org_id = self._by_key.get(key_hash)
        return None if org_id is None else self._orgs.get(org_id)

    async def get_org(self, org_id: str) -> Organisation | None:
        return self._orgs.get(org_id)


class MemoryWorkerStore:
    """Workers by id and by device-token hash."""

    def __init__(self) -> None:
        self._workers: dict[str, Worker] = {}
        self._by_token: dict[str, str] = {}

    async def add_worker(self, worker: Worker, token_hash: str) -> None:
        self._workers[worker.id] = replace(worker)
        self._by_token[token_hash] = worker.id

    async def worker_by_token(self, token_hash: str) -> Worker | None:
        worker_id = self._by_token.get(token_hash)
        return None if worker_id is None else replace(self._workers[worker_id])

    async def get_worker(self, org_id: str, worker_id: str) -> Worker | None:
        worker = self._workers.get(worker_id)
        if worker is None or worker.org_id != org_id:
            return None
        return replace(worker)

    async def get_workers(self, worker_ids: Sequence[str]) -> dict[str, Worker]:
        found = self._workers
        return {w: found[w] for w in worker_ids if w in found}

    async def set_fix(self, org_id: str, worker_id: str, fix: Fix) -> None:
        worker = self._workers.get(worker_id)
        if worker is not None and worker.org_id == org_id:
            worker.fix = fix

    async def forget_fix(self, org_id: str, worker_id: str) -> None:
        worker = self._workers.get(worker_id)
        if worker is not None and worker.org_id == org_id:
            worker.fix = None

    async def set_availability(self, worker_id: str, availability: Availability) -> None:
        worker = self._workers.get(worker_id)
        if worker is not None:
            worker.availability = availability

    async def claim(self, worker_id: str) -> bool:
        worker = self._workers.get(worker_id)
        if worker is None or worker.availability is not Availability.AVAILABLE:
            return False
        worker.availability = Availability.BUSY
        return True


class MemoryOutbox:
    """Undelivered effects in commit order; written by ``MemoryJobStore.transaction``."""

    def __init__(self) -> None:
        self._effects: OrderedDict[str, Effect] = OrderedDict()
        self._of_job: dict[str, int] = defaultdict(int)

    def add(self, effects: Sequence[Effect]) -> None:
        """Keep ``effects`` (a transaction's, at its commit)."""
        for effect in effects:
            self._effects[effect.id] = effect
            if effect.job_id is not None:
                self._of_job[effect.job_id] += 1

    def has_job(self, job_id: str) -> bool:
        """Whether effects of ``job_id`` are still waiting."""
        return self._of_job.get(job_id, 0) > 0

    async def delivered(self, effect_ids: Sequence[str]) -> None:
        for effect_id in effect_ids:
            effect = self._effects.pop(effect_id, None)
            if effect is not None and effect.job_id is not None:
                left = self._of_job[effect.job_id] = self._of_job[effect.job_id] - 1
                if left <= 0:
                    del self._of_job[effect.job_id]

    async def of_job(self, job_id: str) -> list[Effect]:
        if not self.has_job(job_id):
            return []
        return [e for e in self._effects.values() if e.job_id == job_id]

    async def claim_due(self, now: float, lease_s: float, limit: int) -> list[Effect]:
        order = {effect_id: n for n, effect_id in enumerate(self._effects)}
        lapsed = [e for e in self._effects.values() if e.due_at <= now]
        lapsed.sort(key=lambda e: (e.due_at, order[e.id]))
        claimed = sorted(lapsed[:limit], key=lambda e: order[e.id])
        renewed = [replace(e, due_at=now + lease_s) for e in claimed]
        for effect in renewed:
            self._effects[effect.id] = effect
        return renewed

    async def backlog(self) -> tuple[int, float | None]:
        oldest = min((e.created_at for e in self._effects.values()), default=None)
        return len(self._effects), oldest


class MemoryJobStore:
    """Jobs, offers, events, deadlines and an H3 index of open jobs."""

    def __init__(self, resolution: int, outbox: MemoryOutbox | None = None) -> None:
        self._resolution = resolution
        self._outbox = MemoryOutbox() if outbox is None else outbox
        self._jobs: dict[str, Job] = {}
        self._offers: dict[str, Offer] = {}
        self._offers_of_job: dict[str, list[str]] = defaultdict(list)
        self._pending_of_worker: dict[str, set[str]] = defaultdict(set)
        self._events: dict[str, list[JobEvent]] = defaultdict(list)
        self._locks: dict[str, asyncio.Lock] = {}
        self._deadlines: list[tuple[float, str]] = []
        self._open: dict[str, CellIndex[str]] = {}
        self._active_of_worker: dict[str, str] = {}

    async def add_job(self, job: Job, event: JobEvent) -> None:
        self._jobs[job.id] = replace(job)
        self._append(job.id, [event])
        if job.wave_deadline is not None:
            heapq.heappush(self._deadlines, (job.wave_deadline, job.id))
        self._index(job)

    async def get_job(self, org_id: str, job_id: str) -> Job | None:
        job = self._jobs.get(job_id)
        if job is None or job.org_id != org_id:
            return None
        return replace(job)

    async def get_jobs(self, org_id: str, job_ids: Sequence[str]) -> dict[str, Job]:
        return {
            i: replace(job)
            for i in job_ids
            if (job := self._jobs.get(i)) is not None and job.org_id == org_id
        }

    async def history(self, org_id: str, job_id: str) -> list[JobEvent]:
        job = self._jobs.get(job_id)
        if job is None or job.org_id != org_id:
            return []
        return list(self._events[job_id])

    @asynccontextmanager
    async def transaction(self, job_id: str) -> AsyncIterator[JobBook]:
        if job_id not in self._jobs:
            raise NotFound("job", job_id)
        lock = self._locks.setdefault(job_id, asyncio.Lock())
        async with lock:
            book = JobBook(
                job=replace(self._jobs[job_id]),
                offers={o: replace(self._offers[o]) for o in self._offers_of_job[job_id]},
                backlog=self._outbox.has_job(job_id),
            )
            yield book
            self._commit(book)

    def _commit(self, book: JobBook) -> None:
        job = book.job
        before = self._jobs[job.id].worker_id
        if before is not None and before != job.worker_id and self._active_job(before) == job.id:
            del self._active_of_worker[before]  # released: no longer theirs
        self._jobs[job.id] = job
        for offer in book.offers.values():
            if offer.id not in self._offers:
                self._offers_of_job[job.id].append(offer.id)
            self._offers[offer.id] = offer
            pending = self._pending_of_worker[offer.worker_id]
            if offer.state is OfferState.PENDING:
                pending.add(offer.id)
            else:
                pending.discard(offer.id)
                if not pending:
                    del self._pending_of_worker[offer.worker_id]
        self._append(job.id, book.log)
        book.log = []
        self._outbox.add(book.effects)
        if job.worker_id is not None:
            if job.state in ACTIVE_JOB_STATES:
                self._active_of_worker[job.worker_id] = job.id
            elif self._active_of_worker.get(job.worker_id) == job.id:
                del self._active_of_worker[job.worker_id]
        if job.state is JobState.OPEN and job.wave_deadline is not None:
            heapq.heappush(self._deadlines, (job.wave_deadline, job.id))
        self._index(job)

    def _append(self, job_id: str, events: Sequence[JobEvent]) -> None:
        log = self._events[job_id]
        for event in events:
            log.append(replace(event, seq=len(log) + 1))

    def _index(self, job: Job) -> None:
        index = self._open.get(job.org_id)
        if job.state is JobState.OPEN:
            if index is None:
                index = self._open[job.org_id] = CellIndex(self._resolution)
            index.upsert(job.id, job.lat, job.lng)
        elif index is not None:
            index.remove(job.id)

    async def job_of_offer(self, offer_id: str) -> str | None:
        offer = self._offers.get(offer_id)
        return None if offer is None else offer.job_id

    async def pending_offers_of(self, worker_id: str) -> list[Offer]:
        ids = self._pending_of_worker.get(worker_id, ())
        return [replace(self._offers[o]) for o in ids]

    def _active_job(self, worker_id: str) -> str | None:
        return self._active_of_worker.get(worker_id)

    async def active_job_of(self, worker_id: str) -> Job | None:
        job_id = self._active_of_worker.get(worker_id)
        return None if job_id is None else replace(self._jobs[job_id])

    async def due(self, now: float, limit: int) -> list[str]:
        found: list[str] = []
        heap = self._deadlines
        while heap and heap[0][0] <= now and len(found) < limit:
            _, job_id = heapq.heappop(heap)
            job = self._jobs.get(job_id)
            if (
                job is not None
                and job.state is JobState.OPEN
                and job.wave_deadline is not None
                and job.wave_deadline <= now
                and job_id not in found
            ):
                found.append(job_id)
        return found

    async def next_deadline(self) -> float | None:
        return self._deadlines[0][0] if self._deadlines else None

    async def has_open_jobs(self, org_id: str) -> bool:
        index = self._open.get(org_id)
        return index is not None and len(index) > 0

    async def open_jobs_near(
        self, org_id: str, lat: float, lng: float, radius_m: float
    ) -> list[Nearby]:
        index = self._open.get(org_id)
        if index is None:
            return []
        return [Nearby(n.key, n.distance_m, n.lat, n.lng) for n in index.within(lat, lng, radius_m)]


class MemoryLocationIndex:
    """One ``geo.CellIndex`` of worker positions per organisation."""

    def __init__(self, resolution: int) -> None:
        self._resolution = resolution
        self._by_org: dict[str, CellIndex[str]] = {}

    async def upsert(self, org_id: str, worker_id: str, lat: float, lng: float) -> int:
        index = self._by_org.get(org_id)
        if index is None:
            index = self._by_org[org_id] = CellIndex(self._resolution)
        return index.upsert(worker_id, lat, lng)

    async def remove(self, org_id: str, worker_id: str) -> None:
        index = self._by_org.get(org_id)
        if index is not None:
            index.remove(worker_id)

    async def nearest(
        self,
        org_id: str,
        lat: float,
        lng: float,
        k: int,
        max_radius_m: float,
    ) -> list[Nearby]:
        index = self._by_org.get(org_id)
        if index is None:
            return []
        hits = index.nearest(lat, lng, k, max_radius_m)
        return [Nearby(n.key, n.distance_m, n.lat, n.lng) for n in hits]


def clock_seq() -> int:
    """The first sequence number of a new log: the clock in microseconds."""
    return time.time_ns() // 1000


class MemoryWorkerFeed:
    """A capped deque of notices per worker, plus in-process listeners.

    Keys of the last ``log_size`` keyed notices per worker are remembered
    (``publish`` de-duplicates by them).
    """

    def __init__(self, log_size: int = 256, first_seq: Callable[[], int] = clock_seq) -> None:
        self._log_size = log_size
        self._first_seq = first_seq
        self._logs: dict[str, deque[LoggedNotice]] = {}
        self._keys: dict[str, OrderedDict[str, int]] = {}
        self._seq: dict[str, int] = {}
        self._listeners: dict[str, list[Callable[[LoggedNotice], None]]] = defaultdict(list)

    async def publish(self, worker_id: str, notice: Notice, key: str | None = None) -> int:
        applied = None
        if key is not None:
            applied = self._keys.get(worker_id)
            if applied is None:
                applied = self._keys[worker_id] = OrderedDict()
            earlier = applied.get(key)
            if earlier is not None:
                return earlier
        seq = self._seq[worker_id] = self._seq.get(worker_id, self._first_seq() - 1) + 1
        if key is not None and applied is not None:
            applied[key] = seq
            if len(applied) > self._log_size:
                applied.popitem(last=False)
        entry = LoggedNotice(seq, notice)
        log = self._logs.get(worker_id)
        if log is None:
            log = self._logs[worker_id] = deque(maxlen=self._log_size)
        log.append(entry)
        for callback in list(self._listeners.get(worker_id, ())):
            callback(entry)
        return entry.seq

    async def replay(self, worker_id: str, after_seq: int) -> list[LoggedNotice]:
        return [e for e in self._logs.get(worker_id, ()) if e.seq > after_seq]

    def listen(
        self, worker_id: str, callback: Callable[[LoggedNotice], None]
    ) -> Callable[[], None]:
        self._listeners[worker_id].append(callback)

        def stop() -> None:
            callbacks = self._listeners.get(worker_id)
            if callbacks and callback in callbacks:
                callbacks.remove(callback)
                if not callbacks:
                    del self._listeners[worker_id]

        return stop


def memory_stores(resolution: int, log_size: int = 256) -> Stores:
    """A fresh, empty in-process backend."""
    from .memory_console import MemoryDispatcherStore, MemoryListings

    outbox = MemoryOutbox()
    workers = MemoryWorkerStore()
    jobs = MemoryJobStore(resolution, outbox)
    return Stores(
        orgs=MemoryOrgStore(),
        workers=workers,
        jobs=jobs,
        locations=MemoryLocationIndex(resolution),
        feed=MemoryWorkerFeed(log_size),
        outbox=outbox,
        dispatchers=MemoryDispatcherStore(),
        lists=MemoryListings(workers, jobs),
        open311=MemoryOpen311Store(),
    )


class MemoryPresence:
    """Which socket holds which worker, with a time to live, for one process.

    The same rules as ``redis.presence.RedisPresence`` (the newest claim wins;
    ``refresh`` and ``release`` act only for the current holder; an expired
    claim is gone, and ``refresh`` takes it back), on the ``clock`` given
    (monotonic seconds). Expired claims are dropped when next looked at.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._holders: dict[str, str] = {}
        self._expires: dict[str, float] = {}

    def _held(self, worker_id: str, now: float) -> str | None:
        holder = self._holders.get(worker_id)
        if holder is not None and self._expires[worker_id] <= now:
            del self._holders[worker_id], self._expires[worker_id]
            return None
        return holder

    def _take(self, worker_id: str, instance_id: str, until: float) -> None:
        self._holders[worker_id] = instance_id
        self._expires[worker_id] = until

    async def claim(self, worker_id: str, instance_id: str, ttl_s: float) -> str | None:
        return (await self.claim_many([(worker_id, instance_id)], ttl_s))[0]

    async def refresh(self, worker_id: str, instance_id: str, ttl_s: float) -> bool:
        return (await self.refresh_many([(worker_id, instance_id)], ttl_s))[0]

    async def claim_many(self, claims: Sequence[tuple[str, str]], ttl_s: float) -> list[str | None]:
        now = self._clock()
        until = now + _ttl(ttl_s)
        previous: list[str | None] = []
        for worker_id, instance_id in claims:
            previous.append(self._held(worker_id, now))
            self._take(worker_id, instance_id, until)
        return previous

    async def refresh_many(self, claims: Sequence[tuple[str, str]], ttl_s: float) -> list[bool]:
        now = self._clock()
        until = now + _ttl(ttl_s)
        held: list[bool] = []
        for worker_id, instance_id in claims:
            holder = self._held(worker_id, now)
            mine = holder is None or holder == instance_id
            if mine:
                self._take(worker_id, instance_id, until)
            held.append(mine)
        return held

    async def release(self, worker_id: str, instance_id: str) -> bool:
        if self._held(worker_id, self._clock()) != instance_id:
            return False
        del self._holders[worker_id], self._expires[worker_id]
        return True

    async def holder(self, worker_id: str) -> str | None:
        """The holder of the worker's claim, or None."""
        return self._held(worker_id, self._clock())


def _ttl(ttl_s: float) -> float:
    if not ttl_s > 0:
        raise ValueError("a presence TTL must be positive")
    return ttl_s
