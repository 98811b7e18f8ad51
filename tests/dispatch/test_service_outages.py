"""An answer reports what was committed: Redis going away never turns a committed change
into an error, and what was committed is delivered once Redis is back.

Production backend on the module's PostgreSQL database and a Redis of the test's
own, stopped and started by the test (it comes back empty). Clock pinned.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from dispatch.effects import Effect
from dispatch.errors import Unavailable
from dispatch.models import Availability, JobState
from dispatch.service import OUTBOX_LEASE_S, DispatchService
from tests.dispatch.backends import Backend, ServiceEnv, open_backend
from tests.dispatch.own_redis import OwnRedis
from tests.dispatch.test_service_outbox import CONFIG, NEAR, SITE, Clock, kinds, on_duty

pytestmark = pytest.mark.services


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[OwnRedis]:
    server = OwnRedis(tmp_path / "redis.log")
    await server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
async def backend(services: ServiceEnv, own_redis: OwnRedis) -> AsyncIterator[Backend]:
    async with open_backend("production", services, own_redis.url) as opened:
        yield opened


async def availability(backend: Backend, worker_id: str) -> str:
    """The worker's availability as PostgreSQL has it (reading a worker also asks Redis)."""
    assert backend.production is not None
    found: str = await backend.production.pg.fetchval(
        "SELECT availability FROM workers WHERE id = $1", worker_id
    )
    return found


async def back_again(own_redis: OwnRedis, service: DispatchService, worker_id: str) -> None:
    """Restart Redis (empty) and let the phone report its position again, as phones do."""
    await own_redis.start()
    for _ in range(10):  # the first calls may meet pooled connections of the old server
        try:
            await service.report_location(worker_id, *NEAR)
            return
        except Unavailable:
            continue
    raise AssertionError("Redis did not come back")


async def test_a_job_posted_while_redis_is_away_is_answered_and_dispatched_later(
    backend: Backend, own_redis: OwnRedis
) -> None:
    """``post_job`` returns the stored job during the outage; its first wave goes out once
    Redis answers again."""
    clock = Clock()
    service = DispatchService(backend.stores, CONFIG, clock)
    org, _ = await service.create_org("City")
    worker = await on_duty(service, org.id, "Ann")
    own_redis.kill()
    job = await service.post_job(org.id, "Leak", *SITE)
    assert (await service.get_job(org.id, job.id)).job.state is JobState.OPEN
    await back_again(own_redis, service, worker)
    await service.run_due()
    assert (await service.get_job(org.id, job.id)).job.wave == 1
    assert await kinds(backend.stores, worker) == ["offer"]


async def test_a_job_whose_offers_were_committed_as_redis_went_away_is_answered(
    backend: Backend, own_redis: OwnRedis
) -> None:
    """Redis gone between the wave's commit and its delivery: ``post_job`` still returns the
    job, and the sweeper delivers the offer once Redis is back."""
    clock = Clock()

    async def redis_dies(effects: Sequence[Effect]) -> None:
        own_redis.kill()

    service = DispatchService(backend.stores, CONFIG, clock, after_commit=redis_dies)
    plain = DispatchService(backend.stores, CONFIG, clock)
    org, _ = await plain.create_org("City")
    worker = await on_duty(plain, org.id, "Ann")
    job = await service.post_job(org.id, "Leak", *SITE)
    assert job.wave == 1
    await back_again(own_redis, plain, worker)
    clock.now += OUTBOX_LEASE_S
    await plain.sweep_outbox()
    assert await kinds(backend.stores, worker) == ["offer"]


async def test_a_cancel_while_redis_is_away_answers_the_cancelled_job_and_frees_the_worker(
    backend: Backend, own_redis: OwnRedis
) -> None:
    """``cancel_job`` returns the cancelled job and the worker is available at once; the phone
    hears of it once Redis is back (no 503, so no retry that would get 409)."""
    clock = Clock()
    service = DispatchService(backend.stores, CONFIG, clock)
    org, _ = await service.create_org("City")
    worker = await on_duty(service, org.id, "Ann")
    job = await service.post_job(org.id, "Leak", *SITE)
    (offer,) = await backend.stores.jobs.pending_offers_of(worker)
    await service.accept(worker, offer.id)
    own_redis.kill()
    cancelled = await service.cancel_job(org.id, job.id, "duplicate")
    assert cancelled.state is JobState.CANCELLED
    assert await availability(backend, worker) == Availability.AVAILABLE
    await back_again(own_redis, service, worker)
    clock.now += OUTBOX_LEASE_S
    await service.sweep_outbox()
    assert await kinds(backend.stores, worker) == ["job_cancelled"]


async def test_an_accept_that_wins_while_redis_is_away_returns_its_assignment(
    backend: Backend, own_redis: OwnRedis
) -> None:
    """The winner gets its assignment, not ``unavailable``; once Redis is back the other holder
    hears ``taken`` and the winner's other pending offer is withdrawn."""
    clock = Clock()
    service = DispatchService(backend.stores, CONFIG, clock)
    org, _ = await service.create_org("City")
    ann = await on_duty(service, org.id, "Ann")
    bob = await on_duty(service, org.id, "Bob")
    job = await service.post_job(org.id, "Leak", *SITE)
    other = await service.post_job(org.id, "Second leak", *SITE)
    mine = {o.job_id: o for o in await backend.stores.jobs.pending_offers_of(ann)}
    own_redis.kill()
    won = await service.accept(ann, mine[job.id].id)
    assert (won.job_id, won.worker_id) == (job.id, ann)
    assert (await service.get_job(org.id, job.id)).job.state is JobState.ASSIGNED
    await back_again(own_redis, service, bob)
    clock.now += OUTBOX_LEASE_S
    await service.sweep_outbox()
    assert await kinds(backend.stores, ann) == ["assigned", "offer_closed"]
    assert await kinds(backend.stores, bob) == ["offer_closed"]
    (closed,) = await backend.stores.feed.replay(bob, 0)
    assert closed.notice["reason"] == "taken"
    assert [o.job_id for o in await backend.stores.jobs.pending_offers_of(ann)] == []
    assert [o.job_id for o in await backend.stores.jobs.pending_offers_of(bob)] == [other.id]


async def test_a_job_completed_while_redis_is_away_frees_the_worker_and_answers(
    backend: Backend, own_redis: OwnRedis
) -> None:
    """The completion is answered as committed and the worker is available at once (not left
    busy); once Redis is back and the phone reports, new work reaches them."""
    clock = Clock()
    service = DispatchService(backend.stores, CONFIG, clock)
    org, _ = await service.create_org("City")
    worker = await on_duty(service, org.id, "Ann")
    job = await service.post_job(org.id, "Leak", *SITE)
    (offer,) = await backend.stores.jobs.pending_offers_of(worker)
    await service.accept(worker, offer.id)
    await service.progress(worker, job.id, JobState.EN_ROUTE)
    await service.progress(worker, job.id, JobState.ON_SITE)
    own_redis.kill()
    done = await service.progress(worker, job.id, JobState.COMPLETED)
    assert done.state is JobState.COMPLETED
    assert await availability(backend, worker) == Availability.AVAILABLE
    await back_again(own_redis, service, worker)
    clock.now += OUTBOX_LEASE_S
    await service.sweep_outbox()
    await service.post_job(org.id, "Next leak", *SITE)
    assert await kinds(backend.stores, worker) == ["offer"]
