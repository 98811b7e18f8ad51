"""The application service: drives the pure core against the store ports.

``DispatchService`` is what the edge (``mobile_api``) calls. Rules for callers:

* Pass ids exactly as authenticated: ``org_id`` from the caller's API key,
  ``worker_id`` from the device token. Every lookup is scoped by them and a
  foreign id answers ``NotFound``.
* Inputs are already well-formed (the edge validates the wire schema); the
  service still enforces domain rules and raises ``DispatchError`` subclasses.
* Call ``run_due`` whenever ``next_deadline`` has passed (the edge runs a
  ticker); waves only escalate and expire through it.
* Call ``sweep_outbox`` every ``OUTBOX_SWEEP_S`` or so on every instance: it
  delivers the effects an instance committed but did not deliver (it died,
  or a backing service failed), once their lease has passed.

Every change to a job goes through one helper, ``_step``: the job's
transaction, an engine step, the wave searches it asks for, the effects of
the outcome written to the outbox in the same transaction (decision 0005),
then — after the commit — their delivery. An answer reports what was
committed: once a transaction has committed, a failure to deliver its
effects is logged and left to the sweeper, never raised to the caller.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from geo import GeoError, validate_latlng

from .config import DispatchConfig
from .credentials import digest, new_secret
from .effects import Effect, EffectKind, effects_of
from .errors import DispatchError, InvalidInput, NotEligible, NotFound, Unavailable
from .eventlog import log_events
from .matching import MatchContext, is_eligible
from .models import (
    Assignment,
    Availability,
    Fix,
    Job,
    JobEvent,
    JobState,
    Offer,
    Organisation,
    Worker,
    WorkerKind,
)
from .notices import assigned_notice
from .offers import Candidate, JobBook, OfferEngine, Outcome, WaveSearch
from .relay import Relay
from .stores.ports import Stores

log = logging.getLogger("fieldcloud.dispatch")

Clock = Callable[[], float]
IdFactory = Callable[[str], str]
Step = Callable[[JobBook, float], Awaitable[Outcome]]
"""An engine step run inside a job transaction: ``(book, now) -> outcome``."""
CommitHook = Callable[[Sequence[Effect]], Awaitable[None]]
"""Called after a job transaction committed, before its effects are delivered."""
Observer = Callable[[Job, Sequence[JobEvent], Mapping[str, Offer]], None]
"""Told each committed job change: the job, its new events and the job's offers."""

OUTBOX_LEASE_S = 5.0
"""How long the committing instance has to deliver an effect before a sweeper may."""

OUTBOX_SWEEP_S = 1.0
"""How often each instance should call ``sweep_outbox``."""

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
        *,
        outbox_lease_s: float = OUTBOX_LEASE_S,
        after_commit: CommitHook | None = None,
    ) -> None:
        """``after_commit`` is a fault point for tests of the crash window (a
        commit whose effects were never delivered); production passes none."""
        self.stores = stores
        self.config = config
        self.clock = clock
        self._ids = ids
        self._lease_s = outbox_lease_s
        self._after_commit = after_commit
        self.relay = Relay(stores, self._perform)
        self.engine = OfferEngine(config, lambda: ids("off"))
        self._reach_checked: dict[str, tuple[int, float]] = {}
        self._open_jobs_seen: dict[str, tuple[float, bool]] = {}
        self.observers: list[Observer] = []
        """Told every committed job change (metrics); each must be quick and never raise."""

    def new_id(self, prefix: str) -> str:
        """A fresh id such as ``req_…`` from the service's id factory."""
        return self._ids(prefix)

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
        """Store a new open job and send its first wave of offers.

        Once the job is stored it is returned, whatever happens next: when the
        first wave cannot be sent now (a backing service is away) the job is
        due, and any instance's ``run_due`` sends it later.
        """
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
        for observe in self.observers:
            observe(job, [created], {})
        self._open_jobs_seen[org_id] = (now, True)
        try:
            # Nobody has been offered the new job, so wave 1's search does not
            # need the job's lock: it runs before the transaction, not inside.
            first = self.engine.first_search(job)
            found = await self._candidates(job, first, frozenset(), now)

            async def begin(book: JobBook, now: float) -> Outcome:
                if book.job.wave != 0:
                    return Outcome()  # a deadline sweep got there first
                return self.engine.begin(book, now)

            book = await self._step(job.id, begin, found=(first, found))
        except Unavailable as exc:
            log.warning("job %s stored; first wave deferred: %s", job.id, exc)
            return job
        return book.job

    async def get_job(self, org_id: str, job_id: str) -> JobView:
        """The organisation's job with its history, or ``NotFound``."""
        job = await self.stores.jobs.get_job(org_id, job_id)
        if job is None:
            raise NotFound("job", job_id)
        return JobView(job, await self.stores.jobs.history(org_id, job_id))

    async def cancel_job(self, org_id: str, job_id: str, reason: str = "") -> Job:
        """Cancel a job that is not finished; offers close, the worker is freed.

        Returns the cancelled job once the cancellation is committed, also when
        the notices and the worker's return to the map are still to come.
        """
        await self.get_job(org_id, job_id)

        async def cancel(book: JobBook, now: float) -> Outcome:
            return self.engine.cancel(book, now, reason)

        return (await self._step(job_id, cancel)).job

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

        An off-duty worker's fix is dropped: not stored, not indexed, not
        matched (the worker is returned as known, without it).

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
        if worker.availability is Availability.OFF_DUTY:
            return worker  # an off-duty position is neither stored nor shared
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
        """Go available, busy or off duty; leaving ``available`` withdraws offers.

        A worker holding a job stays busy until it ends: going available or off
        duty raises ``NotEligible`` naming the job (finish it, or ``release``
        it before arriving); ``busy`` is what they are, and is accepted. The
        check is made again after the write, so an accept committed in between
        is not overwritten (the worker is set back to busy). Going off duty
        deletes the last fix and the index entry before pending offers are
        withdrawn; a later fix of the off-duty worker is not stored.
        """
        worker = await self._worker(worker_id)
        await self._check_free(worker_id, status)
        await self.stores.workers.set_availability(worker_id, status)
        try:
            await self._check_free(worker_id, status)
        except NotEligible:
            await self.stores.workers.set_availability(worker_id, Availability.BUSY)
            raise
        worker.availability = status
        if status is Availability.AVAILABLE:
            await self._back_on_the_map(worker)
        else:
            if status is Availability.OFF_DUTY:
                await self.forget_position(worker.org_id, worker.id)
                worker.fix = None
            await self._off_the_map(worker)

    async def _check_free(self, worker_id: str, status: Availability) -> None:
        """Raise ``NotEligible`` naming the worker's job, if they hold one, unless going busy."""
        if status is Availability.BUSY:
            return
        active = await self.stores.jobs.active_job_of(worker_id)
        if active is not None:
            going = "available" if status is Availability.AVAILABLE else "off duty"
            raise NotEligible(
                f"job {active.id} is yours: finish or release it before going {going}",
                job_id=active.id,
            )

    async def forget_position(self, org_id: str, worker_id: str) -> None:
        """Delete the worker's last fix and index entry; their next fix brings them back.

        For a worker going off duty, and one whose phone has been gone longer
        than the retention setting. ``org_id`` must be the worker's own.
        """
        self._reach_checked.pop(worker_id, None)
        forgotten = self.stores.workers.forget_fix(org_id, worker_id)
        try:  # both writes may share one round trip
            await self.stores.locations.remove(org_id, worker_id)
        finally:
            await forgotten

    async def accept(self, worker_id: str, offer_id: str) -> Assignment:
        """Take an offer. Of concurrent accepts for one job exactly one wins.

        Idempotent: the winner repeating its accept is told ``assigned`` again.
        Raises ``NotFound`` (not this worker's offer), ``OfferClosed`` (taken,
        expired, cancelled, …) or ``NotEligible`` (the worker is not available).
        An accept that won returns its assignment even when the notices cannot
        be delivered yet: the outbox delivers them.
        """
        job_id = await self.stores.jobs.job_of_offer(offer_id)
        if job_id is None:
            raise NotFound("offer", offer_id)
        won: list[Assignment] = []

        async def take(book: JobBook, now: float) -> Outcome:
            again = self.engine.repeated_accept(book, offer_id, worker_id)
            if again is not None:
                won.append(again)
                return Outcome()
            self.engine.check_accept(book, offer_id, worker_id, now)
            if not await self.stores.workers.claim(worker_id):
                raise NotEligible("only an available worker can accept an offer")
            out = self.engine.accept(book, offer_id, worker_id, now)
            assert out.assignment is not None
            return out

        book = await self._step(job_id, take)
        if won:  # the answer again, not a change: nothing was committed
            await self.stores.feed.publish(worker_id, assigned_notice(offer_id, won[0].job_id))
            return won[0]
        accepted = book.offers[offer_id]
        assert accepted.closed_at is not None
        return Assignment(book.job.id, worker_id, offer_id, accepted.closed_at)

    async def decline(self, worker_id: str, offer_id: str) -> None:
        """Say no to an offer; the job is not offered to this worker again."""
        job_id = await self.stores.jobs.job_of_offer(offer_id)
        if job_id is None:
            raise NotFound("offer", offer_id)

        async def decline(book: JobBook, now: float) -> Outcome:
            return self.engine.decline(book, offer_id, worker_id, now)

        await self._step(job_id, decline)

    async def progress(self, worker_id: str, job_id: str, state: JobState) -> Job:
        """The assigned worker reports en_route, on_site or completed.

        Completing makes the worker available again in the same transaction;
        the worker's return to the map (index, open jobs) follows from the outbox.
        """

        async def progress(book: JobBook, now: float) -> Outcome:
            return self.engine.progress(book, worker_id, state, now)

        return (await self._step(job_id, progress)).job

    async def release(self, worker_id: str, job_id: str, reason: str = "") -> Job:
        """The assigned worker hands the job back before arriving on site.

        The job is open again and offered at once from wave 1 to workers never
        offered it (not to the releasing worker); the worker is available again
        in the same transaction, and the release is in the job's history with
        ``reason``. Raises ``NotFound`` (not this worker's job) or
        ``IllegalTransition`` (on site already, or finished). Returns the job as
        committed, with its new wave.
        """

        async def release(book: JobBook, now: float) -> Outcome:
            return self.engine.release(book, worker_id, now, reason)

        book = await self._step(job_id, release)
        self._open_jobs_seen[book.job.org_id] = (self.clock(), True)
        return book.job

    # -- time ------------------------------------------------------------------

    async def next_deadline(self) -> float | None:
        """When ``run_due`` next has work (may be early; never late)."""
        return await self.stores.jobs.next_deadline()

    async def run_due(self, limit: int = 100) -> int:
        """Expire and escalate every wave whose deadline has passed; returns jobs handled."""
        handled = 0
        for job_id in await self.stores.jobs.due(self.clock(), limit):
            await self._step(job_id, self._expire)
            handled += 1
        return handled

    async def _expire(self, book: JobBook, now: float) -> Outcome:
        return self.engine.expire(book, now)

    async def sweep_outbox(self, limit: int = 100) -> int:
        """Deliver effects whose lease has passed; returns how many were claimed.

        Those are effects whose instance died between commit and delivery, or
        failed to deliver them (a backing service was away). Each job's
        effects are delivered whole and in commit order, so a phone never
        hears a later notice of a job before an earlier one. The first
        delivery that fails ends the sweep (the service behind it is away;
        what was claimed waits for its renewed lease); an effect failing for
        another reason does not hold the others up. Raises ``Unavailable``
        when the outbox cannot be read; the next call retries.
        """
        claimed = await self.stores.outbox.claim_due(self.clock(), self._lease_s, limit)
        jobs = dict.fromkeys(e.job_id for e in claimed if e.job_id is not None)
        for job_id in jobs:
            if not await self.relay.deliver(await self.stores.outbox.of_job(job_id)):
                break
        else:
            loose = [e for e in claimed if e.job_id is None]
            if loose:
                await self.relay.deliver(loose)
        await self.relay.flush()
        return len(claimed)

    # -- internals -------------------------------------------------------------

    async def _worker(self, worker_id: str) -> Worker:
        found = await self.stores.workers.get_workers([worker_id])
        worker = found.get(worker_id)
        if worker is None:
            raise NotFound("worker", worker_id)
        return replace(worker)

    async def _step(
        self,
        job_id: str,
        step: Step,
        found: tuple[WaveSearch, list[Candidate]] | None = None,
    ) -> JobBook:
        """Change a job: transaction, engine step, searches, outbox; then deliver.

        Inside the job's transaction: run ``step``, then the wave searches its
        outcome asks for (``found`` answers one of them, searched before the
        lock), make a released worker available again, and queue the
        outcome's effects on the book (the store writes them with the
        change). After the commit, deliver them (never raising; see
        ``Relay.deliver``). Returns the committed book. Errors of the transaction
        itself (``NotFound``, engine errors, ``Unavailable`` up to the commit)
        propagate: then nothing of it was kept.
        """
        now = self.clock()
        async with self.stores.jobs.transaction(job_id) as book:
            out = await step(book, now)
            while out.search is not None:
                search = out.search
                if found is not None and found[0] == search:
                    candidates, found = found[1], None
                else:
                    candidates = await self._candidates(
                        book.job, search, book.offered_workers(), now
                    )
                out.merge(self.engine.open_wave(book, search.wave, candidates, now, search))
            if out.released_worker is not None:
                # Committed with the job where the store can (PostgreSQL).
                await self.stores.workers.set_availability(
                    out.released_worker, Availability.AVAILABLE
                )
            book.effects.extend(
                effects_of(book.job, out, lambda: self._ids("eff"), now, self._lease_s)
            )
        log_events(book.job, out.events)
        for observe in self.observers:
            observe(book.job, out.events, book.offers)
        if book.effects:
            if self._after_commit is not None:
                await self._after_commit(book.effects)
            await self._relay(book)
        return book

    async def _relay(self, book: JobBook) -> None:
        """Deliver a committed transaction's effects, after any the job still owes."""
        effects: Sequence[Effect] = book.effects
        if book.backlog:
            try:
                effects = await self.stores.outbox.of_job(book.job.id)
            except DispatchError as exc:
                log.warning("job %s: outbox not read, left to the sweeper: %s", book.job.id, exc)
                return
        await self.relay.deliver(effects)

    async def _perform(self, effect: Effect) -> None:
        """Perform a ``freed`` or ``taken`` effect if the worker's state still calls for it."""
        found = await self.stores.workers.get_workers([effect.target])
        worker = found.get(effect.target)
        if worker is None:
            return
        worker = replace(worker)
        if effect.kind is EffectKind.FREED:
            if worker.availability is Availability.AVAILABLE:
                await self._back_on_the_map(worker)
        elif effect.kind is EffectKind.TAKEN:
            if worker.availability is not Availability.AVAILABLE:
                await self._off_the_map(worker)
        else:
            raise ValueError(f"unknown effect kind {effect.kind!r}")

    async def _back_on_the_map(self, worker: Worker) -> None:
        """An available worker: index the last fix and offer open jobs in reach."""
        self._reach_checked.pop(worker.id, None)
        fix = worker.fix
        if fix is not None:
            await self.stores.locations.upsert(worker.org_id, worker.id, fix.lat, fix.lng)
            await self._offer_open_jobs(worker, self.clock())

    async def _off_the_map(self, worker: Worker) -> None:
        """A worker no longer available: out of the index, pending offers withdrawn."""
        self._reach_checked.pop(worker.id, None)
        await self.stores.locations.remove(worker.org_id, worker.id)
        for offer in await self.stores.jobs.pending_offers_of(worker.id):

            async def withdraw(book: JobBook, now: float) -> Outcome:
                return self.engine.withdraw(book, worker.id, now)

            await self._step(offer.job_id, withdraw)

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
            candidate = Candidate(worker.id, hit.distance_m)

            async def offer(book: JobBook, now: float, candidate: Candidate = candidate) -> Outcome:
                return self.engine.offer_to(book, candidate, now)

            await self._step(job.id, offer)

    async def _has_open_jobs(self, org_id: str, now: float) -> bool:
        """The store's answer, reused for ``OPEN_JOBS_RECHECK_S``."""
        seen = self._open_jobs_seen.get(org_id)
        if seen is None or not 0 <= now - seen[0] < OPEN_JOBS_RECHECK_S:
            seen = self._open_jobs_seen[org_id] = (
                now,
                await self.stores.jobs.has_open_jobs(org_id),
            )
        return seen[1]


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
