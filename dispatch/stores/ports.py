"""The ports the dispatch service needs, as ``typing.Protocol`` classes.

Every backend (``memory``, ``postgres``, ``redis``) implements the same ports
and passes the same contract tests. Rules every implementation keeps:

* Lookups that take an ``org_id`` only ever see that organisation's records;
  another tenant's id is simply not found (``None``).
* ``JobStore.transaction`` holds the job exclusively until the block ends —
  across instances for a shared backend — and persists the book (job, new and
  changed offers, appended events, and ``book.effects`` into the outbox) when
  the block exits normally, together with whatever the same task wrote
  through the other stores of the backend inside the block where the backend
  can (PostgreSQL: a worker's availability); on an exception nothing of the
  block is kept. It sets ``book.backlog`` when the outbox still holds
  effects of the job written by an earlier transaction.
* ``Outbox`` hands out a committed effect to a sweeper only once its lease
  (``Effect.due_at``) has passed, and to concurrent sweepers disjoint sets.
* ``WorkerStore.claim`` is an atomic compare-and-set: of any number of
  concurrent claims of one available worker exactly one returns True.
* ``WorkerFeed.publish`` with a ``key`` appends a notice at most once per key
  among the worker's recent notices (at least the last ``log_size``
  published); a repeat returns the first one's seq.
* ``WorkerFeed.publish`` records a notice durably (a capped, ordered per-worker
  log with sequence numbers) before waking the socket holder; a notice is
  never only in flight. Within a log, numbers go up by one; a new log — also
  one that replaces a log the backend lost — starts from the clock in
  microseconds, so it always continues above any number handed out before.
* Consumers call ``WorkerFeed.listen`` first, then ``replay``, and drop
  notices whose ``seq`` they already delivered: ``listen`` delivers every
  notice published after it is live, so nothing falls between the two.
* Raise ``dispatch.errors.Unavailable`` when the backing service cannot be
  reached.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from ..effects import Effect
from ..listing import JobQuery, ListedJob, Page, WorkerQuery
from ..models import Availability, Dispatcher, Fix, Job, JobEvent, Offer, Organisation, Worker
from ..offers import JobBook
from ..open311.models import ClientKey, ServiceDefinition, ServiceRequest

Notice = Mapping[str, Any]
"""A JSON-ready message for one worker (``type`` plus fields)."""


@dataclass(frozen=True, slots=True)
class Nearby:
    """A hit from a location query: who, how far, and where."""

    key: str
    distance_m: float
    lat: float
    lng: float


@dataclass(frozen=True, slots=True)
class LoggedNotice:
    """A notice with its place in the worker's log."""

    seq: int
    notice: Notice


class OrgStore(Protocol):
    """Organisations and their API keys (stored hashed)."""

    async def add_org(self, org: Organisation, key_hash: str) -> None: ...

    async def org_by_key(self, key_hash: str) -> Organisation | None: ...

    async def get_org(self, org_id: str) -> Organisation | None: ...


class WorkerStore(Protocol):
    """Workers, their device tokens (hashed), availability and last fix."""

    async def add_worker(self, worker: Worker, token_hash: str) -> None: ...

    async def worker_by_token(self, token_hash: str) -> Worker | None: ...

    async def get_worker(self, org_id: str, worker_id: str) -> Worker | None: ...

    async def get_workers(self, worker_ids: Sequence[str]) -> dict[str, Worker]:
        """The workers that exist among ``worker_ids`` (any organisation)."""
        ...

    def set_fix(self, org_id: str, worker_id: str, fix: Fix) -> Awaitable[None]:
        """Record the worker's last fix; ``org_id`` must be the worker's own organisation.

        A store may submit the write when called and let the awaitable only
        wait for it, so a caller can start further writes (an index move)
        before awaiting it, and they share one round trip. Always await it.
        """
        ...

    def forget_fix(self, org_id: str, worker_id: str) -> Awaitable[None]:
        """Delete the worker's last fix (they went off duty); nothing of it is kept.

        Ordered after every ``set_fix`` of the worker submitted before it, so a
        fix still on its way cannot outlive the delete. Always await it.
        """
        ...

    async def set_availability(self, worker_id: str, availability: Availability) -> None: ...

    async def claim(self, worker_id: str) -> bool:
        """Atomically move an available worker to busy; False if not available."""
        ...


class JobStore(Protocol):
    """Jobs, offers and the append-only job event log."""

    async def add_job(self, job: Job, event: JobEvent) -> None: ...

    async def get_job(self, org_id: str, job_id: str) -> Job | None: ...

    async def get_jobs(self, org_id: str, job_ids: Sequence[str]) -> dict[str, Job]:
        """The organisation's jobs among ``job_ids``, by id (one read for a list view)."""
        ...

    async def history(self, org_id: str, job_id: str) -> list[JobEvent]: ...

    def transaction(self, job_id: str) -> AbstractAsyncContextManager[JobBook]:
        """Hold the job exclusively and yield its book; persist it on normal exit.

        Raises ``NotFound`` if the job does not exist.
        """
        ...

    async def job_of_offer(self, offer_id: str) -> str | None: ...

    async def pending_offers_of(self, worker_id: str) -> list[Offer]: ...

    async def active_job_of(self, worker_id: str) -> Job | None:
        """The job the worker is assigned to and still working, if any."""
        ...

    async def due(self, now: float, limit: int) -> list[str]:
        """Ids of open jobs whose wave deadline is at or before ``now``."""
        ...

    async def next_deadline(self) -> float | None: ...

    async def open_jobs_near(
        self, org_id: str, lat: float, lng: float, radius_m: float
    ) -> list[Nearby]:
        """Open jobs of the organisation within ``radius_m``, nearest first."""
        ...

    async def has_open_jobs(self, org_id: str) -> bool:
        """Whether the organisation has any open job at all (a cheap check)."""
        ...


class DispatcherStore(Protocol):
    """An organisation's dispatchers and their tokens (stored hashed)."""

    async def add_dispatcher(self, dispatcher: Dispatcher, token_hash: str) -> None: ...

    async def dispatcher_by_token(self, token_hash: str) -> Dispatcher | None:
        """The dispatcher owning the token, unless revoked."""
        ...

    async def dispatchers(self, org_id: str) -> list[Dispatcher]:
        """The organisation's dispatchers, revoked ones too, oldest first."""
        ...

    async def revoke(self, org_id: str, dispatcher_id: str, at: float) -> Dispatcher | None:
        """Revoke the token (once: a second revoke keeps the first time); None if not found."""
        ...


class Listings(Protocol):
    """The lists a dispatcher reads (``dispatch.listing``: filters and keyset pages)."""

    async def workers(self, org_id: str, query: WorkerQuery) -> Page[Worker]:
        """A page of the organisation's workers matching ``query``, by id (read-only)."""
        ...

    async def jobs(self, org_id: str, query: JobQuery) -> Page[ListedJob]:
        """A page of the organisation's jobs matching ``query``, by id, with pending offers."""
        ...

    async def offers_of(self, org_id: str, job_id: str) -> list[Offer]:
        """Every offer of the organisation's job, in the order they were made."""
        ...


class LocationIndex(Protocol):
    """Where every on-duty worker is, by H3 cell, per organisation."""

    async def upsert(self, org_id: str, worker_id: str, lat: float, lng: float) -> int:
        """Index the worker at ``(lat, lng)``; return the H3 cell it is now in."""
        ...

    async def remove(self, org_id: str, worker_id: str) -> None: ...

    async def nearest(
        self, org_id: str, lat: float, lng: float, k: int, max_radius_m: float
    ) -> list[Nearby]:
        """Up to ``k`` members within ``max_radius_m``, nearest first (ties: by key)."""
        ...


class WorkerFeed(Protocol):
    """Per-worker durable notice logs, and wake-ups for the socket holder."""

    async def publish(self, worker_id: str, notice: Notice, key: str | None = None) -> int:
        """Append ``notice`` to the worker's log; return its sequence number.

        With a ``key`` (an outbox effect's id) a notice already published under
        that key recently is not appended again: its seq is returned.
        """
        ...

    async def replay(self, worker_id: str, after_seq: int) -> list[LoggedNotice]:
        """Logged notices with ``seq > after_seq``, oldest first (what is still kept)."""
        ...

    def listen(
        self, worker_id: str, callback: Callable[[LoggedNotice], None]
    ) -> Callable[[], None]:
        """Call ``callback`` for each new notice of the worker; returns a stop function."""
        ...


class Outbox(Protocol):
    """Committed effects not yet delivered (written by ``JobStore.transaction``)."""

    async def delivered(self, effect_ids: Sequence[str]) -> None:
        """Forget these effects: they were delivered (unknown ids are ignored)."""
        ...

    async def of_job(self, job_id: str) -> list[Effect]:
        """Every effect of the job not yet delivered, in the order it was committed."""
        ...

    async def claim_due(self, now: float, lease_s: float, limit: int) -> list[Effect]:
        """Lease up to ``limit`` effects whose lease ended by ``now`` to the caller.

        Their lease is extended to ``now + lease_s``; oldest first; concurrent
        callers (on any instance) get disjoint sets.
        """
        ...

    async def backlog(self) -> tuple[int, float | None]:
        """How many effects wait, and the ``created_at`` of the oldest (None if none)."""
        ...


class Presence(Protocol):
    """Which instance holds which worker's socket, with a time to live."""

    async def claim(self, worker_id: str, instance_id: str, ttl_s: float) -> str | None:
        """Take the worker for ``instance_id``; return the previous holder, if any."""
        ...

    async def refresh(self, worker_id: str, instance_id: str, ttl_s: float) -> bool:
        """Extend the claim, retaking it if it expired; False once another holder has it."""
        ...

    async def claim_many(self, claims: Sequence[tuple[str, str]], ttl_s: float) -> list[str | None]:
        """``claim`` for each ``(worker_id, instance_id)``, in few round trips."""
        ...

    async def refresh_many(self, claims: Sequence[tuple[str, str]], ttl_s: float) -> list[bool]:
        """``refresh`` for each ``(worker_id, instance_id)``, in few round trips."""
        ...

    async def release(self, worker_id: str, instance_id: str) -> bool:
        """Drop the claim if ``instance_id`` still holds it."""
        ...

    async def holder(self, worker_id: str) -> str | None:
        """Who holds the worker's socket now, or None."""
        ...


class Open311Store(Protocol):
    """Open311 service definitions, client keys (hashed) and service requests.

    Rules beyond the module's: ``put_service`` replaces the definition of
    the same code wholesale; a revoked key is never found again by its hash;
    ``find_requests`` answers newest first.
    """

    async def put_service(self, service: ServiceDefinition) -> bool:
        """Store the definition; True if the code was new to the organisation."""
        ...

    async def get_service(self, org_id: str, code: str) -> ServiceDefinition | None: ...

    async def list_services(self, org_id: str) -> list[ServiceDefinition]:
        """The organisation's services, by code."""
        ...

    async def delete_service(self, org_id: str, code: str) -> bool: ...

    async def add_key(self, key: ClientKey, key_hash: str) -> None: ...

    async def key_by_hash(self, key_hash: str) -> ClientKey | None: ...

    async def revoke_key(self, org_id: str, key_id: str) -> bool:
        """Revoke the organisation's key; False if it has no such live key."""
        ...

    async def add_request(self, request: ServiceRequest) -> None: ...

    async def get_request(self, org_id: str, request_id: str) -> ServiceRequest | None: ...

    async def request_by_token(self, org_id: str, token: str) -> ServiceRequest | None: ...

    async def find_requests(
        self,
        org_id: str,
        *,
        ids: Sequence[str] | None = None,
        codes: Sequence[str] | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 1000,
    ) -> list[ServiceRequest]:
        """Requests by id (``ids`` ignores the other filters), or by service code and a
        ``requested_at`` window (both ends inclusive); newest first, at most ``limit``."""
        ...


@dataclass(frozen=True, slots=True)
class Stores:
    """One backend's full set of ports, as the service receives them."""

    orgs: OrgStore
    workers: WorkerStore
    jobs: JobStore
    locations: LocationIndex
    feed: WorkerFeed
    outbox: Outbox
    dispatchers: DispatcherStore
    lists: Listings
    open311: Open311Store | None = None
    """Open311 records; None in a backend built without them (the app adds memory ones)."""
