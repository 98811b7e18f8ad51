"""The engine's dispatcher steps, pinned clock: direct assignment, re-offer, cancel by hand."""

from __future__ import annotations

import pytest

from dispatch.effects import EffectKind, effects_of
from dispatch.errors import IllegalTransition
from dispatch.models import Actor, JobState, OfferState
from dispatch.offers import JobBook, OfferEngine, WaveSearch
from tests.dispatch.test_core_offers import (
    CONFIG,
    DEADLINE,
    NOW,
    RADII,
    cand,
    dispatched,
    kinds,
    make_book,
    make_engine,
)

DEE = Actor("dispatcher", "dsp-1")


def test_direct_assignment_closes_every_other_offer_as_taken() -> None:
    """Assigning a worker outside the wave makes a direct offer, accepts it, and takes the rest."""
    engine, book = dispatched(cand("w-1"), cand("w-2"))
    out = engine.assign_to(book, cand("w-9", 400.0), NOW + 5, DEE)
    job = book.job
    assert (job.state, job.worker_id, job.wave_deadline) == (JobState.ASSIGNED, "w-9", None)
    assert out.assignment is not None
    assert out.assignment.worker_id == "w-9"
    direct = book.offers[out.assignment.offer_id]
    assert (direct.worker_id, direct.state, direct.distance_m) == (
        "w-9",
        OfferState.ACCEPTED,
        400.0,
    )
    assert sorted((o.worker_id, o.state) for o in out.closed) == [
        ("w-1", OfferState.TAKEN),
        ("w-2", OfferState.TAKEN),
    ]
    assert kinds(out) == ["assigned"]
    assert out.events[0].data == {
        "worker_id": "w-9",
        "offer_id": direct.id,
        "wave": 1,
        "direct": True,
        "by": {"role": "dispatcher", "id": "dsp-1"},
    }


def test_direct_assignment_of_an_offered_worker_accepts_their_own_offer() -> None:
    """A worker with a pending offer of the job is assigned through that offer, not a new one."""
    engine, book = dispatched(cand("w-1"), cand("w-2"))
    mine = next(o for o in book.offers.values() if o.worker_id == "w-2")
    out = engine.assign_to(book, cand("w-2"), NOW + 1, DEE)
    assert out.assignment is not None
    assert out.assignment.offer_id == mine.id
    assert len(book.offers) == 2
    assert book.offers[mine.id].state is OfferState.ACCEPTED


def test_an_override_is_recorded_with_who_made_it() -> None:
    """The ``assigned`` event of an override names the reason overridden and the actor."""
    engine, book = dispatched(cand("w-1"))
    out = engine.assign_to(book, cand("w-7"), NOW, Actor("org", "org-1"), overridden="busy")
    assert out.events[0].data["override"] == "busy"
    assert out.events[0].data["by"] == {"role": "org", "id": "org-1"}


def test_direct_assignment_tells_the_phone_and_takes_the_worker_off_the_map() -> None:
    """Its effects: offer_closed to the others, assigned to the worker, then taken."""
    engine, book = dispatched(cand("w-1"))
    out = engine.assign_to(book, cand("w-9"), NOW, DEE)
    made = effects_of(book.job, out, iter(f"e{i}" for i in range(9)).__next__, NOW, 5.0)
    assert [(e.kind, e.target, e.payload.get("type")) for e in made] == [
        (EffectKind.NOTICE, "w-1", "offer_closed"),
        (EffectKind.NOTICE, "w-9", "assigned"),
        (EffectKind.TAKEN, "w-9", None),
    ]


@pytest.mark.parametrize(
    "state", [JobState.ASSIGNED, JobState.EN_ROUTE, JobState.CANCELLED, JobState.COMPLETED]
)
def test_only_an_open_or_unfilled_job_is_assigned_or_reoffered(state: JobState) -> None:
    """Assigning or re-offering a job being worked or finished raises, the book unchanged."""
    engine = make_engine()
    book = make_book()
    book.job.state = state
    with pytest.raises(IllegalTransition):
        engine.assign_to(book, cand("w-1"), NOW, DEE)
    with pytest.raises(IllegalTransition):
        engine.reoffer(book, NOW, 5_000.0, DEE)
    assert book.offers == {}
    assert book.job.state is state


def test_reoffer_asks_for_the_next_wave_over_the_radius_given() -> None:
    """A re-offer asks at once for wave n + 1 over its radius, naming who asked."""
    engine, book = dispatched(cand("w-1"))
    out = engine.reoffer(book, NOW + 3, 7_500.0, DEE)
    assert out.search == WaveSearch(book.job.id, 2, 7_500.0, CONFIG.wave_size, DEE)
    assert out.events == []
    assert book.job.wave == 1


def test_a_reoffer_wave_goes_out_beside_the_offers_still_out() -> None:
    """The new wave reaches the wider radius, keeps the earlier offers, and records ``by``."""
    engine, book = dispatched(cand("w-1"))
    search = engine.reoffer(book, NOW + 3, 7_500.0, DEE).search
    assert search is not None
    out = engine.open_wave(book, 2, [cand("w-1"), cand("w-5", 7_000.0)], NOW + 3, search)
    assert [o.worker_id for o in out.sent] == ["w-5"]
    assert book.job.wave_radius_m == 7_500.0
    assert [o.worker_id for o in book.pending()] == ["w-1", "w-5"]
    assert book.job.wave_deadline == NOW + 3 + CONFIG.offer_timeout_s
    assert out.events[0].data["by"] == {"role": "dispatcher", "id": "dsp-1"}


def test_a_reoffer_that_finds_nobody_waits_for_the_offers_out() -> None:
    """An empty re-offer wave does not escalate while earlier offers are pending."""
    engine, book = dispatched(cand("w-1"))
    search = engine.reoffer(book, NOW + 3, 7_500.0, DEE).search
    out = engine.open_wave(book, 2, [], NOW + 3, search)
    assert out.search is None
    assert book.job.state is JobState.OPEN
    assert book.job.wave_deadline == DEADLINE


def test_an_empty_engine_wave_still_escalates() -> None:
    """With no offer out, a wave that reaches nobody asks for the next one as before."""
    engine = make_engine()
    book = make_book()
    engine.begin(book, NOW)
    out = engine.open_wave(book, 1, [], NOW)
    assert out.search is not None
    assert out.search.wave == 2


def test_next_radius_is_the_ladders_next_rung() -> None:
    """A re-offer reaches the first ladder radius past the wave out, or the widest one."""
    engine, book = dispatched(cand("w-1"))
    assert engine.next_radius(book.job) == RADII[1]
    book.job.wave_radius_m = RADII[-1]
    assert engine.next_radius(book.job) == RADII[-1]
    book.job.wave_radius_m = 0.0
    assert engine.next_radius(book.job) == RADII[0]


def test_a_cancel_by_hand_records_who_cancelled() -> None:
    """``cancel`` with ``by`` adds it to the ``cancelled`` event; without, as before."""
    engine, book = dispatched(cand("w-1"))
    out = engine.cancel(book, NOW + 1, "duplicate", DEE)
    assert out.events[-1].data == {
        "reason": "duplicate",
        "by": {"role": "dispatcher", "id": "dsp-1"},
    }
    _, other = dispatched(cand("w-1"))
    assert make_engine().cancel(other, NOW, "x").events[-1].data == {"reason": "x"}


def unfilled() -> tuple[OfferEngine, JobBook]:
    """An engine and a job whose every wave found nobody."""
    engine = make_engine()
    book = make_book()
    out = engine.begin(book, NOW)
    while out.search is not None:
        out = engine.open_wave(book, out.search.wave, [], NOW)
    assert book.job.state is JobState.UNFILLED
    return engine, book


def test_a_reoffer_opens_an_unfilled_job_again() -> None:
    """Re-offering an unfilled job reopens it (logged with who) and its new wave goes out."""
    engine, book = unfilled()
    out = engine.reoffer(book, NOW + 60, 20_000.0, DEE)
    assert book.job.state is JobState.OPEN
    assert kinds(out) == ["reopened"]
    assert out.events[0].data == {"by": {"role": "dispatcher", "id": "dsp-1"}}
    assert out.search is not None
    assert out.search.wave == len(RADII) + 1
    sent = engine.open_wave(book, out.search.wave, [cand("w-1", 18_000.0)], NOW + 60, out.search)
    assert [o.worker_id for o in sent.sent] == ["w-1"]
    assert book.job.wave_deadline == NOW + 60 + CONFIG.offer_timeout_s


def test_a_reopened_job_that_finds_nobody_is_unfilled_again() -> None:
    """A re-offer of an unfilled job that reaches nobody leaves it unfilled once more."""
    engine, book = unfilled()
    search = engine.reoffer(book, NOW + 60, 20_000.0, DEE).search
    assert search is not None
    out = engine.open_wave(book, search.wave, [], NOW + 60, search)
    assert book.job.state is JobState.UNFILLED
    assert kinds(out) == ["wave", "unfilled"]


def test_an_unfilled_job_may_be_assigned_directly() -> None:
    """Assigning an unfilled job reopens it and assigns it in one step."""
    engine, book = unfilled()
    out = engine.assign_to(book, cand("w-4"), NOW + 90, DEE)
    assert (book.job.state, book.job.worker_id) == (JobState.ASSIGNED, "w-4")
    assert kinds(out) == ["reopened", "assigned"]
