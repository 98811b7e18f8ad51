"""Which effects an outcome writes to the outbox, and in which order (pure, pinned clock)."""

from __future__ import annotations

import itertools

from dispatch.config import DispatchConfig
from dispatch.effects import EffectKind, effects_of
from dispatch.models import Job, JobState
from dispatch.offers import Candidate, JobBook, OfferEngine, Outcome

NOW = 1000.0
LEASE_S = 5.0
CONFIG = DispatchConfig(wave_size=3, offer_timeout_s=30.0, radii_m=(1000.0, 3000.0))


def setup() -> tuple[OfferEngine, JobBook]:
    """An engine and a book whose wave 1 went to w-1 and w-2."""
    counter = itertools.count(1)
    engine = OfferEngine(CONFIG, lambda: f"offer-{next(counter)}")
    job = Job("job-1", "org-1", "Leak", 52.5, 13.4, frozenset(), 1, JobState.OPEN, NOW, NOW)
    book = JobBook(job=job)
    engine.begin(book, NOW)
    engine.open_wave(book, 1, [Candidate("w-1", 10.0), Candidate("w-2", 20.0)], NOW)
    return engine, book


def effects(book: JobBook, out: Outcome) -> list[tuple[EffectKind, str, str]]:
    """``(kind, target, notice type or '')`` of the outcome's effects, in order."""
    counter = itertools.count(1)
    made = effects_of(book.job, out, lambda: f"eff-{next(counter)}", NOW, LEASE_S)
    return [(e.kind, e.target, str(e.payload.get("type", ""))) for e in made]


def test_a_wave_writes_one_offer_notice_per_worker_leased_to_the_committer() -> None:
    """Opening a wave writes an ``offer`` notice per worker, due when the lease ends."""
    counter = itertools.count(1)
    engine = OfferEngine(CONFIG, lambda: f"offer-{next(counter)}")
    job = Job("job-1", "org-1", "Leak", 52.5, 13.4, frozenset(), 1, JobState.OPEN, NOW, NOW)
    book = JobBook(job=job)
    engine.begin(book, NOW)
    out = engine.open_wave(book, 1, [Candidate("w-1", 10.0), Candidate("w-2", 20.0)], NOW)
    made = effects_of(book.job, out, lambda: "eff", NOW, LEASE_S)
    assert [(e.kind, e.target) for e in made] == [
        (EffectKind.NOTICE, "w-1"),
        (EffectKind.NOTICE, "w-2"),
    ]
    assert {e.payload["type"] for e in made} == {"offer"}
    assert {(e.job_id, e.created_at, e.due_at) for e in made} == {("job-1", NOW, NOW + LEASE_S)}


def test_an_accept_writes_the_notices_before_taking_the_winner_off_the_map() -> None:
    """An accept writes the others' closures and ``assigned``, then ``taken`` for the winner."""
    engine, book = setup()
    offer = next(o.id for o in book.offers.values() if o.worker_id == "w-1")
    out = engine.accept(book, offer, "w-1", NOW + 1)
    assert effects(book, out) == [
        (EffectKind.NOTICE, "w-2", "offer_closed"),
        (EffectKind.NOTICE, "w-1", "assigned"),
        (EffectKind.TAKEN, "w-1", ""),
    ]


def test_cancelling_an_assigned_job_tells_the_worker_before_freeing_them() -> None:
    """A cancelled assignment writes ``job_cancelled`` to its worker, then ``freed``."""
    engine, book = setup()
    offer = next(o.id for o in book.offers.values() if o.worker_id == "w-1")
    engine.accept(book, offer, "w-1", NOW + 1)
    out = engine.cancel(book, NOW + 2, "duplicate")
    made = effects_of(book.job, out, lambda: "eff", NOW, LEASE_S)
    assert [(e.kind, e.target) for e in made] == [
        (EffectKind.NOTICE, "w-1"),
        (EffectKind.FREED, "w-1"),
    ]
    assert made[0].payload == {"type": "job_cancelled", "job_id": "job-1", "reason": "duplicate"}
    assert made[1].payload == {"org_id": "org-1"}


def test_completing_a_job_frees_the_worker_without_a_notice() -> None:
    """Completion writes only ``freed`` (the phone asked; its answer says so)."""
    engine, book = setup()
    offer = next(o.id for o in book.offers.values() if o.worker_id == "w-1")
    engine.accept(book, offer, "w-1", NOW + 1)
    engine.progress(book, "w-1", JobState.EN_ROUTE, NOW + 2)
    engine.progress(book, "w-1", JobState.ON_SITE, NOW + 3)
    out = engine.progress(book, "w-1", JobState.COMPLETED, NOW + 4)
    assert effects(book, out) == [(EffectKind.FREED, "w-1", "")]
