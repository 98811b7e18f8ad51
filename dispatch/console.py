"""The dispatcher's console: dispatchers, lists, candidates and the hand-made job changes.

``Console`` is the service's second face, for a control room rather than a
phone or an integration: it is built on a ``DispatchService`` and changes
jobs only through the service's job step (the job's transaction, an engine
step, the outbox, then delivery), so a dispatcher's change reaches phones at
least once like every other. The decisions are the engine's
(``OfferEngine.assign_to``, ``reoffer``, ``cancel``) and the matching
rules' (``matching.explain``); this module only gathers what they need.

Rules for callers:

* Pass ``org_id`` as authenticated (the dispatcher's or key's organisation)
  and ``by``, the ``Actor`` who asks; every change records ``by`` in the
  job's event log. Another organisation's ids answer ``NotFound``.
* ``assign`` refuses a worker the matching rules leave out with
  ``NotEligible`` whose ``reason`` is the rule's ``Exclusion`` value, unless
  ``override`` is set: then the worker is assigned anyway, made busy, and
  the ``assigned`` event records ``override`` (the reason overridden) with
  ``by``. An assignment closes every other pending offer as ``taken``.
* ``reoffer`` sends a new wave now; ``assign`` and ``reoffer`` take an open
  job, or an unfilled one, which they open again.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from geo import EARTH_RADIUS_M, haversine_m

from .credentials import DISPATCHER_TOKEN, digest, new_secret
from .errors import IllegalTransition, NotEligible, NotFound
from .listing import BBox, JobQuery, ListedJob, Page, WorkerQuery
from .matching import Exclusion, MatchContext, explain, explain_at
from .models import (
    Actor,
    Availability,
    Dispatcher,
    Job,
    JobState,
    Offer,
    OfferState,
    Worker,
)
from .offers import BY_HAND, Candidate, JobBook, Outcome
from .service import DispatchService, JobView

__all__ = ["Console", "JobDetail", "Ranked"]

log = logging.getLogger("fieldcloud.dispatch")

CANDIDATE_PAGE = 20_000
"""Workers read per page while gathering a job's candidates (one page, mostly)."""


@dataclass(frozen=True, slots=True)
class JobDetail:
    """A job with its history and every offer made for it."""

    view: JobView
    offers: list[Offer]


@dataclass(frozen=True, slots=True)
class Ranked:
    """A nearby worker as a candidate: distance, rank among the eligible, or the reason out."""

    worker: Worker
    distance_m: float
    rank: int | None
    reason: Exclusion | None


class Console:
    """What a dispatcher (or the organisation's key) may ask; see the module docstring."""

    def __init__(self, service: DispatchService) -> None:
        self.service = service
        self.stores = service.stores

    # -- dispatchers -----------------------------------------------------------

    async def create_dispatcher(self, org_id: str, name: str) -> tuple[Dispatcher, str]:
        """A new dispatcher and their token (returned once, stored hashed)."""
        service = self.service
        dispatcher = Dispatcher(service._ids("dsp"), org_id, name, service.clock())
        token = new_secret(DISPATCHER_TOKEN)
        await self.stores.dispatchers.add_dispatcher(dispatcher, digest(token))
        return dispatcher, token

    async def dispatcher_for_token(self, token: str) -> Dispatcher | None:
        """The dispatcher owning ``token``, unless it was revoked."""
        return await self.stores.dispatchers.dispatcher_by_token(digest(token))

    async def dispatchers(self, org_id: str) -> list[Dispatcher]:
        """The organisation's dispatchers, revoked ones too."""
        return await self.stores.dispatchers.dispatchers(org_id)

    async def revoke_dispatcher(self, org_id: str, dispatcher_id: str) -> Dispatcher:
        """Revoke a dispatcher's token for good; ``NotFound`` if not the organisation's."""
        found = await self.stores.dispatchers.revoke(org_id, dispatcher_id, self.service.clock())
        if found is None:
            raise NotFound("dispatcher", dispatcher_id)
        return found

    # -- lists -----------------------------------------------------------------

    async def workers(self, org_id: str, query: WorkerQuery) -> Page[Worker]:
        """A page of the organisation's workers (``dispatch.listing``)."""
        return await self.stores.lists.workers(org_id, query)

    async def jobs(self, org_id: str, query: JobQuery) -> Page[ListedJob]:
        """A page of the organisation's jobs with their pending offers."""
        return await self.stores.lists.jobs(org_id, query)

    async def job(self, org_id: str, job_id: str) -> JobDetail:
        """The job, its history and all its offers; ``NotFound`` if foreign."""
        view = await self.service.get_job(org_id, job_id)
        return JobDetail(view, await self.stores.lists.offers_of(org_id, job_id))

    async def candidates(
        self, org_id: str, job_id: str, radius_m: float | None = None, limit: int = 50
    ) -> list[Ranked]:
        """The organisation's workers located within ``radius_m`` of the job, nearest first.

        ``radius_m`` defaults to what a re-offer would reach. Eligible workers
        within the radius the job's wave reaches now (wave 1's before the
        first) are ranked 1, 2, … by distance; everyone else carries the
        first reason the matching rules give, ``out_of_radius`` for an
        eligible worker beyond the wave.
        """
        job = (await self.service.get_job(org_id, job_id)).job
        engine = self.service.engine
        area = engine.next_radius(job) if radius_m is None else radius_m
        reach = job.wave_radius_m or self.service.config.radius_for(1)
        offers = await self.stores.lists.offers_of(org_id, job_id)
        ctx = self._context(offers)
        found: list[tuple[float, str, Worker]] = []
        after: str | None = None
        while True:
            page = await self.stores.lists.workers(
                org_id, WorkerQuery(CANDIDATE_PAGE, after, bbox=_around(job, area))
            )
            for worker in page.items:
                fix = worker.fix
                if fix is None:  # not kept by a bounding box; for the type checker
                    continue
                distance = haversine_m(job.lat, job.lng, fix.lat, fix.lng)
                if distance <= area:
                    found.append((distance, worker.id, worker))
            if page.last is None:
                break
            after = page.last
        found.sort(key=lambda f: (f[0], f[1]))
        ranked: list[Ranked] = []
        rank = 0
        for distance, _, worker in found:
            reason = explain_at(worker, job, ctx, distance, reach)
            if reason is None:
                rank += 1
            ranked.append(Ranked(worker, distance, rank if reason is None else None, reason))
        return ranked[:limit]

    # -- changes ---------------------------------------------------------------

    async def assign(
        self, org_id: str, job_id: str, worker_id: str, by: Actor, *, override: bool = False
    ) -> Job:
        """Give the job to ``worker_id`` now (see the module docstring for the rules)."""
        await self.service.get_job(org_id, job_id)
        await self.service.get_worker(org_id, worker_id)
        stores = self.stores
        service = self.service

        async def assign(book: JobBook, now: float) -> Outcome:
            job = book.job
            if job.state not in BY_HAND:
                raise IllegalTransition(f"job {job.id}", job.state.value, JobState.ASSIGNED.value)
            worker = (await stores.workers.get_workers([worker_id]))[worker_id]
            # Of earlier offers only a decline speaks against a dispatcher's choice.
            declined = [o for o in book.offers.values() if o.state is OfferState.DECLINED]
            reason = explain(worker, job, self._context(declined, now))
            if reason is not None and not override:
                raise NotEligible(_refusal(worker, reason), reason=reason.value)
            if override:
                await stores.workers.set_availability(worker_id, Availability.BUSY)
            elif not await stores.workers.claim(worker_id):
                raise NotEligible(_refusal(worker, Exclusion.BUSY), reason=Exclusion.BUSY.value)
            fix = worker.fix
            distance = 0.0 if fix is None else haversine_m(job.lat, job.lng, fix.lat, fix.lng)
            overridden = None if reason is None else reason.value
            return service.engine.assign_to(
                book, Candidate(worker_id, distance), now, by, overridden
            )

        return (await service._step(job_id, assign)).job

    async def reoffer(
        self, org_id: str, job_id: str, by: Actor, radius_m: float | None = None
    ) -> Job:
        """Send the open job a new wave now, over ``radius_m`` (default: the next rung)."""
        await self.service.get_job(org_id, job_id)
        engine = self.service.engine

        async def reoffer(book: JobBook, now: float) -> Outcome:
            radius = engine.next_radius(book.job) if radius_m is None else radius_m
            return engine.reoffer(book, now, radius, by)

        return (await self.service._step(job_id, reoffer)).job

    async def cancel(self, org_id: str, job_id: str, by: Actor, reason: str = "") -> Job:
        """Cancel the job, recording who did it; offers close and the worker is freed."""
        await self.service.get_job(org_id, job_id)
        engine = self.service.engine

        async def cancel(book: JobBook, now: float) -> Outcome:
            return engine.cancel(book, now, reason, by)

        return (await self.service._step(job_id, cancel)).job

    async def set_worker_status(
        self, org_id: str, worker_id: str, status: Availability, by: Actor
    ) -> Worker:
        """Set the organisation's worker available, busy or off duty, as the phone would.

        Leaving ``available`` withdraws the worker's pending offers (their
        jobs' logs record it); going available with a job still active is
        ``NotEligible``.
        """
        await self.service.get_worker(org_id, worker_id)
        await self.service.set_status(worker_id, status)
        log.info("worker %s set %s by %s %s", worker_id, status.value, by.role, by.id)
        return replace(await self.service.get_worker(org_id, worker_id))

    # -- helpers ---------------------------------------------------------------

    def _context(self, offers: Sequence[Offer], now: float | None = None) -> MatchContext:
        """The matching context of a job whose offers so far are ``offers``."""
        return MatchContext(
            self.service.clock() if now is None else now,
            self.service.config.fix_max_age_s,
            frozenset(o.worker_id for o in offers),
            frozenset(o.worker_id for o in offers if o.state is OfferState.DECLINED),
        )


def _refusal(worker: Worker, reason: Exclusion) -> str:
    """The message of a refused direct assignment."""
    return f"worker {worker.id} is not eligible ({reason.value}); send override to assign anyway"


def _around(job: Job, radius_m: float) -> BBox:
    """A bounding box containing the disk of ``radius_m`` around the job (a superset)."""
    dlat = math.degrees(radius_m / EARTH_RADIUS_M) * 1.001
    south, north = max(job.lat - dlat, -90.0), min(job.lat + dlat, 90.0)
    widest = max(abs(south), abs(north))
    if widest >= 89.9 or dlat >= 90.0:
        return (-180.0, south, 180.0, north)
    dlng = dlat / math.cos(math.radians(widest))
    if dlng >= 180.0:
        return (-180.0, south, 180.0, north)
    west, east = job.lng - dlng, job.lng + dlng
    west = west + 360.0 if west < -180.0 else west
    east = east - 360.0 if east > 180.0 else east
    return (west, south, east, north)
