"""Errors raised by the dispatch domain.

Only ``mobile_api`` turns these into HTTP statuses and websocket error codes;
every error carries a stable machine-readable ``code``::

    DispatchError
    ├── NotFound                 the id does not exist in the caller's organisation
    ├── InvalidInput             a value breaks a domain rule (unknown skill format, …)
    ├── IllegalTransition        a job or offer cannot move from its current state
    ├── OfferClosed              the offer is no longer open (taken, expired, …)
    ├── NotEligible              the worker may not take this job right now
    └── Unavailable              a backing service cannot be reached (retry later)
"""

from __future__ import annotations


class DispatchError(Exception):
    """Root of the dispatch errors; ``code`` is stable and goes on the wire."""

    code = "dispatch_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(DispatchError):
    """The thing does not exist, or belongs to another organisation."""

    code = "not_found"

    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"{kind} {ident!r} not found")
        self.kind = kind
        self.ident = ident


class InvalidInput(DispatchError):
    """A value is well-formed on the wire but breaks a domain rule."""

    code = "invalid_input"


class IllegalTransition(DispatchError):
    """A state machine was asked for a move its table does not allow."""

    code = "illegal_transition"

    def __init__(self, what: str, current: str, target: str) -> None:
        super().__init__(f"{what} is {current}; it cannot become {target}")
        self.what = what
        self.current = current
        self.target = target


class OfferClosed(DispatchError):
    """The offer cannot be answered any more; ``reason`` says why."""

    code = "offer_closed"

    def __init__(self, offer_id: str, reason: str) -> None:
        super().__init__(f"offer {offer_id} is closed ({reason})")
        self.offer_id = offer_id
        self.reason = reason


class NotEligible(DispatchError):
    """The worker may not do that now (busy, off duty, holding a job, skills …).

    ``job_id`` names the job that stands in the way, when one does (the
    worker's active job when they try to go off duty). ``reason``, when
    given, is the matching rule's machine-readable reason (a
    ``matching.Exclusion`` value) and goes on the wire beside the code.
    """

    code = "not_eligible"

    def __init__(
        self, message: str, job_id: str | None = None, *, reason: str | None = None
    ) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.reason = reason


class Unavailable(DispatchError):
    """A backing service (database, Redis) is unreachable; try again later."""

    code = "unavailable"
