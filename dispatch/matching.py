"""Who may be offered a job: small pure rules that say why a worker is left out.

A rule takes ``(worker, job, context)`` and returns ``None`` when the worker
passes or an ``Exclusion`` naming why not. ``explain`` runs the rules in order
and returns the first exclusion; ``is_eligible`` is its boolean form. Distance
is not a rule here: the location index applies the radius.

Callers must pass the current time in ``MatchContext.now`` and the ids of the
workers already offered this job in ``MatchContext.already_offered``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from .models import Availability, Job, Worker


class Exclusion(StrEnum):
    """Why a worker is not offered a job."""

    OTHER_ORGANISATION = "other_organisation"
    NOT_AVAILABLE = "not_available"
    MISSING_SKILLS = "missing_skills"
    NO_FIX = "no_fix"
    STALE_FIX = "stale_fix"
    ALREADY_OFFERED = "already_offered"


@dataclass(frozen=True, slots=True)
class MatchContext:
    """What the rules need besides the worker and the job."""

    now: float
    fix_max_age_s: float
    already_offered: frozenset[str] = field(default_factory=frozenset)


Rule = Callable[[Worker, Job, MatchContext], Exclusion | None]


def same_organisation(worker: Worker, job: Job, ctx: MatchContext) -> Exclusion | None:
    """Work is only offered inside the job's organisation."""
    return None if worker.org_id == job.org_id else Exclusion.OTHER_ORGANISATION


def available(worker: Worker, job: Job, ctx: MatchContext) -> Exclusion | None:
    """Busy and off-duty workers get no offers."""
    return None if worker.availability is Availability.AVAILABLE else Exclusion.NOT_AVAILABLE


def holds_skills(worker: Worker, job: Job, ctx: MatchContext) -> Exclusion | None:
    """The worker must hold every skill the job requires."""
    return None if job.skills <= worker.skills else Exclusion.MISSING_SKILLS


def fresh_fix(worker: Worker, job: Job, ctx: MatchContext) -> Exclusion | None:
    """The worker's last position must exist and be recent enough to trust."""
    if worker.fix is None:
        return Exclusion.NO_FIX
    if ctx.now - worker.fix.at > ctx.fix_max_age_s:
        return Exclusion.STALE_FIX
    return None


def not_yet_offered(worker: Worker, job: Job, ctx: MatchContext) -> Exclusion | None:
    """A worker is offered a job once; a decline or expiry is not re-offered."""
    return Exclusion.ALREADY_OFFERED if worker.id in ctx.already_offered else None


DEFAULT_RULES: Sequence[Rule] = (
    same_organisation,
    available,
    holds_skills,
    fresh_fix,
    not_yet_offered,
)


def explain(
    worker: Worker, job: Job, ctx: MatchContext, rules: Sequence[Rule] = DEFAULT_RULES
) -> Exclusion | None:
    """The first reason ``worker`` is left out of ``job``, or None if eligible."""
    for rule in rules:
        reason = rule(worker, job, ctx)
        if reason is not None:
            return reason
    return None


def is_eligible(
    worker: Worker, job: Job, ctx: MatchContext, rules: Sequence[Rule] = DEFAULT_RULES
) -> bool:
    """True when no rule excludes ``worker`` from ``job``."""
    return explain(worker, job, ctx, rules) is None
