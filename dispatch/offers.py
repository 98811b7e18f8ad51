"""The offer engine: waves of offers with deadlines, first accept wins.

Sans-I/O: every method takes a ``JobBook`` (a job and all of its offers), the
current time and, where needed, candidates that the caller found in the
location index; it changes the book in place and returns an ``Outcome``
listing what the caller must persist and tell people. It never reads a clock,
a socket or a store.

Rules a caller must follow:

* Call the engine only while holding the job exclusively (the store's job
  transaction); the engine's checks and changes are then atomic. Every step
  queues its own events on ``book.log`` (the store appends them when the
  transaction ends); the returned ``Outcome`` lists them too, for reading.
* When an ``Outcome`` carries a ``search``, look up at most ``search.k``
  eligible workers within ``search.radius_m`` (excluding
  ``book.offered_workers()``) and pass them to ``open_wave`` in the same
  transaction. If that fails, the job's ``wave_deadline`` is already due, so
  the next ``expire`` call repeats the search.
* Call ``expire`` whenever ``job.wave_deadline`` has passed.

The waves: wave *n* offers the job to the ``wave_size`` nearest eligible
workers within ``radii_m[n-1]``; every offer of a wave shares its deadline. A
wave that found nobody, or whose offers were all declined or withdrawn,
escalates at once; one that times out closes its offers as ``expired`` and
escalates. After the last wave the job is ``unfilled``. A worker who comes
into reach of an open job while a wave is out joins that wave
(``offer_to``), and the wave waits for that worker's own full timeout.

A dispatcher steps in through three steps that record who did it (``by``,
an ``Actor``) in the event they append: ``assign_to`` gives the job to a
chosen worker at once (the caller has checked, or overridden, the worker's
eligibility and made the worker busy); ``reoffer`` sends a new wave now over
a wider radius, beside the offers still out; ``cancel`` takes a ``by`` too.
Both ``assign_to`` and ``reoffer`` also take an ``unfilled`` job: it is
opened again first (a ``reopened`` event with ``by``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .config import DispatchConfig
from .errors import IllegalTransition, NotFound, OfferClosed
from .lifecycle import ACTIVE_JOB_STATES, advance_job, close_offer
from .models import Actor, Assignment, Job, JobEvent, JobState, Offer, OfferState

if TYPE_CHECKING:
    from .effects import Effect


@dataclass(frozen=True, slots=True)
class Candidate:
    """An eligible worker found by the index, with its distance to the job."""

    worker_id: str
    distance_m: float


@dataclass(frozen=True, slots=True)
class WaveSearch:
    """A request to the caller: find candidates for this wave."""

    job_id: str
    wave: int
    radius_m: float
    k: int
    by: Actor | None = None
    """Who asked for the wave by hand (``reoffer``); None for the engine's own."""


@dataclass(slots=True)
class JobBook:
    """A job and every offer ever made for it (the engine's aggregate)."""

    job: Job
    offers: dict[str, Offer] = field(default_factory=dict)
    log: list[JobEvent] = field(default_factory=list)
    """Events to append when the transaction holding this book ends (the engine's)."""
    effects: list[Effect] = field(default_factory=list)
    """Effects to write to the outbox when the transaction holding this book ends."""
    backlog: bool = False
    """Set by the store: the outbox still holds effects of an earlier transaction
    of this job (their instance died before delivering them, or is delivering
    them right now); deliver those before this transaction's own."""

    def pending(self) -> list[Offer]:
        """Offers still waiting for an answer."""
        return [o for o in self.offers.values() if o.state is OfferState.PENDING]

    def offered_workers(self) -> frozenset[str]:
        """Everyone who has ever been offered this job."""
        return frozenset(o.worker_id for o in self.offers.values())


@dataclass(slots=True)
class Outcome:
    """What one engine step did; the caller persists and announces it."""

    sent: list[Offer] = field(default_factory=list)
    closed: list[Offer] = field(default_factory=list)
    assignment: Assignment | None = None
    released_worker: str | None = None
    events: list[JobEvent] = field(default_factory=list)
    search: WaveSearch | None = None

    def merge(self, other: Outcome) -> Outcome:
        """Append ``other``'s effects to this outcome (its search replaces ours)."""
        self.sent.extend(other.sent)
        self.closed.extend(other.closed)
        self.assignment = other.assignment or self.assignment
        self.released_worker = other.released_worker or self.released_worker
        self.events.extend(other.events)
        self.search = other.search
        return self


BY_HAND = frozenset({JobState.OPEN, JobState.UNFILLED})
"""The job states a dispatcher may assign or re-offer from."""

CLOSE_REASONS: dict[OfferState, str] = {
    OfferState.TAKEN: "taken",
    OfferState.EXPIRED: "expired",
    OfferState.CANCELLED: "cancelled",
    OfferState.WITHDRAWN: "withdrawn",
    OfferState.DECLINED: "declined",
    OfferState.ACCEPTED: "accepted",
}
"""The ``offer_closed`` reason a worker is told for each final offer state."""


def _record(book: JobBook, out: Outcome, now: float, kind: str, **data: Any) -> None:
    """Queue an event of the book's job on the book's log, and list it in ``out``."""
    job = book.job
    event = JobEvent(job_id=job.id, org_id=job.org_id, at=now, kind=kind, data=data)
    book.log.append(event)
    out.events.append(event)


class OfferEngine:
    """Pure offer logic; see the module docstring for the caller's duties."""

    def __init__(self, config: DispatchConfig, new_id: Callable[[], str]) -> None:
        self.config = config
        self._new_id = new_id

    # -- waves ---------------------------------------------------------------

    def first_search(self, job: Job) -> WaveSearch:
        """The search ``begin`` asks for on a new job (so a caller can run it early)."""
        return WaveSearch(job.id, 1, self.config.radius_for(1), self.config.wave_size)

    def begin(self, book: JobBook, now: float) -> Outcome:
        """Start dispatching a freshly created open job: ask for wave 1."""
        job = book.job
        if job.state is not JobState.OPEN or job.wave != 0:
            raise IllegalTransition(f"job {job.id}", job.state.value, "dispatching")
        out = Outcome()
        self._escalate(book, now, out)
        return out

    def open_wave(
        self,
        book: JobBook,
        wave: int,
        candidates: Iterable[Candidate],
        now: float,
        search: WaveSearch | None = None,
    ) -> Outcome:
        """Send wave ``wave`` to ``candidates`` (nearest first; extra ones ignored).

        ``search`` is the search that found them, when the caller has it: its
        radius (a dispatcher's wider one) and ``by`` are the wave's. A wave
        that reaches nobody escalates, unless offers of an earlier wave are
        still out (a re-offer beside them): then the job waits for those.
        """
        job = book.job
        out = Outcome()
        if job.state is not JobState.OPEN or wave != job.wave + 1:
            return out  # a concurrent step already moved the job on
        radius = self.config.radius_for(wave) if search is None else search.radius_m
        job.wave = wave
        job.wave_radius_m = radius
        job.version += 1
        deadline = now + self.config.offer_timeout_s
        offered = book.offered_workers()
        for cand in candidates:
            if len(out.sent) >= self.config.wave_size:
                break
            if cand.worker_id in offered or cand.distance_m > radius:
                continue
            offer = self._make_offer(job, cand, now, deadline)
            book.offers[offer.id] = offer
            offered |= {cand.worker_id}
            out.sent.append(offer)
        by = {} if search is None or search.by is None else {"by": search.by.as_data()}
        _record(
            book,
            out,
            now,
            "wave",
            wave=wave,
            radius_m=radius,
            offered=[o.worker_id for o in out.sent],
            **by,
        )
        still = book.pending()
        if out.sent or still:
            job.wave_deadline = max(o.expires_at for o in still)
        else:
            self._escalate(book, now, out)
        return out

    def offer_to(self, book: JobBook, candidate: Candidate, now: float) -> Outcome:
        """Add a worker who just came into reach to the wave that is out.

        Does nothing unless the job is open with a wave out, the worker was never
        offered it, and the worker is within the wave's radius.
        """
        job = book.job
        out = Outcome()
        if (
            job.state is not JobState.OPEN
            or job.wave == 0
            or job.wave_deadline is None
            or job.wave_deadline <= now
            or candidate.distance_m > job.wave_radius_m
            or candidate.worker_id in book.offered_workers()
        ):
            return out
        expires = now + self.config.offer_timeout_s
        offer = self._make_offer(job, candidate, now, expires)
        book.offers[offer.id] = offer
        job.wave_deadline = max(job.wave_deadline, expires)
        job.version += 1
        out.sent.append(offer)
        _record(book, out, now, "offered", wave=job.wave, worker_id=candidate.worker_id, late=True)
        return out

    def expire(self, book: JobBook, now: float) -> Outcome:
        """Process a due deadline: expire lapsed offers, then escalate or finish."""
        job = book.job
        out = Outcome()
        if job.state is not JobState.OPEN or job.wave_deadline is None:
            return out
        self._close_lapsed(book, now, out)
        if now < job.wave_deadline:
            return out
        still = book.pending()
        if still:
            job.wave_deadline = max(o.expires_at for o in still)
            job.version += 1
        else:
            self._escalate(book, now, out)
        return out

    # -- answers from workers -------------------------------------------------

    def accept(self, book: JobBook, offer_id: str, worker_id: str, now: float) -> Outcome:
        """The worker takes the offer: the job is assigned, every other offer closes.

        Raises ``NotFound`` if the offer is not this worker's, and ``OfferClosed``
        (with the reason the worker would have been told) if it is no longer
        open — including an accept that arrives after its deadline but before
        the deadline was processed. The book is unchanged when it raises.
        """
        job = book.job
        offer = self.check_accept(book, offer_id, worker_id, now)
        advance_job(job, JobState.ASSIGNED, now)
        job.worker_id = worker_id
        job.wave_deadline = None
        close_offer(offer, OfferState.ACCEPTED, now)
        out = Outcome(assignment=Assignment(job.id, worker_id, offer_id, now))
        for other in book.pending():
            close_offer(other, OfferState.TAKEN, now)
            out.closed.append(other)
        _record(book, out, now, "assigned", worker_id=worker_id, offer_id=offer_id, wave=offer.wave)
        return out

    def repeated_accept(self, book: JobBook, offer_id: str, worker_id: str) -> Assignment | None:
        """The assignment an accept already won, if this is that accept again.

        Phones on bad networks resend an accept whose answer they never saw;
        answering it again, rather than with an error, makes accept idempotent.
        None when the offer was not accepted by ``worker_id`` or the job has
        moved on without them.
        """
        offer = self._own_offer(book, offer_id, worker_id)
        job = book.job
        if (
            offer.state is OfferState.ACCEPTED
            and job.worker_id == worker_id
            and job.state in ACTIVE_JOB_STATES
        ):
            return Assignment(job.id, worker_id, offer_id, offer.closed_at or job.updated_at)
        return None

    def check_accept(self, book: JobBook, offer_id: str, worker_id: str, now: float) -> Offer:
        """Raise what ``accept`` would raise, without changing anything."""
        offer = self._own_offer(book, offer_id, worker_id)
        if offer.state is not OfferState.PENDING:
            raise OfferClosed(offer_id, CLOSE_REASONS[offer.state])
        if book.job.state is not JobState.OPEN:
            raise OfferClosed(offer_id, self._closed_reason(book.job))
        if now >= offer.expires_at:
            raise OfferClosed(offer_id, "expired")
        return offer

    def decline(self, book: JobBook, offer_id: str, worker_id: str, now: float) -> Outcome:
        """The worker says no; if nobody in the wave is left waiting, escalate."""
        job = book.job
        offer = self._own_offer(book, offer_id, worker_id)
        if offer.state is not OfferState.PENDING:
            raise OfferClosed(offer_id, CLOSE_REASONS[offer.state])
        close_offer(offer, OfferState.DECLINED, now)
        out = Outcome()
        _record(book, out, now, "declined", worker_id=worker_id, offer_id=offer_id)
        self._close_lapsed(book, now, out)
        if job.state is JobState.OPEN and not book.pending():
            self._escalate(book, now, out)
        return out

    def withdraw(self, book: JobBook, worker_id: str, now: float) -> Outcome:
        """Close ``worker_id``'s pending offers (they went busy or off duty)."""
        job = book.job
        out = Outcome()
        mine = [o for o in book.pending() if o.worker_id == worker_id]
        for offer in mine:
            close_offer(offer, OfferState.WITHDRAWN, now)
            out.closed.append(offer)
        if mine:
            _record(book, out, now, "withdrawn", worker_id=worker_id)
            self._close_lapsed(book, now, out)
            if job.state is JobState.OPEN and not book.pending():
                self._escalate(book, now, out)
        return out

    def progress(self, book: JobBook, worker_id: str, target: JobState, now: float) -> Outcome:
        """The assigned worker reports en_route, on_site or completed."""
        job = book.job
        if job.worker_id != worker_id:
            raise NotFound("job", job.id)
        if target not in (JobState.EN_ROUTE, JobState.ON_SITE, JobState.COMPLETED):
            raise IllegalTransition(f"job {job.id}", job.state.value, target.value)
        advance_job(job, target, now)
        out = Outcome()
        _record(book, out, now, target.value, worker_id=worker_id)
        if target is JobState.COMPLETED:
            out.released_worker = worker_id
        return out

    def release(self, book: JobBook, worker_id: str, now: float, reason: str = "") -> Outcome:
        """The assigned worker hands the job back before arriving: it is open again.

        Only while the job is ``assigned`` or ``en_route`` (``IllegalTransition``
        once on site or finished; ``NotFound`` when it is not ``worker_id``'s).
        The worker is released (available again), a ``released`` event records
        the reason, and the waves start over from wave 1 at once: the outcome
        asks for its search. Nobody offered the job before — the releasing
        worker included — is offered it again.
        """
        job = book.job
        if job.worker_id != worker_id:
            raise NotFound("job", job.id)
        was = job.state
        advance_job(job, JobState.OPEN, now)
        job.worker_id = None
        job.wave = 0
        job.wave_radius_m = 0.0
        out = Outcome(released_worker=worker_id)
        _record(book, out, now, "released", worker_id=worker_id, reason=reason, was=was.value)
        self._escalate(book, now, out)
        return out

    def cancel(
        self, book: JobBook, now: float, reason: str = "", by: Actor | None = None
    ) -> Outcome:
        """Cancel the job: pending offers close as ``cancelled``, the worker is freed."""
        job = book.job
        advance_job(job, JobState.CANCELLED, now)
        job.wave_deadline = None
        out = Outcome()
        for offer in book.pending():
            close_offer(offer, OfferState.CANCELLED, now)
            out.closed.append(offer)
        out.released_worker = job.worker_id
        extra = {} if by is None else {"by": by.as_data()}
        _record(book, out, now, "cancelled", reason=reason, **extra)
        return out

    # -- a dispatcher steps in ---------------------------------------------------

    def assign_to(
        self,
        book: JobBook,
        candidate: Candidate,
        now: float,
        by: Actor,
        overridden: str | None = None,
    ) -> Outcome:
        """Give the open job to ``candidate`` now; every other pending offer closes as taken.

        The caller has made the worker busy (claimed, or set busy on an
        override) in the same transaction. The worker's pending offer of this
        job, if any, is the one accepted; otherwise a direct offer (wave 0 of
        no wave: ``wave`` is the job's current one) is made and accepted at
        once, so the phone's ``assigned`` names an offer like any other.
        ``overridden`` is the matching reason the dispatcher overrode; the
        ``assigned`` event records it with ``by``. Raises
        ``IllegalTransition`` unless the job is open or unfilled (the book
        unchanged).
        """
        job = book.job
        if job.state not in BY_HAND:
            raise IllegalTransition(f"job {job.id}", job.state.value, JobState.ASSIGNED.value)
        out = Outcome()
        self._reopen(book, now, out, by)
        mine = [o for o in book.pending() if o.worker_id == candidate.worker_id]
        if mine:
            offer = mine[0]
        else:
            offer = self._make_offer(job, candidate, now, now)
            book.offers[offer.id] = offer
        advance_job(job, JobState.ASSIGNED, now)
        job.worker_id = candidate.worker_id
        job.wave_deadline = None
        close_offer(offer, OfferState.ACCEPTED, now)
        out.assignment = Assignment(job.id, candidate.worker_id, offer.id, now)
        for other in book.pending():
            close_offer(other, OfferState.TAKEN, now)
            out.closed.append(other)
        override = {} if overridden is None else {"override": overridden}
        _record(
            book,
            out,
            now,
            "assigned",
            worker_id=candidate.worker_id,
            offer_id=offer.id,
            wave=offer.wave,
            direct=True,
            by=by.as_data(),
            **override,
        )
        return out

    def reoffer(self, book: JobBook, now: float, radius_m: float, by: Actor) -> Outcome:
        """Ask for a new wave now over ``radius_m``, beside the offers still out.

        The wave numbers on from the job's; after the last wave of the ladder
        a re-offered job that times out is ``unfilled`` as usual. Raises
        ``IllegalTransition`` unless the job is open or unfilled.
        """
        job = book.job
        if job.state not in BY_HAND:
            raise IllegalTransition(f"job {job.id}", job.state.value, "re-offered")
        out = Outcome()
        self._reopen(book, now, out, by)
        out.search = WaveSearch(job.id, job.wave + 1, radius_m, self.config.wave_size, by)
        return out

    @staticmethod
    def _reopen(book: JobBook, now: float, out: Outcome, by: Actor) -> None:
        """Open an unfilled job again (for a dispatcher's step); an open job is left as is."""
        job = book.job
        if job.state is JobState.UNFILLED:
            advance_job(job, JobState.OPEN, now)
            _record(book, out, now, "reopened", by=by.as_data())

    def next_radius(self, job: Job) -> float:
        """The radius a re-offer reaches by default: the ladder's next rung past the job's."""
        wider = [r for r in self.config.radii_m if r > job.wave_radius_m]
        return wider[0] if wider else self.config.max_radius_m

    # -- helpers --------------------------------------------------------------

    @staticmethod
    def _close_lapsed(book: JobBook, now: float, out: Outcome) -> None:
        """Close pending offers whose own deadline has passed (they cannot be accepted)."""
        job = book.job
        lapsed = [o for o in book.pending() if o.expires_at <= now]
        for offer in lapsed:
            close_offer(offer, OfferState.EXPIRED, now)
            out.closed.append(offer)
        if lapsed:
            _record(book, out, now, "expired", wave=job.wave, workers=[o.worker_id for o in lapsed])

    def _escalate(self, book: JobBook, now: float, out: Outcome) -> None:
        job = book.job
        if job.wave < self.config.max_waves:
            nxt = job.wave + 1
            job.wave_deadline = now  # due at once: a failed search is retried by expire
            job.version += 1
            out.search = WaveSearch(job.id, nxt, self.config.radius_for(nxt), self.config.wave_size)
        else:
            advance_job(job, JobState.UNFILLED, now)
            job.wave_deadline = None
            out.search = None
            _record(book, out, now, "unfilled", waves=job.wave)

    def _make_offer(self, job: Job, cand: Candidate, now: float, expires: float) -> Offer:
        return Offer(
            id=self._new_id(),
            org_id=job.org_id,
            job_id=job.id,
            worker_id=cand.worker_id,
            wave=job.wave,
            distance_m=cand.distance_m,
            sent_at=now,
            expires_at=expires,
        )

    @staticmethod
    def _own_offer(book: JobBook, offer_id: str, worker_id: str) -> Offer:
        offer = book.offers.get(offer_id)
        if offer is None or offer.worker_id != worker_id:
            raise NotFound("offer", offer_id)
        return offer

    @staticmethod
    def _closed_reason(job: Job) -> str:
        if job.state is JobState.CANCELLED:
            return "cancelled"
        if job.state is JobState.UNFILLED:
            return "expired"
        return "taken"
