"""Who may be offered a job: small pure rules that say why a worker is left out.

A rule takes ``(worker, job, context)`` and returns ``None`` when the worker
passes or an ``Exclusion`` naming why not. ``explain`` runs the rules in order
and returns the first exclusion; ``is_eligible`` is its boolean form (the hot
path: the rules return enum members and allocate nothing). Distance is not a
rule here: the location index applies the radius while dispatching, and
``explain_at`` adds ``OUT_OF_RADIUS`` for callers that look further (the
dispatcher's candidate list).

Callers must pass the current time in ``MatchContext.now``, the ids of the
workers already offered this job in ``MatchContext.already_offered`` and,
where they want a decline told apart from another earlier offer, the ids of
those who declined in ``MatchContext.declined``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from .models import Availability, Job, Worker


class Exclusion(StrEnum):
    """Why a worker is not offered a job."""

    OTHER_ORGANISATION = "other_organisation"
    BUSY = "busy"
    """Working a job (or claimed for one)."""
    OFF_DUTY = "off_duty"
    MISSING_SKILLS = "missing_skills"
    NO_FIX = "no_fix"
    STALE_FIX = "stale_fix"
    DECLINED = "declined"
    """The worker said no to this job already."""
    ALREADY_OFFERED = "already_offered"
    """Offered this job before (pending, expired, withdrawn, …): never twice."""
    OUT_OF_RADIUS = "out_of_radius"
    """Further than the wave reaches (``explain_at`` only)."""


@dataclass(frozen=True, slots=True)
class MatchContext:
    """What the rules need besides the worker and the job."""

    now: float
    fix_max_age_s: float
    already_offered: frozenset[str] = field(default_factory=frozenset)
    declined: frozenset[str] = field(default_factory=frozenset)
    """Of ``already_offered``, those who declined (reported as ``DECLINED``)."""


Rule = Callable[[Worker, Job, MatchContext], Exclusion | None]


def same_organisation(worker: Worker, job: Job, ctx: MatchContext) -> Exclusion | None:
    """Work is only offered inside the job's organisation."""
    return None if worker.org_id == job.org_id else Exclusion.OTHER_ORGANISATION


def available(worker: Worker, job: Job, ctx: MatchContext) -> Exclusion | None:
    """Busy and off-duty workers get no offers."""
    status = worker.availability
    if status is Availability.AVAILABLE:
        return None
    return Exclusion.BUSY if status is Availability.BUSY else Exclusion.OFF_DUTY


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
    if worker.id not in ctx.already_offered:
        return None
    return Exclusion.DECLINED if worker.id in ctx.declined else Exclusion.ALREADY_OFFERED


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


def explain_at(
    worker: Worker,
    job: Job,
    ctx: MatchContext,
    distance_m: float,
    radius_m: float,
    rules: Sequence[Rule] = DEFAULT_RULES,
) -> Exclusion | None:
    """``explain``, then ``OUT_OF_RADIUS`` if the worker is further than ``radius_m``."""
    reason = explain(worker, job, ctx, rules)
    if reason is None and distance_m > radius_m:
        return Exclusion.OUT_OF_RADIUS
    return reason
