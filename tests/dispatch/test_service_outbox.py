"""The service's outbox: what a transaction committed is delivered, also when its instance dies.

A "crash" is the service's ``after_commit`` fault point raising a
``BaseException`` after the commit and before delivery: the caller's task
ends there, as it would if the process died. A second service on the same
backend (another instance) then sweeps. The clock is pinned and moved by
hand past the lease.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from dispatch.config import DispatchConfig
from dispatch.effects import Effect
from dispatch.models import Availability, JobState, WorkerKind
from dispatch.service import OUTBOX_LEASE_S, DispatchService
from dispatch.stores.ports import Stores
from tests.dispatch.backends import Backend

SITE = (45.7640, 4.8357)
NEAR = (45.7650, 4.8357)  # ~110 m north
CONFIG = DispatchConfig(wave_size=5, offer_timeout_s=600.0, radii_m=(1000.0,))


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class Crash(BaseException):
    """The instance died right after a commit."""


class FaultPoint:
    """An ``after_commit`` hook that crashes once it is armed."""

    def __init__(self) -> None:
        self.armed = False
        self.seen: list[Effect] = []

    async def __call__(self, effects: Sequence[Effect]) -> None:
        if self.armed:
            self.armed = False
            self.seen = list(effects)
            raise Crash


async def instances(backend: Backend) -> tuple[DispatchService, DispatchService, FaultPoint, Clock]:
    """Two services on one backend: the first has a fault point, the second is a survivor."""
    clock = Clock()
    fault = FaultPoint()
    doomed = DispatchService(backend.stores, CONFIG, clock, after_commit=fault)
    survivor = DispatchService(await backend.twin(), CONFIG, clock)
    return doomed, survivor, fault, clock


async def on_duty(service: DispatchService, org_id: str, name: str) -> str:
    """A worker available ~110 m from the site; returns the id."""
    worker, _ = await service.create_worker(org_id, name, WorkerKind.EMPLOYEE, [])
    await service.set_status(worker.id, Availability.AVAILABLE)
    await service.report_location(worker.id, *NEAR)
    return worker.id


async def kinds(stores: Stores, worker_id: str) -> list[str]:
    """The types of the notices in the worker's log, oldest first."""
    return [str(e.notice["type"]) for e in await stores.feed.replay(worker_id, 0)]


async def test_offers_committed_by_an_instance_that_died_reach_the_phones_once(
    backend: Backend,
) -> None:
    """A wave committed just before its instance died is delivered by another's sweeper,
    after the lease and exactly once."""
    doomed, survivor, fault, clock = await instances(backend)
    org, _ = await doomed.create_org("City")
    worker = await on_duty(doomed, org.id, "Ann")
    await doomed.relay.flush()  # what it delivered so far is gone from the outbox
    fault.armed = True
    with pytest.raises(Crash):
        await doomed.post_job(org.id, "Leak", *SITE)
    assert [e.payload["type"] for e in fault.seen] == ["offer"]
    assert await kinds(backend.stores, worker) == []
    assert await survivor.sweep_outbox() == 0, "the lease is the committer's"
    clock.now += OUTBOX_LEASE_S
    assert await survivor.sweep_outbox() == 1
    assert await kinds(backend.stores, worker) == ["offer"]
    clock.now += OUTBOX_LEASE_S
    assert await survivor.sweep_outbox() == 0
    assert await kinds(backend.stores, worker) == ["offer"]


async def test_a_cancel_committed_by_an_instance_that_died_frees_the_worker_at_once(
    backend: Backend,
) -> None:
    """The worker of a job cancelled just before its instance died is available right away;
    the sweeper tells the phone, in order, and puts the worker back on the map."""
    doomed, survivor, fault, clock = await instances(backend)
    org, _ = await doomed.create_org("City")
    worker = await on_duty(doomed, org.id, "Ann")
    job = await doomed.post_job(org.id, "Leak", *SITE)
    (offer,) = await backend.stores.jobs.pending_offers_of(worker)
    await doomed.accept(worker, offer.id)
    assert (await doomed.get_worker(org.id, worker)).availability is Availability.BUSY
    await doomed.relay.flush()  # what it delivered so far is gone from the outbox
    fault.armed = True
    with pytest.raises(Crash):
        await doomed.cancel_job(org.id, job.id, "duplicate")
    assert (await survivor.get_worker(org.id, worker)).availability is Availability.AVAILABLE
    assert await backend.stores.locations.nearest(org.id, *SITE, 1, 1000.0) == []
    clock.now += OUTBOX_LEASE_S
    assert await survivor.sweep_outbox() == 2
    log = await backend.stores.feed.replay(worker, 0)
    assert [e.notice["type"] for e in log] == ["offer", "assigned", "job_cancelled"]
    assert [e.seq - log[0].seq for e in log] == [0, 1, 2]
    (back,) = await backend.stores.locations.nearest(org.id, *SITE, 1, 1000.0)
    assert back.key == worker
    await survivor.post_job(org.id, "Another leak", *SITE)
    assert await kinds(backend.stores, worker) == ["offer", "assigned", "job_cancelled", "offer"]


async def test_a_later_change_of_the_job_delivers_what_a_dead_instance_owed_first(
    backend: Backend,
) -> None:
    """Effects of one job reach each phone in commit order, even when the first of two
    transactions died before delivery and the second is delivered at once."""
    doomed, survivor, fault, _ = await instances(backend)
    org, _ = await doomed.create_org("City")
    ann = await on_duty(doomed, org.id, "Ann")
    bob = await on_duty(doomed, org.id, "Bob")
    await doomed.relay.flush()  # what it delivered so far is gone from the outbox
    fault.armed = True
    with pytest.raises(Crash):
        await doomed.post_job(org.id, "Leak", *SITE)
    (offer,) = await backend.stores.jobs.pending_offers_of(ann)
    await survivor.accept(ann, offer.id)
    assert await kinds(backend.stores, ann) == ["offer", "assigned"]
    assert await kinds(backend.stores, bob) == ["offer", "offer_closed"]
    await survivor.relay.flush()
    assert await backend.stores.outbox.of_job(offer.job_id) == []


async def test_completing_a_job_frees_the_worker_in_its_own_transaction(
    backend: Backend,
) -> None:
    """A completion whose delivery never happened still leaves the worker available, and
    the sweeper offers them the open work in reach."""
    doomed, survivor, fault, clock = await instances(backend)
    org, _ = await doomed.create_org("City")
    worker = await on_duty(doomed, org.id, "Ann")
    job = await doomed.post_job(org.id, "Leak", *SITE)
    (offer,) = await backend.stores.jobs.pending_offers_of(worker)
    await doomed.accept(worker, offer.id)
    await doomed.progress(worker, job.id, JobState.EN_ROUTE)
    await doomed.progress(worker, job.id, JobState.ON_SITE)
    await on_duty(survivor, org.id, "Bob")  # keeps the next job's wave out, never answers
    other = await survivor.post_job(org.id, "Second leak", *SITE)
    await doomed.relay.flush()  # what it delivered so far is gone from the outbox
    fault.armed = True
    with pytest.raises(Crash):
        await doomed.progress(worker, job.id, JobState.COMPLETED)
    assert (await survivor.get_worker(org.id, worker)).availability is Availability.AVAILABLE
    clock.now += OUTBOX_LEASE_S
    await survivor.sweep_outbox()
    (offered,) = await backend.stores.jobs.pending_offers_of(worker)
    assert offered.job_id == other.id
