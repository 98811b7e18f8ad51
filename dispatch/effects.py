"""Effects: what a committed state change must still cause, as outbox entries.

A job transaction writes its effects in the same transaction as the change
(``JobBook.effects``); after the commit they are delivered, at least once, by
the instance that committed or — if it died first — by any instance's sweeper
(decision 0005). Pure: nothing here performs an effect.

The kinds (``target`` is always a worker id):

=============  ===============================================================
``notice``     ``payload`` is the notice for the worker's phone; delivery
               publishes it to the worker's feed under the effect's id, so a
               second delivery is not appended again.
``freed``      the worker's job ended and the worker is ``available`` again
               (written in the same transaction); delivery puts the worker's
               last fix back into the location index and offers open jobs in
               reach. ``payload``: ``{"org_id": …}``.
``taken``      the worker won a job and is ``busy`` (claimed in the same
               transaction); delivery takes the worker out of the location
               index and withdraws their other pending offers.
               ``payload``: ``{"org_id": …}``.
=============  ===============================================================

Rules for deliverers: deliver one job's effects in the order they were
written and each one only after the ones before it succeeded; every kind is
safe to deliver twice (``freed`` and ``taken`` act only while the worker's
availability still says so). Later kinds (webhook events, map-feed changes)
are added here with their deliverer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .models import Job, JobState
from .notices import assigned_notice, job_cancelled_notice, offer_closed_notice, offer_notice
from .offers import CLOSE_REASONS, Outcome

__all__ = ["Effect", "EffectKind", "effects_of"]


class EffectKind(StrEnum):
    """What delivering an effect does; see the module docstring."""

    NOTICE = "notice"
    FREED = "freed"
    TAKEN = "taken"


@dataclass(frozen=True, slots=True)
class Effect:
    """One outbox entry.

    ``id`` is unique (it is also the feed's de-duplication key); ``job_id``
    names the job whose transaction wrote it (effects of one job are
    delivered in commit order); ``due_at`` ends the lease of the instance that
    committed it: until then that instance delivers it, after that any
    instance's sweeper may.
    """

    id: str
    kind: EffectKind
    target: str
    payload: Mapping[str, Any]
    job_id: str | None
    created_at: float
    due_at: float


def effects_of(
    job: Job,
    out: Outcome,
    new_id: Callable[[], str],
    now: float,
    lease_s: float,
) -> list[Effect]:
    """The effects of one transaction's outcome on ``job``, in delivery order.

    Each worker's notices first (offers sent, offers closed, the assignment,
    ``job_cancelled`` for the worker of a cancelled job), then ``taken`` for
    the winner of an accept and ``freed`` for a worker whose job ended, so a
    phone hears it is free before it is offered new work.
    """
    made: list[Effect] = []

    def add(kind: EffectKind, target: str, payload: Mapping[str, Any]) -> None:
        made.append(Effect(new_id(), kind, target, payload, job.id, now, now + lease_s))

    for offer in out.sent:
        add(EffectKind.NOTICE, offer.worker_id, offer_notice(offer, job))
    for offer in out.closed:
        reason = CLOSE_REASONS[offer.state]
        add(EffectKind.NOTICE, offer.worker_id, offer_closed_notice(offer.id, job.id, reason))
    if out.assignment is not None:
        a = out.assignment
        add(EffectKind.NOTICE, a.worker_id, assigned_notice(a.offer_id, a.job_id))
    freed = out.released_worker
    if freed is not None and job.state is JobState.CANCELLED:
        add(EffectKind.NOTICE, freed, job_cancelled_notice(job.id, _cancel_reason(out)))
    if out.assignment is not None:
        add(EffectKind.TAKEN, out.assignment.worker_id, {"org_id": job.org_id})
    if freed is not None:
        add(EffectKind.FREED, freed, {"org_id": job.org_id})
    return made


def _cancel_reason(out: Outcome) -> str:
    """The reason the outcome's ``cancelled`` event recorded ('' if none)."""
    for event in out.events:
        if event.kind == "cancelled":
            return str(event.data.get("reason", ""))
    return ""
