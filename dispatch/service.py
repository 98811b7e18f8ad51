"""The application service: drives the pure core against the store ports.

``DispatchService`` is what the edge (``mobile_api``) calls. Rules for callers:

* Pass ids exactly as authenticated: ``org_id`` from the caller's API key,
  ``worker_id`` from the device token. Every lookup is scoped by them and a
  foreign id answers ``NotFound``.
* Inputs are already well-formed (the edge validates the wire schema); the
  service still enforces domain rules and raises ``DispatchError`` subclasses.
* Call ``run_due`` whenever ``next_deadline`` has passed (the edge runs a
  ticker); waves only escalate and expire through it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from geo import GeoError, validate_latlng

from .config import DispatchConfig
from .credentials import digest, new_secret
from .errors import InvalidInput, NotEligible, NotFound, Unavailable
from .eventlog import log_events
from .matching import MatchContext, is_eligible
from .models import (
    Assignment,
    Availability,
    Fix,
    Job,
    JobEvent,
    JobState,
    Organisation,
    Worker,
    WorkerKind,
)
from .notices import assigned_notice, job_cancelled_notice, offer_closed_notice, offer_notice
from .offers import CLOSE_REASONS, Candidate, JobBook, OfferEngine, Outcome, WaveSearch
from .stores.ports import Notice, Stores

log = logging.getLogger("fieldcloud.dispatch")

Clock = Callable[[], float]
IdFactory = Callable[[str], str]

REACH_RECHECK_S = 5.0
"""A worker staying inside one H3 cell is matched against open jobs this often."""

OPEN_JOBS_RECHECK_S = 1.0
"""How long an answer to "does the organisation have open jobs?" is reused.

A fix is matched against open jobs only when the organisation has some; the
answer is asked of the store at most this often per organisation (a job
posted through this process counts at once, one posted through another
instance reaches late joiners here up to this much later).
"""

MAX_FIX_SKEW_S = 30.0
"""A fix stamped further than this in the future is refused (phone clock wrong)."""


def uuid_ids(prefix: str) -> str:
    """Default id factory: ``job_`` + 32 hex digits, and so on."""
    return f"{prefix}_{uuid.uuid4().hex}"


@dataclass(frozen=True, slots=True)
class JobView:
    """A job as its organisation sees it: the record and its history."""

    job: Job
    history: list[JobEvent]


class DispatchService:
    """Everything the edge can ask of dispatch; see the module docstring."""

    def __init__(
        self,
        stores: Stores,
        config: DispatchConfig,
        clock: Clock,
        ids: IdFactory = uuid_ids,
    ) -> None:
        self.stores = stores
        self.config = config
        self.clock = clock
        self._ids = ids
        self.engine = OfferEngine(config, lambda: ids("off"))
        self._reach_checked: dict[str, tuple[int, float]] = {}
        self._open_jobs_seen: dict[str, tuple[float, bool]] = {}

    # -- organisations and workers ---------------------------------------------

    async def create_org(self, name: str) -> tuple[Organisation, str]:
        """A new organisation and its API key (returned once, stored hashed)."""
        org = Organisation(id=self._ids("org"), name=name, created_at=self.clock())
        key = new_secret("fck")
        await self.stores.orgs.add_org(org, digest(key))
        return org, key

    async def org_for_key(self, api_key: str) -> Organisation | None:
        """The organisation owning ``api_key``, if any."""
        return await self.stores.orgs.org_by_key(digest(api_key))

    async def create_worker(
        self, org_id: str, name: str, kind: WorkerKind, skills: Iterable[str]
    ) -> tuple[Worker, str]:
        """A new (off-duty) worker and its device token (returned once)."""
        worker = Worker(
            id=self._ids("wrk"),
            org_id=org_id,
            name=name,
            kind=kind,
            skills=_skills(skills),
            created_at=self.clock(),
        )
        token = new_secret("fcw")
        await self.stores.workers.add_worker(worker, digest(token))
        return worker, token

    async def worker_for_token(self, token: str) -> Worker | None:
        """The worker owning device ``token``, if any."""
        return await self.stores.workers.worker_by_token(digest(token))

    async def get_worker(self, org_id: str, worker_id: str) -> Worker:
        """The organisation's worker, or ``NotFound``."""
        worker = await self.stores.workers.get_worker(org_id, worker_id)
        if worker is None:
            raise NotFound("worker", worker_id)
        return worker

    # -- jobs ------------------------------------------------------------------

    async def post_job(
        self,
        org_id: str,
        title: str,
        lat: float,
        lng: float,
        skills: Iterable[str] = (),
        priority: int = 0,
        description: str = "",
        external_ref: str | None = None,
    ) -> Job:
        """Store a new open job and send its first wave of offers."""
        _check_position(lat, lng)
        now = self.clock()
        job = Job(
            id=self._ids("job"),
            org_id=org_id,
            title=title,
            lat=lat,
            lng=lng,
            skills=_skills(skills),
            priority=priority,
            state=JobState.OPEN,
            created_at=now,
            updated_at=now,
            description=description,
            external_ref=external_ref,
            wave_deadline=now,  # due at once: if the first wave fails, the ticker retries it
        )
        created = JobEvent(
            job.id, org_id, now, "created", {"lat": lat, "lng": lng, "skills": sorted(job.skills)}
        )
        await self.stores.jobs.add_job(job, created)
        log_events(job, [created])
        self._open_jobs_seen[org_id] = (now, True)
        try:
            async with self.stores.jobs.transaction(job.id) as book:
                if book.job.wave != 0:
                    return book.job  # a deadline sweep got there first
                out = await self._settle(book, self.engine.begin(book, now), now)
                job = book.job
        except Unavailable:
            # The job is stored and due: any instance's ticker sends wave 1 once
            # the location index answers again. The caller still gets its job.
            log.warning("job %s stored; first wave deferred (backend unavailable)", job.id)
            return job
        await self._announce(job, out)
        return job

    async def get_job(self, org_id: str, job_id: str) -> JobView:
        """The organisation's job with its history, or ``NotFound``."""
        job = await self.stores.jobs.get_job(org_id, job_id)
        if job is None:
            raise NotFound("job", job_id)
        return JobView(job, await self.stores.jobs.history(org_id, job_id))

    async def cancel_job(self, org_id: str, job_id: str, reason: str = "") -> Job:
        """Cancel a job that is not finished; offers close, the worker is freed."""
        await self.get_job(org_id, job_id)
        now = self.clock()
        async with self.stores.jobs.transaction(job_id) as book:
            assigned = book.job.worker_id
            out = book.record(self.engine.cancel(book, now, reason))
            job = book.job
        if assigned is not None:
            # Before the release: the phone must hear it is free before new offers come.
            await self.stores.feed.publish(assigned, job_cancelled_notice(job_id, reason))
        await self._announce(job, out)
        return job

    # -- what phones say -------------------------------------------------------

    async def report_location(
        self,
        worker_id: str,
        lat: float,
        lng: float,
        accuracy_m: float | None = None,
        at: float | None = None,
        known: Worker | None = None,
    ) -> Worker:
        """Record a fix; an available worker is indexed and offered open jobs in reach.

        ``known`` is the caller's recent snapshot of the worker (a socket keeps
        one); passing it saves a store read per fix, and its ``fix`` is updated
        in place. Returns the worker as now known, with the new fix. Open jobs
        are looked for when the worker enters another H3 cell, and at least
        every ``REACH_RECHECK_S`` within one; when that lookup finds a store
        unavailable the fix still counts (it is stored) and the lookup is
        retried with the next fix. ``Unavailable`` is raised when the worker
        could not be read (no ``known``) or the fix or index move not stored.
        """
        _check_position(lat, lng)
        now = self.clock()
        if at is None or at > now:
            if at is not None and at - now > MAX_FIX_SKEW_S:
                raise InvalidInput("ts lies in the future; check the device clock")
            at = now
        if accuracy_m is not None and (not math.isfinite(accuracy_m) or accuracy_m < 0):
            raise InvalidInput("accuracy_m must be a non-negative number")
        worker = known if known is not None else await self._worker(worker_id)
        fix = Fix(lat, lng, accuracy_m, at)
        stored = self.stores.workers.set_fix(worker.org_id, worker_id, fix)
        worker.fix = fix
        if worker.availability is not Availability.AVAILABLE:
            await stored
        else:
            try:  # the fix and the index move may share one round trip
                cell = await self.stores.locations.upsert(worker.org_id, worker_id, lat, lng)
            finally:
                await stored
            fresh = now - at <= self.config.fix_max_age_s
            if fresh and self._reach_due(worker_id, cell, now):
                try:
                    await self._offer_open_jobs(worker, now)
                except Unavailable as exc:
                    # The fix is stored; the lookup is retried with the next fix,
                    # and open jobs also reach the worker through their waves.
                    self._reach_checked.pop(worker_id, None)
                    log.warning("open jobs near worker %s not looked up: %s", worker_id, exc)
        return worker

    def _reach_due(self, worker_id: str, cell: int, now: float) -> bool:
        """Whether to look for open jobs in reach of a fix in ``cell`` (see ``report_location``)."""
        last = self._reach_checked.get(worker_id)
        if last is not None and last[0] == cell and now - last[1] < REACH_RECHECK_S:
            return False
        self._reach_checked[worker_id] = (cell, now)
        return True

    async def set_status(self, worker_id: str, status: Availability) -> None:
        """Go available, busy or off duty; leaving ``available`` withdraws offers."""
        worker = await self._worker(worker_id)
        if status is Availability.AVAILABLE:
            active = await self.stores.jobs.active_job_of(worker_id)
            if active is not None:
                raise NotEligible(f"finish job {active.id} before going available")
        await self.stores.workers.set_availability(worker_id, status)
        worker.availability = status
        self._reach_checked.pop(worker_id, None)
        if status is Availability.AVAILABLE:
            if worker.fix is not None:
                fix = worker.fix
                await self.stores.locations.upsert(worker.org_id, worker_id, fix.lat, fix.lng)
                await self._offer_open_jobs(worker, self.clock())
        else:
            await self.stores.locations.remove(worker.org_id, worker_id)
            await self._withdraw_offers(worker_id)

    async def accept(self, worker_id: str, offer_id: str) -> Assignment:
        """Take an offer. Of concurrent accepts for one job exactly one wins.

        Idempotent: the winner repeating its accept is told ``assigned`` again.
        Raises ``NotFound`` (not this worker's offer), ``OfferClosed`` (taken,
        expired, cancelled, …) or ``NotEligible`` (the worker is not available).
        """
        job_id = await self.stores.jobs.job_of_offer(offer_id)
        if job_id is None:
            raise NotFound("offer", offer_id)
        now = self.clock()
        async with self.stores.jobs.transaction(job_id) as book:
            again = self.engine.repeated_accept(book, offer_id, worker_id)
            if again is None:
                self.engine.check_accept(book, offer_id, worker_id, now)
                if not await self.stores.workers.claim(worker_id):
                    raise NotEligible("only an available worker can accept an offer")
                out = book.record(self.engine.accept(book, offer_id, worker_id, now))
            job = book.job
        if again is not None:
            await self.stores.feed.publish(worker_id, assigned_notice(offer_id, again.job_id))
            return again
        await self.stores.locations.remove(job.org_id, worker_id)
        await self._announce(job, out)
        await self._withdraw_offers(worker_id)
        assert out.assignment is not None
        return out.assignment

    async def decline(self, worker_id: str, offer_id: str) -> None:
        """Say no to an offer; the job is not offered to this worker again."""
        job_id = await self.stores.jobs.job_of_offer(offer_id)
        if job_id is None:
            raise NotFound("offer", offer_id)
        now = self.clock()
        async with self.stores.jobs.transaction(job_id) as book:
            out = book.record(self.engine.decline(book, offer_id, worker_id, now))
            out = await self._settle(book, out, now)
            job = book.job
        await self._announce(job, out)

    async def progress(self, worker_id: str, job_id: str, state: JobState) -> Job:
        """The assigned worker reports en_route, on_site or completed."""
        now = self.clock()
        try:
            tx = self.stores.jobs.transaction(job_id)
            async with tx as book:
                out = book.record(self.engine.progress(book, worker_id, state, now))
                job = book.job
        except NotFound:
            raise NotFound("job", job_id) from None
        await self._announce(job, out)
        return job

    # -- time ------------------------------------------------------------------

    async def next_deadline(self) -> float | None:
        """When ``run_due`` next has work (may be early; never late)."""
        return await self.stores.jobs.next_deadline()

    async def run_due(self, limit: int = 100) -> int:
        """Expire and escalate every wave whose deadline has passed; returns jobs handled."""
        now = self.clock()
        handled = 0
        for job_id in await self.stores.jobs.due(now, limit):
            async with self.stores.jobs.transaction(job_id) as book:
                out = await self._settle(book, book.record(self.engine.expire(book, now)), now)
                job = book.job
            await self._announce(job, out)
            handled += 1
        return handled

    # -- internals -------------------------------------------------------------

    async def _worker(self, worker_id: str) -> Worker:
        found = await self.stores.workers.get_workers([worker_id])
        worker = found.get(worker_id)
        if worker is None:
            raise NotFound("worker", worker_id)
        return replace(worker)

    async def _settle(self, book: JobBook, out: Outcome, now: float) -> Outcome:
        """Run the searches an outcome asks for until the job waits on a deadline."""
        while out.search is not None:
            search = out.search
            candidates = await self._candidates(book.job, search, book.offered_workers(), now)
            out.merge(book.record(self.engine.open_wave(book, search.wave, candidates, now)))
        return out

    async def _candidates(
        self, job: Job, search: WaveSearch, offered: frozenset[str], now: float
    ) -> list[Candidate]:
        """The ``search.k`` nearest eligible workers, fetched in growing batches."""
        ctx = MatchContext(now, self.config.fix_max_age_s, offered)
        fetch = search.k + len(offered)
        while True:
            hits = await self.stores.locations.nearest(
                job.org_id, job.lat, job.lng, fetch, search.radius_m
            )
            workers = await self.stores.workers.get_workers([h.key for h in hits])
            found = [
                Candidate(h.key, h.distance_m)
                for h in hits
                if h.key in workers and is_eligible(workers[h.key], job, ctx)
            ]
            if len(found) >= search.k or len(hits) < fetch:
                return found[: search.k]
            fetch *= 4

    async def _offer_open_jobs(self, worker: Worker, now: float) -> None:
        """Offer ``worker`` the open jobs whose current wave reaches them."""
        fix = worker.fix
        if fix is None or not await self._has_open_jobs(worker.org_id, now):
            return
        near = await self.stores.jobs.open_jobs_near(
            worker.org_id, fix.lat, fix.lng, self.config.max_radius_m
        )
        for hit in near:
            job = await self.stores.jobs.get_job(worker.org_id, hit.key)
            if job is None or job.wave_radius_m < hit.distance_m:
                continue
            ctx = MatchContext(now, self.config.fix_max_age_s)
            if not is_eligible(worker, job, ctx):
                continue
            async with self.stores.jobs.transaction(job.id) as book:
                out = book.record(
                    self.engine.offer_to(book, Candidate(worker.id, hit.distance_m), now)
                )
                job = book.job
            await self._announce(job, out)

    async def _has_open_jobs(self, org_id: str, now: float) -> bool:
        """The store's answer, reused for ``OPEN_JOBS_RECHECK_S``."""
        seen = self._open_jobs_seen.get(org_id)
        if seen is None or not 0 <= now - seen[0] < OPEN_JOBS_RECHECK_S:
            seen = self._open_jobs_seen[org_id] = (
                now,
                await self.stores.jobs.has_open_jobs(org_id),
            )
        return seen[1]

    async def _withdraw_offers(self, worker_id: str) -> None:
        """Close every pending offer of a worker who is no longer available."""
        now = self.clock()
        for offer in await self.stores.jobs.pending_offers_of(worker_id):
            async with self.stores.jobs.transaction(offer.job_id) as book:
                out = book.record(self.engine.withdraw(book, worker_id, now))
                out = await self._settle(book, out, now)
                job = book.job
            await self._announce(job, out)

    async def _announce(self, job: Job, out: Outcome) -> None:
        """Tell the phones what an outcome did, after it was persisted."""
        log_events(job, out.events)
        notices: dict[str, list[Notice]] = {}
        for offer in out.sent:
            notices.setdefault(offer.worker_id, []).append(offer_notice(offer, job))
        for offer in out.closed:
            reason = CLOSE_REASONS[offer.state]
            notices.setdefault(offer.worker_id, []).append(
                offer_closed_notice(offer.id, job.id, reason)
            )
        if out.assignment is not None:
            a = out.assignment
            notices.setdefault(a.worker_id, []).append(assigned_notice(a.offer_id, a.job_id))
        await self._publish(notices)
        if out.released_worker is not None:
            await self._release(out.released_worker)

    async def _publish(self, notices: dict[str, list[Notice]]) -> None:
        """Publish each worker's notices in order, the workers concurrently.

        A wave's offers go to different workers; with a shared backend each
        publish is a round trip, so they overlap instead of queueing.
        """
        feed = self.stores.feed

        async def in_order(worker_id: str, items: list[Notice]) -> None:
            for notice in items:
                await feed.publish(worker_id, notice)

        if len(notices) == 1:
            ((worker_id, items),) = notices.items()
            await in_order(worker_id, items)
        elif notices:
            await asyncio.gather(*(in_order(w, items) for w, items in notices.items()))

    async def _release(self, worker_id: str) -> None:
        """A worker whose job ended is available again and may get new offers."""
        await self.set_status(worker_id, Availability.AVAILABLE)


def _check_position(lat: float, lng: float) -> None:
    if -90.0 <= lat <= 90.0 and -180.0 <= lng <= 180.0:
        return  # the common case; NaN fails these comparisons and is checked below
    try:
        validate_latlng(lat, lng)
    except GeoError as exc:
        raise InvalidInput(str(exc)) from None


def _skills(skills: Iterable[str]) -> frozenset[str]:
    """Normalise skill names: trimmed, lower-case, non-empty."""
    cleaned = frozenset(s.strip().lower() for s in skills)
    if "" in cleaned:
        raise InvalidInput("skill names must not be empty")
    return cleaned
