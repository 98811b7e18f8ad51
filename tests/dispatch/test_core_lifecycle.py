"""The job and offer state machines: one table each, illegal moves refused."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from dispatch.errors import IllegalTransition
from dispatch.lifecycle import (
    ACTIVE_JOB_STATES,
    FINAL_JOB_STATES,
    JOB_TRANSITIONS,
    advance_job,
    can_advance,
    close_offer,
)
from dispatch.models import Job, JobState, Offer, OfferState

NOW = 1000.0
LATER = 1042.0

# The specification, written out independently of ``lifecycle.JOB_TRANSITIONS``.
LEGAL_JOB_MOVES: frozenset[tuple[JobState, JobState]] = frozenset(
    {
        (JobState.OPEN, JobState.ASSIGNED),
        (JobState.OPEN, JobState.CANCELLED),
        (JobState.OPEN, JobState.UNFILLED),
        (JobState.ASSIGNED, JobState.EN_ROUTE),
        (JobState.ASSIGNED, JobState.ON_SITE),
        (JobState.ASSIGNED, JobState.CANCELLED),
        (JobState.ASSIGNED, JobState.OPEN),
        (JobState.EN_ROUTE, JobState.OPEN),
        (JobState.EN_ROUTE, JobState.ON_SITE),
        (JobState.EN_ROUTE, JobState.CANCELLED),
        (JobState.ON_SITE, JobState.COMPLETED),
        (JobState.ON_SITE, JobState.CANCELLED),
        (JobState.UNFILLED, JobState.OPEN),  # a dispatcher re-offers or assigns it
        (JobState.UNFILLED, JobState.CANCELLED),  # the work order is withdrawn
    }
)
FINAL_STATES = frozenset({JobState.COMPLETED, JobState.CANCELLED})

ALL_JOB_MOVES = list(itertools.product(JobState, JobState))
LEGAL = [m for m in ALL_JOB_MOVES if m in LEGAL_JOB_MOVES]
ILLEGAL = [m for m in ALL_JOB_MOVES if m not in LEGAL_JOB_MOVES]

ALL_OFFER_MOVES = list(itertools.product(OfferState, OfferState))
OFFER_LEGAL = [(s, t) for s, t in ALL_OFFER_MOVES if s is OfferState.PENDING and t is not s]
OFFER_ILLEGAL = [m for m in ALL_OFFER_MOVES if m not in OFFER_LEGAL]


def _ids(move: tuple[object, object]) -> str:
    return f"{move[0]}->{move[1]}"


def make_job(state: JobState) -> Job:
    return Job(
        id="job-1",
        org_id="org-1",
        title="Replace pump seal",
        lat=52.52,
        lng=13.40,
        skills=frozenset({"plumbing"}),
        priority=2,
        state=state,
        created_at=NOW,
        updated_at=NOW,
        worker_id="w-1" if state in ACTIVE_JOB_STATES else None,
        version=3,
    )


def make_offer(state: OfferState) -> Offer:
    return Offer(
        id="offer-1",
        org_id="org-1",
        job_id="job-1",
        worker_id="w-1",
        wave=1,
        distance_m=120.0,
        sent_at=NOW,
        expires_at=NOW + 30.0,
        state=state,
        closed_at=None if state is OfferState.PENDING else NOW + 1.0,
    )


def test_table_covers_every_job_state() -> None:
    """Every job state has a row in the transition table."""
    assert set(JOB_TRANSITIONS) == set(JobState)


def test_table_matches_specification() -> None:
    """The transition table allows exactly the specified moves."""
    table = {(s, t) for s, targets in JOB_TRANSITIONS.items() for t in targets}
    assert table == LEGAL_JOB_MOVES


@pytest.mark.parametrize(("current", "target"), LEGAL, ids=_ids)
def test_legal_job_move_succeeds(current: JobState, target: JobState) -> None:
    """A legal move changes the state, stamps updated_at and bumps the version."""
    job = make_job(current)
    assert can_advance(current, target)
    advance_job(job, target, LATER)
    assert job.state is target
    assert job.updated_at == LATER
    assert job.version == 4


@pytest.mark.parametrize(("current", "target"), ILLEGAL, ids=_ids)
def test_illegal_job_move_raises_naming_current_state(current: JobState, target: JobState) -> None:
    """An illegal move raises IllegalTransition naming the current and target states."""
    job = make_job(current)
    assert not can_advance(current, target)
    with pytest.raises(IllegalTransition) as info:
        advance_job(job, target, LATER)
    err = info.value
    assert err.code == "illegal_transition"
    assert err.current == current.value
    assert err.target == target.value
    assert err.what == "job job-1"
    assert current.value in str(err)


@pytest.mark.parametrize(("current", "target"), ILLEGAL, ids=_ids)
def test_refused_job_move_leaves_job_unchanged(current: JobState, target: JobState) -> None:
    """A refused move leaves every field of the job as it was."""
    job = make_job(current)
    before = replace(job)
    with pytest.raises(IllegalTransition):
        advance_job(job, target, LATER)
    assert job == before


@pytest.mark.parametrize("state", sorted(FINAL_STATES))
def test_final_states_have_no_exits(state: JobState) -> None:
    """Completed and cancelled jobs can move nowhere."""
    assert JOB_TRANSITIONS[state] == frozenset()
    assert not any(can_advance(state, target) for target in JobState)


def test_final_state_set_is_exactly_the_dead_ends() -> None:
    """FINAL_JOB_STATES is completed and cancelled (an unfilled job may be opened again)."""
    assert FINAL_JOB_STATES == FINAL_STATES


def test_active_states_are_those_with_a_worker_on_the_job() -> None:
    """ACTIVE_JOB_STATES is assigned, en_route and on_site."""
    assert frozenset({JobState.ASSIGNED, JobState.EN_ROUTE, JobState.ON_SITE}) == ACTIVE_JOB_STATES


@pytest.mark.parametrize(("current", "target"), OFFER_LEGAL, ids=_ids)
def test_pending_offer_closes_to_any_final_state(current: OfferState, target: OfferState) -> None:
    """A pending offer moves to any other state and records when it closed."""
    offer = make_offer(current)
    close_offer(offer, target, LATER)
    assert offer.state is target
    assert offer.closed_at == LATER


@pytest.mark.parametrize(("current", "target"), OFFER_ILLEGAL, ids=_ids)
def test_offer_changes_only_from_pending(current: OfferState, target: OfferState) -> None:
    """A closed offer (or pending→pending) is refused with the current state, offer unchanged."""
    offer = make_offer(current)
    before = replace(offer)
    with pytest.raises(IllegalTransition) as info:
        close_offer(offer, target, LATER)
    assert info.value.current == current.value
    assert info.value.target == target.value
    assert info.value.what == "offer offer-1"
    assert offer == before


@pytest.mark.parametrize("first", [s for s in OfferState if s is not OfferState.PENDING])
def test_offer_closes_only_once(first: OfferState) -> None:
    """Once closed, an offer refuses a second close whatever the target."""
    offer = make_offer(OfferState.PENDING)
    close_offer(offer, first, NOW + 1.0)
    for target in OfferState:
        with pytest.raises(IllegalTransition):
            close_offer(offer, target, LATER)
    assert offer.state is first
    assert offer.closed_at == NOW + 1.0
