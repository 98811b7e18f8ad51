"""Eligibility rules: who may be offered a job, and the first reason why not."""

from __future__ import annotations

from dataclasses import replace

import pytest

from dispatch.matching import (
    DEFAULT_RULES,
    Exclusion,
    MatchContext,
    explain,
    explain_at,
    is_eligible,
)
from dispatch.models import Availability, Fix, Job, JobState, Worker, WorkerKind

NOW = 1000.0
MAX_AGE = 300.0


def make_job(skills: frozenset[str] = frozenset({"electrical"})) -> Job:
    return Job(
        id="job-1",
        org_id="org-1",
        title="Street light out",
        lat=52.52,
        lng=13.40,
        skills=skills,
        priority=1,
        state=JobState.OPEN,
        created_at=NOW,
        updated_at=NOW,
    )


def make_worker(
    *,
    org_id: str = "org-1",
    availability: Availability = Availability.AVAILABLE,
    skills: frozenset[str] = frozenset({"electrical"}),
    fix_at: float | None = NOW - 10.0,
) -> Worker:
    return Worker(
        id="w-1",
        org_id=org_id,
        name="Ada",
        kind=WorkerKind.EMPLOYEE,
        skills=skills,
        availability=availability,
        fix=None if fix_at is None else Fix(lat=52.521, lng=13.401, accuracy_m=8.0, at=fix_at),
    )


def ctx(already_offered: frozenset[str] = frozenset(), now: float = NOW) -> MatchContext:
    return MatchContext(now=now, fix_max_age_s=MAX_AGE, already_offered=already_offered)


def test_available_skilled_worker_with_fresh_fix_is_eligible() -> None:
    """A worker of the job's organisation, available, skilled and freshly located is eligible."""
    worker = make_worker()
    assert explain(worker, make_job(), ctx()) is None
    assert is_eligible(worker, make_job(), ctx())


def test_worker_of_other_organisation_is_excluded() -> None:
    """Work is never offered across organisations."""
    worker = make_worker(org_id="org-2")
    assert explain(worker, make_job(), ctx()) is Exclusion.OTHER_ORGANISATION
    assert not is_eligible(worker, make_job(), ctx())


@pytest.mark.parametrize(
    ("availability", "reason"),
    [(Availability.BUSY, Exclusion.BUSY), (Availability.OFF_DUTY, Exclusion.OFF_DUTY)],
)
def test_unavailable_worker_is_excluded(availability: Availability, reason: Exclusion) -> None:
    """Busy and off-duty workers are not offered work, each for its own reason."""
    worker = make_worker(availability=availability)
    assert explain(worker, make_job(), ctx()) is reason


@pytest.mark.parametrize(
    ("worker_skills", "job_skills", "expected"),
    [
        (frozenset({"electrical"}), frozenset({"electrical"}), None),
        (frozenset({"electrical", "welding", "hv"}), frozenset({"electrical"}), None),
        (frozenset(), frozenset(), None),
        (frozenset({"welding"}), frozenset(), None),
        (frozenset(), frozenset({"electrical"}), Exclusion.MISSING_SKILLS),
        (frozenset({"welding"}), frozenset({"electrical"}), Exclusion.MISSING_SKILLS),
        (
            frozenset({"electrical"}),
            frozenset({"electrical", "hv"}),
            Exclusion.MISSING_SKILLS,
        ),
    ],
    ids=[
        "exact",
        "extra-skills-pass",
        "no-skills-either-side",
        "job-needs-nothing",
        "worker-has-none",
        "wrong-skill",
        "partial-cover",
    ],
)
def test_skills_use_subset_semantics(
    worker_skills: frozenset[str], job_skills: frozenset[str], expected: Exclusion | None
) -> None:
    """The worker must hold every skill the job needs; extra skills do no harm."""
    worker = make_worker(skills=worker_skills)
    assert explain(worker, make_job(skills=job_skills), ctx()) is expected


def test_worker_without_fix_is_excluded() -> None:
    """A worker who never reported a position cannot be matched."""
    worker = make_worker(fix_at=None)
    assert explain(worker, make_job(), ctx()) is Exclusion.NO_FIX


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        (0.0, None),
        (MAX_AGE - 0.001, None),
        (MAX_AGE, None),
        (MAX_AGE + 0.001, Exclusion.STALE_FIX),
        (MAX_AGE * 10, Exclusion.STALE_FIX),
    ],
    ids=["fresh", "just-under", "exactly-max-age", "just-over", "ancient"],
)
def test_fix_staleness_boundary(age: float, expected: Exclusion | None) -> None:
    """A fix exactly fix_max_age_s old still counts; anything older is stale."""
    worker = make_worker(fix_at=NOW - age)
    assert explain(worker, make_job(), ctx()) is expected


def test_staleness_is_judged_against_context_now() -> None:
    """The same fix becomes stale purely because the injected clock moved on."""
    worker = make_worker(fix_at=NOW)
    assert explain(worker, make_job(), ctx(now=NOW + MAX_AGE)) is None
    assert explain(worker, make_job(), ctx(now=NOW + MAX_AGE + 1.0)) is Exclusion.STALE_FIX


def test_already_offered_worker_is_excluded() -> None:
    """A worker who was offered this job before is not offered it again."""
    worker = make_worker()
    offered = frozenset({"w-9", worker.id})
    assert explain(worker, make_job(), ctx(already_offered=offered)) is Exclusion.ALREADY_OFFERED


def test_others_being_offered_does_not_exclude() -> None:
    """Only the worker's own id in already_offered excludes them."""
    worker = make_worker()
    assert explain(worker, make_job(), ctx(already_offered=frozenset({"w-9"}))) is None


def _failing_everything() -> Worker:
    return make_worker(
        org_id="org-2",
        availability=Availability.BUSY,
        skills=frozenset(),
        fix_at=None,
    )


@pytest.mark.parametrize(
    ("fix", "expected"),
    [
        ({}, Exclusion.OTHER_ORGANISATION),
        ({"org_id": "org-1"}, Exclusion.BUSY),
        (
            {"org_id": "org-1", "availability": Availability.AVAILABLE},
            Exclusion.MISSING_SKILLS,
        ),
        (
            {
                "org_id": "org-1",
                "availability": Availability.AVAILABLE,
                "skills": frozenset({"electrical"}),
            },
            Exclusion.NO_FIX,
        ),
        (
            {
                "org_id": "org-1",
                "availability": Availability.AVAILABLE,
                "skills": frozenset({"electrical"}),
                "fix": Fix(lat=52.5, lng=13.4, accuracy_m=None, at=NOW - MAX_AGE - 1.0),
            },
            Exclusion.STALE_FIX,
        ),
        (
            {
                "org_id": "org-1",
                "availability": Availability.AVAILABLE,
                "skills": frozenset({"electrical"}),
                "fix": Fix(lat=52.5, lng=13.4, accuracy_m=None, at=NOW),
            },
            Exclusion.ALREADY_OFFERED,
        ),
    ],
    ids=["org", "availability", "skills", "no-fix", "stale-fix", "already-offered"],
)
def test_explain_returns_first_failing_reason_in_order(
    fix: dict[str, object], expected: Exclusion
) -> None:
    """explain() reports the first failing rule: org, availability, skills, fix, offered."""
    worker = replace(_failing_everything(), **fix)  # type: ignore[arg-type]
    everyone = frozenset({worker.id})
    assert explain(worker, make_job(), ctx(already_offered=everyone)) is expected


def test_default_rule_order() -> None:
    """The default rules run organisation, availability, skills, fix, then already-offered."""
    assert [rule.__name__ for rule in DEFAULT_RULES] == [
        "same_organisation",
        "available",
        "holds_skills",
        "fresh_fix",
        "not_yet_offered",
    ]


def test_custom_rules_replace_defaults() -> None:
    """Passing rules= runs only those rules, so an empty list admits anyone."""
    worker = _failing_everything()
    assert explain(worker, make_job(), ctx(), rules=()) is None
    assert is_eligible(worker, make_job(), ctx(), rules=())


def test_a_decline_is_told_apart_from_another_earlier_offer() -> None:
    """A worker who declined is left out as ``declined``, one offered before otherwise as
    ``already_offered``."""
    worker = make_worker()
    offered = frozenset({worker.id})
    declined = MatchContext(NOW, MAX_AGE, offered, declined=offered)
    assert explain(worker, make_job(), declined) is Exclusion.DECLINED
    assert explain(worker, make_job(), ctx(already_offered=offered)) is Exclusion.ALREADY_OFFERED


def test_explain_at_adds_the_radius_after_the_rules() -> None:
    """Beyond the radius an eligible worker is ``out_of_radius``; a rule's reason comes first."""
    worker = make_worker()
    assert explain_at(worker, make_job(), ctx(), 2_000.0, 1_999.0) is Exclusion.OUT_OF_RADIUS
    assert explain_at(worker, make_job(), ctx(), 1_999.0, 1_999.0) is None
    busy = make_worker(availability=Availability.BUSY)
    assert explain_at(busy, make_job(), ctx(), 5_000.0, 1_000.0) is Exclusion.BUSY
