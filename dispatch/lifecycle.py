"""The job and offer state machines, each as one transition table.

``advance_job(job, target, now)`` and ``close_offer(offer, target, now)`` are
the only ways a state changes; an illegal move raises ``IllegalTransition``
naming the current state and leaves the record untouched.
"""

from __future__ import annotations

from collections.abc import Mapping

from .errors import IllegalTransition
from .models import Job, JobState, Offer, OfferState

JOB_TRANSITIONS: Mapping[JobState, frozenset[JobState]] = {
    JobState.OPEN: frozenset({JobState.ASSIGNED, JobState.CANCELLED, JobState.UNFILLED}),
    JobState.ASSIGNED: frozenset(
        {JobState.EN_ROUTE, JobState.ON_SITE, JobState.CANCELLED, JobState.OPEN}
    ),
    JobState.EN_ROUTE: frozenset({JobState.ON_SITE, JobState.CANCELLED, JobState.OPEN}),
    JobState.ON_SITE: frozenset({JobState.COMPLETED, JobState.CANCELLED}),
    JobState.COMPLETED: frozenset(),
    JobState.CANCELLED: frozenset(),
    JobState.UNFILLED: frozenset({JobState.OPEN, JobState.CANCELLED}),
}
"""Legal job moves. A worker may go straight from assigned to on_site (the
job was next door); a worker who has not arrived yet may hand the job back
(assigned or en_route → open, a release); completed and cancelled are final.
An unfilled job waits for a dispatcher: only a re-offer or a direct
assignment opens it again, and it can be cancelled (the work order is
withdrawn, or a city closes a request nobody could take)."""

OFFER_TRANSITIONS: Mapping[OfferState, frozenset[OfferState]] = {
    OfferState.PENDING: frozenset(
        {
            OfferState.ACCEPTED,
            OfferState.DECLINED,
            OfferState.EXPIRED,
            OfferState.TAKEN,
            OfferState.CANCELLED,
            OfferState.WITHDRAWN,
        }
    ),
    **{state: frozenset() for state in OfferState if state is not OfferState.PENDING},
}
"""Legal offer moves: only a pending offer changes, and only once."""

ACTIVE_JOB_STATES = frozenset({JobState.ASSIGNED, JobState.EN_ROUTE, JobState.ON_SITE})
"""States in which a worker is working the job."""

FINAL_JOB_STATES = frozenset(s for s, nxt in JOB_TRANSITIONS.items() if not nxt)


def can_advance(current: JobState, target: JobState) -> bool:
    """Whether the table allows ``current → target``."""
    return target in JOB_TRANSITIONS[current]


def advance_job(job: Job, target: JobState, now: float) -> None:
    """Move ``job`` to ``target`` or raise ``IllegalTransition`` (job unchanged)."""
    if target not in JOB_TRANSITIONS[job.state]:
        raise IllegalTransition(f"job {job.id}", job.state.value, target.value)
    job.state = target
    job.updated_at = now
    job.version += 1


def close_offer(offer: Offer, target: OfferState, now: float) -> None:
    """Move a pending ``offer`` to a final ``target`` or raise ``IllegalTransition``."""
    if target not in OFFER_TRANSITIONS[offer.state]:
        raise IllegalTransition(f"offer {offer.id}", offer.state.value, target.value)
    offer.state = target
    offer.closed_at = now
