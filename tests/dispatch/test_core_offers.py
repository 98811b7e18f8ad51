"""The offer engine with a pinned clock: waves, deadlines, first accept wins."""

from __future__ import annotations

import copy
import itertools

import pytest

from dispatch.config import DispatchConfig
from dispatch.errors import IllegalTransition, NotFound, OfferClosed
from dispatch.models import Assignment, Job, JobState, OfferState
from dispatch.offers import Candidate, JobBook, OfferEngine, Outcome, WaveSearch

NOW = 1000.0
TIMEOUT = 30.0
DEADLINE = NOW + TIMEOUT
RADII = (1_000.0, 5_000.0, 15_000.0)
CONFIG = DispatchConfig(wave_size=2, offer_timeout_s=TIMEOUT, radii_m=RADII, fix_max_age_s=300.0)


def make_engine(config: DispatchConfig = CONFIG) -> OfferEngine:
    counter = itertools.count(1)
    return OfferEngine(config, lambda: f"offer-{next(counter)}")


def make_book() -> JobBook:
    job = Job(
        id="job-1",
        org_id="org-1",
        title="Burst main",
        lat=52.52,
        lng=13.40,
        skills=frozenset({"plumbing"}),
        priority=1,
        state=JobState.OPEN,
        created_at=NOW,
        updated_at=NOW,
    )
    return JobBook(job=job)


def cand(worker_id: str, distance_m: float = 100.0) -> Candidate:
    return Candidate(worker_id=worker_id, distance_m=distance_m)


def kinds(out: Outcome) -> list[str]:
    return [e.kind for e in out.events]


def dispatched(
    *candidates: Candidate, config: DispatchConfig = CONFIG
) -> tuple[OfferEngine, JobBook]:
    """An engine and a book with wave 1 sent to ``candidates`` at NOW."""
    engine = make_engine(config)
    book = make_book()
    engine.begin(book, NOW)
    engine.open_wave(book, 1, candidates, NOW)
    return engine, book


def offer_of(book: JobBook, worker_id: str) -> str:
    (offer_id,) = [o.id for o in book.offers.values() if o.worker_id == worker_id]
    return offer_id


def offer_of_pending(book: JobBook, worker_id: str) -> str:
    (offer_id,) = [
        o.id
        for o in book.offers.values()
        if o.worker_id == worker_id and o.state is OfferState.PENDING
    ]
    return offer_id


def assigned(worker_id: str = "w-1") -> tuple[OfferEngine, JobBook]:
    """An engine and a book whose job ``worker_id`` accepted at NOW + 5."""
    engine, book = dispatched(cand("w-1"), cand("w-2"))
    engine.accept(book, offer_of(book, worker_id), worker_id, NOW + 5)
    return engine, book


# -- the book's log -------------------------------------------------------------


def test_every_step_queues_its_own_events_on_the_book() -> None:
    """The engine records each step's events on ``book.log``, as its outcomes list them."""
    engine = make_engine()
    book = make_book()
    outcomes = [engine.begin(book, NOW)]
    outcomes.append(engine.open_wave(book, 1, [cand("w-1"), cand("w-2")], NOW))
    outcomes.append(engine.decline(book, offer_of(book, "w-2"), "w-2", NOW + 1))
    outcomes.append(engine.accept(book, offer_of(book, "w-1"), "w-1", NOW + 2))
    outcomes.append(engine.progress(book, "w-1", JobState.EN_ROUTE, NOW + 3))
    assert book.log == [e for out in outcomes for e in out.events]
    assert [e.kind for e in book.log] == ["wave", "declined", "assigned", "en_route"]


def test_a_refused_step_queues_nothing() -> None:
    """A step that raises leaves the book's log as it was."""
    engine, book = assigned()
    before = list(book.log)
    with pytest.raises(OfferClosed):
        engine.accept(book, offer_of(book, "w-2"), "w-2", NOW + 6)
    assert book.log == before


# -- begin -------------------------------------------------------------------


def test_begin_asks_for_wave_one_with_first_radius_and_wave_size() -> None:
    """begin() sends nothing and asks for wave 1 within radii_m[0], k=wave_size."""
    engine, book = make_engine(), make_book()
    out = engine.begin(book, NOW)
    assert out.search == WaveSearch(job_id="job-1", wave=1, radius_m=1_000.0, k=2)
    assert out.sent == []
    assert out.closed == []
    assert book.job.wave == 0
    assert book.job.wave_deadline == NOW  # due at once, so a failed search is retried


def test_begin_refuses_a_job_already_dispatching() -> None:
    """begin() on a job that already has a wave out raises IllegalTransition."""
    engine, book = dispatched(cand("w-1"))
    with pytest.raises(IllegalTransition) as info:
        engine.begin(book, NOW + 1)
    assert info.value.current == "open"


def test_begin_refuses_a_job_that_is_not_open() -> None:
    """begin() on a cancelled job raises IllegalTransition naming its state."""
    engine, book = make_engine(), make_book()
    book.job.state = JobState.CANCELLED
    with pytest.raises(IllegalTransition) as info:
        engine.begin(book, NOW)
    assert info.value.current == "cancelled"


# -- open_wave ---------------------------------------------------------------


def test_open_wave_sends_at_most_wave_size_nearest_offers() -> None:
    """A wave offers the job to the first wave_size candidates, all sharing one deadline."""
    engine, book = make_engine(), make_book()
    engine.begin(book, NOW)
    out = engine.open_wave(book, 1, [cand("w-1", 50), cand("w-2", 70), cand("w-3", 90)], NOW)
    assert [o.worker_id for o in out.sent] == ["w-1", "w-2"]
    assert [o.id for o in out.sent] == ["offer-1", "offer-2"]
    for offer in out.sent:
        assert offer.state is OfferState.PENDING
        assert offer.wave == 1
        assert offer.sent_at == NOW
        assert offer.expires_at == NOW + TIMEOUT
        assert offer.job_id == "job-1"
        assert offer.org_id == "org-1"
        assert book.offers[offer.id] is offer
    assert out.sent[0].distance_m == 50
    job = book.job
    assert (job.wave, job.wave_radius_m, job.wave_deadline) == (1, 1_000.0, DEADLINE)
    assert out.search is None
    assert kinds(out) == ["wave"]
    assert dict(out.events[0].data) == {"wave": 1, "radius_m": 1_000.0, "offered": ["w-1", "w-2"]}


def test_open_wave_skips_already_offered_and_out_of_radius_candidates() -> None:
    """Wave 2 skips earlier invitees, duplicates and anyone beyond its radius."""
    engine, book = dispatched(cand("w-1"))
    out = engine.expire(book, DEADLINE)
    assert out.search is not None
    assert out.search.radius_m == 5_000.0
    candidates = [
        cand("w-1", 200),  # offered in wave 1
        cand("w-far", 5_001),  # outside wave 2's radius
        cand("w-2", 3_000),
        cand("w-2", 3_000),  # duplicate
        cand("w-3", 5_000),  # exactly on the radius counts
        cand("w-4", 4_000),  # beyond wave_size
    ]
    out = engine.open_wave(book, 2, candidates, DEADLINE)
    assert [o.worker_id for o in out.sent] == ["w-2", "w-3"]
    assert all(o.wave == 2 and o.expires_at == DEADLINE + TIMEOUT for o in out.sent)
    assert book.job.wave_deadline == DEADLINE + TIMEOUT
    assert book.job.wave_radius_m == 5_000.0


def test_empty_wave_escalates_at_once() -> None:
    """A wave that finds nobody asks for the next, wider wave immediately."""
    engine, book = make_engine(), make_book()
    engine.begin(book, NOW)
    out = engine.open_wave(book, 1, [], NOW)
    assert out.sent == []
    assert out.search == WaveSearch(job_id="job-1", wave=2, radius_m=5_000.0, k=2)
    assert kinds(out) == ["wave"]
    assert book.job.wave == 1
    assert book.job.wave_deadline == NOW
    assert book.job.state is JobState.OPEN


def test_wave_with_only_out_of_radius_candidates_escalates() -> None:
    """A wave whose candidates are all beyond its radius counts as empty."""
    engine, book = make_engine(), make_book()
    engine.begin(book, NOW)
    out = engine.open_wave(book, 1, [cand("w-1", 1_000.5)], NOW)
    assert out.sent == []
    assert out.search is not None
    assert out.search.wave == 2


def test_empty_last_wave_makes_job_unfilled() -> None:
    """When every wave comes back empty the job ends unfilled."""
    engine, book = make_engine(), make_book()
    out = engine.begin(book, NOW)
    seen: list[str] = []
    while out.search is not None:
        out = engine.open_wave(book, out.search.wave, [], NOW)
        seen.extend(kinds(out))
    assert seen == ["wave", "wave", "wave", "unfilled"]
    assert book.job.state is JobState.UNFILLED
    assert book.job.wave == 3
    assert book.job.wave_deadline is None
    assert dict(out.events[-1].data) == {"waves": 3}


@pytest.mark.parametrize("wave", [1, 3])
def test_open_wave_for_wrong_wave_number_does_nothing(wave: int) -> None:
    """open_wave for a wave that is not the next one leaves the book untouched."""
    engine, book = dispatched(cand("w-1"))
    before = copy.deepcopy(book)
    out = engine.open_wave(book, wave, [cand("w-9")], NOW + 1)
    assert out == Outcome()
    assert book == before


# -- expire ------------------------------------------------------------------


def test_expire_before_deadline_does_nothing() -> None:
    """expire() before the wave deadline changes nothing."""
    engine, book = dispatched(cand("w-1"), cand("w-2"))
    before = copy.deepcopy(book)
    out = engine.expire(book, DEADLINE - 0.001)
    assert out == Outcome()
    assert book == before


def test_expire_at_deadline_closes_offers_and_asks_for_next_wave() -> None:
    """At the deadline pending offers close as expired and the next, wider wave is requested."""
    engine, book = dispatched(cand("w-1"), cand("w-2"))
    out = engine.expire(book, DEADLINE)
    assert sorted(o.worker_id for o in out.closed) == ["w-1", "w-2"]
    assert all(o.state is OfferState.EXPIRED and o.closed_at == DEADLINE for o in out.closed)
    assert book.pending() == []
    assert out.search == WaveSearch(job_id="job-1", wave=2, radius_m=5_000.0, k=2)
    assert kinds(out) == ["expired"]
    assert dict(out.events[0].data) == {"wave": 1, "workers": ["w-1", "w-2"]}
    assert book.job.state is JobState.OPEN


def test_expire_leaves_answered_offers_alone() -> None:
    """Only still-pending offers are expired; a declined one keeps its state."""
    engine, book = dispatched(cand("w-1"), cand("w-2"))
    engine.decline(book, offer_of(book, "w-1"), "w-1", NOW + 1)
    out = engine.expire(book, DEADLINE)
    assert [o.worker_id for o in out.closed] == ["w-2"]
    assert book.offers[offer_of(book, "w-1")].state is OfferState.DECLINED


def test_expire_repeats_search_until_a_wave_is_opened() -> None:
    """If the caller's search failed, the next expire() asks for the same wave again."""
    engine, book = dispatched(cand("w-1"))
    first = engine.expire(book, DEADLINE)
    again = engine.expire(book, DEADLINE + 5)
    assert again.search == first.search
    assert again.closed == []


def test_last_wave_deadline_makes_job_unfilled() -> None:
    """After the last wave times out the job is unfilled, with an 'unfilled' event."""
    engine, book = dispatched(cand("w-1"))
    now = DEADLINE
    out = engine.expire(book, now)
    for wave, worker in ((2, "w-2"), (3, "w-3")):
        assert out.search is not None
        assert out.search.wave == wave
        assert out.search.radius_m == RADII[wave - 1]
        engine.open_wave(book, wave, [cand(worker, 500)], now)
        now += TIMEOUT
        out = engine.expire(book, now)
    assert kinds(out) == ["expired", "unfilled"]
    assert out.search is None
    assert book.job.state is JobState.UNFILLED
    assert book.job.wave_deadline is None
    assert book.pending() == []
    assert all(o.state is OfferState.EXPIRED for o in book.offers.values())


def test_expire_on_a_job_no_longer_open_does_nothing() -> None:
    """expire() on an assigned job is a no-op."""
    engine, book = assigned()
    before = copy.deepcopy(book)
    assert engine.expire(book, DEADLINE + 100) == Outcome()
    assert book == before


# -- accept ------------------------------------------------------------------


def test_accept_assigns_job_and_closes_other_offers_as_taken() -> None:
    """The first accept assigns the job and every other pending offer closes as taken."""
    engine, book = dispatched(cand("w-1"), cand("w-2"))
    offer_id = offer_of(book, "w-2")
    out = engine.accept(book, offer_id, "w-2", NOW + 5)
    assert out.assignment == Assignment("job-1", "w-2", offer_id, NOW + 5)
    job = book.job
    assert job.state is JobState.ASSIGNED
    assert job.worker_id == "w-2"
    assert job.wave_deadline is None
    assert book.offers[offer_id].state is OfferState.ACCEPTED
    assert [(o.worker_id, o.state) for o in out.closed] == [("w-1", OfferState.TAKEN)]
    assert book.pending() == []
    assert kinds(out) == ["assigned"]
    assert dict(out.events[0].data) == {"worker_id": "w-2", "offer_id": offer_id, "wave": 1}


def test_second_accept_is_refused_as_taken_and_changes_nothing() -> None:
    """Once the job is taken, another worker's accept raises OfferClosed('taken')."""
    engine, book = dispatched(cand("w-1"), cand("w-2"))
    engine.accept(book, offer_of(book, "w-1"), "w-1", NOW + 5)
    before = copy.deepcopy(book)
    with pytest.raises(OfferClosed) as info:
        engine.accept(book, offer_of(book, "w-2"), "w-2", NOW + 6)
    assert info.value.reason == "taken"
    assert info.value.offer_id == offer_of(book, "w-2")
    assert book == before


def test_accept_just_before_deadline_wins() -> None:
    """An accept a moment before the deadline still assigns the job."""
    engine, book = dispatched(cand("w-1"))
    out = engine.accept(book, offer_of(book, "w-1"), "w-1", DEADLINE - 0.001)
    assert out.assignment is not None
    assert book.job.state is JobState.ASSIGNED


@pytest.mark.parametrize("late", [0.0, 12.0])
def test_late_accept_before_expire_ran_is_refused_as_expired(late: float) -> None:
    """An accept at or after the deadline is refused as expired even before expire() runs."""
    engine, book = dispatched(cand("w-1"))
    before = copy.deepcopy(book)
    with pytest.raises(OfferClosed) as info:
        engine.accept(book, offer_of(book, "w-1"), "w-1", DEADLINE + late)
    assert info.value.reason == "expired"
    assert book == before


def test_late_accept_after_expire_ran_is_refused_as_expired() -> None:
    """An accept of an offer that expire() already closed raises OfferClosed('expired')."""
    engine, book = dispatched(cand("w-1"))
    engine.expire(book, DEADLINE)
    before = copy.deepcopy(book)
    with pytest.raises(OfferClosed) as info:
        engine.accept(book, offer_of(book, "w-1"), "w-1", DEADLINE + 1)
    assert info.value.reason == "expired"
    assert book == before


def test_late_accept_after_job_went_unfilled_is_refused_as_expired() -> None:
    """An accept arriving after the job went unfilled raises OfferClosed('expired')."""
    config = DispatchConfig(wave_size=2, offer_timeout_s=TIMEOUT, radii_m=(1_000.0,))
    engine, book = dispatched(cand("w-1"), config=config)
    engine.expire(book, DEADLINE)
    assert book.job.state is JobState.UNFILLED
    with pytest.raises(OfferClosed) as info:
        engine.accept(book, offer_of(book, "w-1"), "w-1", DEADLINE + 1)
    assert info.value.reason == "expired"


def test_accepting_someone_elses_offer_is_not_found() -> None:
    """A worker cannot accept an offer made to another worker: NotFound, book unchanged."""
    engine, book = dispatched(cand("w-1"), cand("w-2"))
    before = copy.deepcopy(book)
    with pytest.raises(NotFound) as info:
        engine.accept(book, offer_of(book, "w-1"), "w-2", NOW + 1)
    assert info.value.code == "not_found"
    assert info.value.kind == "offer"
    assert book == before


def test_accepting_unknown_offer_is_not_found() -> None:
    """An offer id the book does not hold raises NotFound."""
    engine, book = dispatched(cand("w-1"))
    with pytest.raises(NotFound):
        engine.accept(book, "offer-404", "w-1", NOW + 1)


def test_accept_after_cancel_is_refused_as_cancelled() -> None:
    """An accept of an offer on a cancelled job raises OfferClosed('cancelled')."""
    engine, book = dispatched(cand("w-1"))
    engine.cancel(book, NOW + 1)
    with pytest.raises(OfferClosed) as info:
        engine.accept(book, offer_of(book, "w-1"), "w-1", NOW + 2)
    assert info.value.reason == "cancelled"


def test_accept_of_own_declined_offer_is_refused_as_declined() -> None:
    """A worker who declined cannot change their mind: OfferClosed('declined')."""
    engine, book = dispatched(cand("w-1"), cand("w-2"))
    engine.decline(book, offer_of(book, "w-1"), "w-1", NOW + 1)
    with pytest.raises(OfferClosed) as info:
        engine.accept(book, offer_of(book, "w-1"), "w-1", NOW + 2)
    assert info.value.reason == "declined"


# -- decline -----------------------------------------------------------------


def test_decline_with_others_still_waiting_does_not_escalate() -> None:
    """A decline while others in the wave may still accept only closes that offer."""
    engine, book = dispatched(cand("w-1"), cand("w-2"))
    out = engine.decline(book, offer_of(book, "w-1"), "w-1", NOW + 1)
    assert book.offers[offer_of(book, "w-1")].state is OfferState.DECLINED
    assert book.offers[offer_of(book, "w-1")].closed_at == NOW + 1
    assert out.search is None
    assert kinds(out) == ["declined"]
    assert dict(out.events[0].data) == {"worker_id": "w-1", "offer_id": offer_of(book, "w-1")}
    assert book.job.wave_deadline == DEADLINE


def test_decline_of_whole_wave_escalates_at_once() -> None:
    """When everyone in the wave declines, the next wave is requested immediately."""
    engine, book = dispatched(cand("w-1"), cand("w-2"))
    engine.decline(book, offer_of(book, "w-1"), "w-1", NOW + 1)
    out = engine.decline(book, offer_of(book, "w-2"), "w-2", NOW + 2)
    assert out.search == WaveSearch(job_id="job-1", wave=2, radius_m=5_000.0, k=2)
    assert kinds(out) == ["declined"]
    assert book.job.wave_deadline == NOW + 2


def test_decline_of_last_wave_makes_job_unfilled() -> None:
    """A decline that empties the last wave ends the job unfilled."""
    config = DispatchConfig(wave_size=2, offer_timeout_s=TIMEOUT, radii_m=(1_000.0,))
    engine, book = dispatched(cand("w-1"), config=config)
    out = engine.decline(book, offer_of(book, "w-1"), "w-1", NOW + 1)
    assert kinds(out) == ["declined", "unfilled"]
    assert book.job.state is JobState.UNFILLED


def test_decline_twice_is_refused() -> None:
    """A second decline of the same offer raises OfferClosed('declined')."""
    engine, book = dispatched(cand("w-1"), cand("w-2"))
    engine.decline(book, offer_of(book, "w-1"), "w-1", NOW + 1)
    with pytest.raises(OfferClosed) as info:
        engine.decline(book, offer_of(book, "w-1"), "w-1", NOW + 2)
    assert info.value.reason == "declined"


def test_declining_someone_elses_offer_is_not_found() -> None:
    """A worker cannot decline another worker's offer."""
    engine, book = dispatched(cand("w-1"), cand("w-2"))
    with pytest.raises(NotFound):
        engine.decline(book, offer_of(book, "w-1"), "w-2", NOW + 1)
    assert book.offers[offer_of(book, "w-1")].state is OfferState.PENDING


# -- withdraw ----------------------------------------------------------------


def test_withdraw_closes_only_that_workers_pending_offers() -> None:
    """withdraw() closes the worker's pending offer as withdrawn; others stay pending."""
    engine, book = dispatched(cand("w-1"), cand("w-2"))
    out = engine.withdraw(book, "w-1", NOW + 3)
    assert [(o.worker_id, o.state, o.closed_at) for o in out.closed] == [
        ("w-1", OfferState.WITHDRAWN, NOW + 3)
    ]
    assert [o.worker_id for o in book.pending()] == ["w-2"]
    assert kinds(out) == ["withdrawn"]
    assert dict(out.events[0].data) == {"worker_id": "w-1"}
    assert out.search is None


def test_withdraw_of_worker_without_pending_offers_does_nothing() -> None:
    """withdraw() for a worker with no pending offer leaves the book alone and logs nothing."""
    engine, book = dispatched(cand("w-1"), cand("w-2"))
    engine.decline(book, offer_of(book, "w-1"), "w-1", NOW + 1)
    before = copy.deepcopy(book)
    assert engine.withdraw(book, "w-1", NOW + 2) == Outcome()
    assert engine.withdraw(book, "w-stranger", NOW + 2) == Outcome()
    assert book == before


def test_withdraw_of_last_waiting_worker_escalates() -> None:
    """When the last waiting worker is withdrawn the next wave is requested at once."""
    engine, book = dispatched(cand("w-1"), cand("w-2"))
    engine.decline(book, offer_of(book, "w-1"), "w-1", NOW + 1)
    out = engine.withdraw(book, "w-2", NOW + 2)
    assert out.search is not None
    assert out.search.wave == 2


# -- offer_to ----------------------------------------------------------------


def test_offer_to_adds_worker_in_reach_to_current_wave() -> None:
    """A worker coming into reach joins the wave with a full timeout of their own."""
    engine, book = dispatched(cand("w-1"))
    out = engine.offer_to(book, cand("w-late", 800), NOW + 20)
    (offer,) = out.sent
    assert offer.worker_id == "w-late"
    assert offer.wave == 1
    assert offer.sent_at == NOW + 20
    assert offer.expires_at == NOW + 20 + TIMEOUT
    assert book.offers[offer.id] is offer
    assert book.job.wave_deadline == NOW + 20 + TIMEOUT
    assert kinds(out) == ["offered"]
    assert dict(out.events[0].data) == {"wave": 1, "worker_id": "w-late", "late": True}


def test_offer_to_extends_the_wave_deadline() -> None:
    """After a late join the first deadline expires only lapsed offers; the late one may accept."""
    engine, book = dispatched(cand("w-1"))
    engine.offer_to(book, cand("w-late", 800), NOW + 20)
    expired = engine.expire(book, DEADLINE)
    assert [o.worker_id for o in expired.closed] == ["w-1"]
    assert expired.search is None
    out = engine.accept(book, offer_of(book, "w-late"), "w-late", DEADLINE + 10)
    assert out.assignment is not None
    assert book.job.worker_id == "w-late"


def test_offer_to_outside_wave_radius_does_nothing() -> None:
    """A worker beyond the current wave's radius is not added."""
    engine, book = dispatched(cand("w-1"))
    before = copy.deepcopy(book)
    assert engine.offer_to(book, cand("w-far", 1_000.1), NOW + 5) == Outcome()
    assert book == before


@pytest.mark.parametrize("answer", ["pending", "declined", "expired"])
def test_offer_to_never_reoffers(answer: str) -> None:
    """A worker who was ever offered the job is not offered it again."""
    engine, book = dispatched(cand("w-1"), cand("w-2"))
    now = NOW + 5
    if answer == "declined":
        engine.decline(book, offer_of(book, "w-1"), "w-1", now)
    elif answer == "expired":
        now = DEADLINE
        engine.expire(book, now)
        engine.open_wave(book, 2, [cand("w-3")], now)
    before = copy.deepcopy(book)
    assert engine.offer_to(book, cand("w-1", 10), now + 1) == Outcome()
    assert book == before


def test_offer_to_before_first_wave_does_nothing() -> None:
    """Before wave 1 is out there is no wave to join."""
    engine, book = make_engine(), make_book()
    engine.begin(book, NOW)
    assert engine.offer_to(book, cand("w-1"), NOW) == Outcome()
    assert book.offers == {}


def test_offer_to_assigned_job_does_nothing() -> None:
    """A job that is already assigned takes no more offers."""
    engine, book = assigned()
    before = copy.deepcopy(book)
    assert engine.offer_to(book, cand("w-9"), NOW + 6) == Outcome()
    assert book == before


def test_decline_after_late_join_escalates_when_nobody_can_still_accept() -> None:
    """When the only offer that can still be accepted is declined, the wave escalates at once."""
    engine, book = dispatched(cand("w-1"))
    engine.offer_to(book, cand("w-late", 800), NOW + 20)
    with pytest.raises(OfferClosed):
        engine.accept(book, offer_of(book, "w-1"), "w-1", DEADLINE + 5)
    out = engine.decline(book, offer_of(book, "w-late"), "w-late", DEADLINE + 10)
    assert [(o.worker_id, o.state) for o in out.closed] == [("w-1", OfferState.EXPIRED)]
    assert out.search is not None
    assert out.search.wave == 2


def test_expire_before_extended_deadline_closes_lapsed_offers_only() -> None:
    """Between an offer's own deadline and the wave's extended one, only lapsed offers close."""
    engine, book = dispatched(cand("w-1"))
    engine.offer_to(book, cand("w-late", 800), NOW + 20)
    out = engine.expire(book, DEADLINE + 5)
    assert [(o.worker_id, o.state) for o in out.closed] == [("w-1", OfferState.EXPIRED)]
    assert out.search is None
    assert [o.worker_id for o in book.pending()] == ["w-late"]


# -- cancel ------------------------------------------------------------------


def test_cancel_open_job_closes_pending_offers_as_cancelled() -> None:
    """Cancelling an open job closes its pending offers as cancelled and frees nobody."""
    engine, book = dispatched(cand("w-1"), cand("w-2"))
    engine.decline(book, offer_of(book, "w-1"), "w-1", NOW + 1)
    out = engine.cancel(book, NOW + 2, reason="duplicate")
    assert [(o.worker_id, o.state) for o in out.closed] == [("w-2", OfferState.CANCELLED)]
    assert book.offers[offer_of(book, "w-1")].state is OfferState.DECLINED
    assert book.job.state is JobState.CANCELLED
    assert book.job.wave_deadline is None
    assert out.released_worker is None
    assert kinds(out) == ["cancelled"]
    assert dict(out.events[0].data) == {"reason": "duplicate"}


@pytest.mark.parametrize("state", [JobState.ASSIGNED, JobState.EN_ROUTE, JobState.ON_SITE])
def test_cancel_frees_the_assigned_worker(state: JobState) -> None:
    """Cancelling a job someone is working releases that worker."""
    engine, book = assigned("w-1")
    if state is not JobState.ASSIGNED:
        engine.progress(book, "w-1", state, NOW + 6)
    out = engine.cancel(book, NOW + 7)
    assert out.released_worker == "w-1"
    assert out.closed == []
    assert book.job.state is JobState.CANCELLED


def test_cancel_of_an_unfilled_job_closes_it_and_frees_nobody() -> None:
    """A job nobody took can still be cancelled: it ends cancelled, with no offer to close."""
    engine, book = make_engine(), make_book()
    out = engine.begin(book, NOW)
    while out.search is not None:
        out = engine.open_wave(book, out.search.wave, [], NOW)
    ended = book.job.state
    assert ended is JobState.UNFILLED
    out = engine.cancel(book, NOW + 1, reason="withdrawn")
    assert book.job.state is JobState.CANCELLED
    assert (out.closed, out.released_worker) == ([], None)
    assert kinds(out) == ["cancelled"]


@pytest.mark.parametrize("final", [JobState.CANCELLED, JobState.COMPLETED])
def test_cancel_of_finished_job_is_illegal(final: JobState) -> None:
    """A job that has ended cannot be cancelled; the error names its state."""
    engine, book = make_engine(), make_book()
    book.job.state = final
    with pytest.raises(IllegalTransition) as info:
        engine.cancel(book, NOW)
    assert info.value.current == final.value


# -- progress ----------------------------------------------------------------


def test_progress_through_to_completion_releases_worker() -> None:
    """The assigned worker goes en_route, on_site, completed; only completion frees them."""
    engine, book = assigned("w-1")
    outs = [
        engine.progress(book, "w-1", target, NOW + 10 + i)
        for i, target in enumerate((JobState.EN_ROUTE, JobState.ON_SITE, JobState.COMPLETED))
    ]
    assert [kinds(o) for o in outs] == [["en_route"], ["on_site"], ["completed"]]
    assert [o.released_worker for o in outs] == [None, None, "w-1"]
    assert all(dict(o.events[0].data) == {"worker_id": "w-1"} for o in outs)
    assert book.job.state is JobState.COMPLETED
    assert book.job.updated_at == NOW + 12


def test_progress_may_skip_en_route() -> None:
    """An assigned worker may report on_site directly."""
    engine, book = assigned("w-1")
    engine.progress(book, "w-1", JobState.ON_SITE, NOW + 10)
    assert book.job.state is JobState.ON_SITE


def test_progress_by_another_worker_is_not_found() -> None:
    """Only the assigned worker may report progress; anyone else gets NotFound."""
    engine, book = assigned("w-1")
    before = copy.deepcopy(book)
    with pytest.raises(NotFound) as info:
        engine.progress(book, "w-2", JobState.EN_ROUTE, NOW + 10)
    assert info.value.kind == "job"
    assert book == before


def test_progress_on_unassigned_job_is_not_found() -> None:
    """An open job has nobody to report progress."""
    engine, book = dispatched(cand("w-1"))
    with pytest.raises(NotFound):
        engine.progress(book, "w-1", JobState.EN_ROUTE, NOW + 1)


def test_progress_straight_to_completed_is_illegal() -> None:
    """Completing an assigned job without arriving raises IllegalTransition, job unchanged."""
    engine, book = assigned("w-1")
    before = copy.deepcopy(book)
    with pytest.raises(IllegalTransition) as info:
        engine.progress(book, "w-1", JobState.COMPLETED, NOW + 10)
    assert info.value.current == "assigned"
    assert info.value.target == "completed"
    assert book == before


@pytest.mark.parametrize("target", [JobState.CANCELLED, JobState.ASSIGNED, JobState.OPEN])
def test_progress_to_non_progress_state_is_illegal(target: JobState) -> None:
    """A worker may only report en_route, on_site or completed."""
    engine, book = assigned("w-1")
    before = copy.deepcopy(book)
    with pytest.raises(IllegalTransition):
        engine.progress(book, "w-1", target, NOW + 10)
    assert book == before


def test_progress_after_completion_is_an_illegal_transition() -> None:
    """The worker's own completed job cannot move again: IllegalTransition names its state."""
    engine, book = assigned("w-1")
    for target in (JobState.ON_SITE, JobState.COMPLETED):
        engine.progress(book, "w-1", target, NOW + 10)
    before = copy.deepcopy(book)
    with pytest.raises(IllegalTransition) as info:
        engine.progress(book, "w-1", JobState.COMPLETED, NOW + 11)
    assert (info.value.current, info.value.target) == ("completed", "completed")
    assert book == before


# -- the event log -----------------------------------------------------------


def test_each_step_appends_its_event() -> None:
    """Every step of a job's life appends its event, in order, to the outcome it returns."""
    engine, book = make_engine(), make_book()
    history: list[Outcome] = [engine.begin(book, NOW)]
    history.append(engine.open_wave(book, 1, [cand("w-1"), cand("w-2")], NOW))
    history.append(engine.decline(book, offer_of(book, "w-1"), "w-1", NOW + 1))
    history.append(engine.expire(book, DEADLINE))
    history.append(engine.open_wave(book, 2, [cand("w-3", 3_000)], DEADLINE))
    history.append(engine.offer_to(book, cand("w-4", 4_000), DEADLINE + 1))
    history.append(engine.accept(book, offer_of(book, "w-4"), "w-4", DEADLINE + 2))
    for i, target in enumerate((JobState.EN_ROUTE, JobState.ON_SITE, JobState.COMPLETED)):
        history.append(engine.progress(book, "w-4", target, DEADLINE + 10 + i))
    events = [e for out in history for e in out.events]
    assert [e.kind for e in events] == [
        "wave",
        "declined",
        "expired",
        "wave",
        "offered",
        "assigned",
        "en_route",
        "on_site",
        "completed",
    ]
    assert all(e.job_id == "job-1" and e.org_id == "org-1" for e in events)
    assert [e.at for e in events] == sorted(e.at for e in events)
    assert book.offers[offer_of(book, "w-3")].state is OfferState.TAKEN


def test_ids_come_from_the_injected_factory() -> None:
    """Offer ids are drawn, in order, from the id factory the engine was given."""
    engine, book = dispatched(cand("w-1"), cand("w-2"))
    engine.offer_to(book, cand("w-3"), NOW + 1)
    assert list(book.offers) == ["offer-1", "offer-2", "offer-3"]


# -- repeated accepts ---------------------------------------------------------


def test_a_repeated_accept_by_the_winner_returns_the_same_assignment() -> None:
    """The winner's accept sent again yields its assignment and changes nothing."""
    engine, book = assigned("w-1")
    before = copy.deepcopy(book)
    again = engine.repeated_accept(book, offer_of(book, "w-1"), "w-1")
    assert again is not None
    assert (again.job_id, again.worker_id) == (book.job.id, "w-1")
    assert book == before


def test_a_loser_or_a_finished_job_is_no_repeated_accept() -> None:
    """A taken offer, or the winner's offer once the job is cancelled, is not a repeat."""
    engine, book = assigned("w-1")
    assert engine.repeated_accept(book, offer_of(book, "w-2"), "w-2") is None
    engine.cancel(book, NOW + 6)
    assert engine.repeated_accept(book, offer_of(book, "w-1"), "w-1") is None


# -- release ------------------------------------------------------------------


def test_a_release_reopens_the_job_and_asks_for_wave_one_at_once() -> None:
    """The assigned worker hands the job back: open, unassigned, wave 1 searched now."""
    engine, book = assigned("w-1")
    out = engine.release(book, "w-1", NOW + 10, "van broke down")
    job = book.job
    assert (job.state, job.worker_id, job.wave_deadline) == (JobState.OPEN, None, NOW + 10)
    assert out.search == WaveSearch(job_id="job-1", wave=1, radius_m=RADII[0], k=2)
    assert out.released_worker == "w-1"
    assert out.sent == []
    assert out.closed == []
    assert kinds(out) == ["released"]
    assert dict(out.events[0].data) == {
        "worker_id": "w-1",
        "reason": "van broke down",
        "was": "assigned",
    }


def test_the_new_wave_goes_to_nobody_offered_the_job_before() -> None:
    """After a release the releasing worker (and the earlier wave) is not offered it again."""
    engine, book = assigned("w-1")
    engine.progress(book, "w-1", JobState.EN_ROUTE, NOW + 8)
    engine.release(book, "w-1", NOW + 10)
    out = engine.open_wave(book, 1, [cand("w-1", 10.0), cand("w-2", 20.0), cand("w-3")], NOW + 10)
    assert [o.worker_id for o in out.sent] == ["w-3"]
    assert book.job.wave == 1
    assert book.job.wave_deadline == NOW + 10 + TIMEOUT
    engine.accept(book, offer_of_pending(book, "w-3"), "w-3", NOW + 11)
    assert (book.job.state, book.job.worker_id) == (JobState.ASSIGNED, "w-3")


def test_a_release_on_site_or_by_someone_else_is_refused_and_changes_nothing() -> None:
    """Once on site the job cannot be handed back; another worker's release is not found."""
    engine, book = assigned("w-1")
    with pytest.raises(NotFound):
        engine.release(book, "w-2", NOW + 6)
    engine.progress(book, "w-1", JobState.ON_SITE, NOW + 7)
    before = copy.deepcopy(book)
    with pytest.raises(IllegalTransition) as info:
        engine.release(book, "w-1", NOW + 8)
    assert info.value.current == "on_site"
    assert book == before


def test_an_open_job_cannot_be_released() -> None:
    """Nobody holds an open job, so nobody can release it."""
    engine, book = dispatched(cand("w-1"))
    with pytest.raises(NotFound):
        engine.release(book, "w-1", NOW + 1)
