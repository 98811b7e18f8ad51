"""Store contract, jobs: transactions, offers, the event log, deadlines, nearby jobs."""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace

import pytest

from dispatch.config import DispatchConfig
from dispatch.errors import NotEligible, NotFound, OfferClosed
from dispatch.models import Availability, Fix, JobEvent, JobState, Offer, OfferState
from dispatch.offers import JobBook
from dispatch.service import DispatchService
from dispatch.stores.ports import Stores
from geo import haversine_m
from tests.dispatch.backends import (
    Backend,
    add_job,
    add_org,
    add_worker,
    new_id,
)


def offer_for(book: JobBook, worker_id: str, expires_at: float = 260.0) -> Offer:
    """A pending wave-1 offer of the book's job to ``worker_id``."""
    job = book.job
    return Offer(new_id("off"), job.org_id, job.id, worker_id, 1, 120.5, 230.0, expires_at)


def event(book: JobBook, kind: str, at: float = 230.0, **data: object) -> JobEvent:
    """An event of the book's job."""
    return JobEvent(book.job.id, book.job.org_id, at, kind, data)


async def set_deadline(stores: Stores, job_id: str, deadline: float | None) -> None:
    """Put the job's wave out with ``deadline``."""
    async with stores.jobs.transaction(job_id) as book:
        book.job.wave = 1
        book.job.wave_deadline = deadline
        book.job.version += 1


async def test_job_round_trip(backend: Backend) -> None:
    """A stored job comes back field for field, with its ``created`` event as seq 1."""
    stores = backend.stores
    org = await add_org(stores)
    job = await add_job(stores, org.id)
    assert await stores.jobs.get_job(org.id, job.id) == job
    history = await stores.jobs.history(org.id, job.id)
    assert [(e.seq, e.kind, dict(e.data)) for e in history] == [(1, "created", {"by": "test"})]
    assert history[0].job_id == job.id
    assert history[0].org_id == org.id
    assert history[0].at == 200.0


async def test_job_lookup_is_tenant_scoped(backend: Backend) -> None:
    """Another organisation's job and its history are not found."""
    stores = backend.stores
    mine, theirs = await add_org(stores), await add_org(stores)
    job = await add_job(stores, theirs.id)
    assert await stores.jobs.get_job(mine.id, job.id) is None
    assert await stores.jobs.history(mine.id, job.id) == []
    assert await stores.jobs.get_job(mine.id, "job_missing") is None


async def test_transaction_persists_the_book(backend: Backend) -> None:
    """On normal exit the job, new and changed offers, and the events (seq 2, 3 …) are kept."""
    stores = backend.stores
    org = await add_org(stores)
    job = await add_job(stores, org.id)
    a, b = await add_worker(stores, org.id), await add_worker(stores, org.id)
    async with stores.jobs.transaction(job.id) as book:
        assert book.job == job
        assert book.offers == {}
        first, second = offer_for(book, a.id), offer_for(book, b.id)
        book.offers = {first.id: first, second.id: second}
        book.job.wave, book.job.wave_radius_m, book.job.wave_deadline = 1, 2000.0, 260.0
        book.job.version += 1
        book.log += [event(book, "wave", wave=1, offered=[a.id, b.id])]
    stored = await stores.jobs.get_job(org.id, job.id)
    assert stored == book.job
    assert await stores.jobs.job_of_offer(first.id) == job.id
    assert await stores.jobs.pending_offers_of(a.id) == [first]
    async with stores.jobs.transaction(job.id) as book:
        assert list(book.offers.values()) == [first, second]
        book.offers[first.id].state = OfferState.ACCEPTED
        book.offers[first.id].closed_at = 240.0
        book.offers[second.id].state = OfferState.TAKEN
        book.offers[second.id].closed_at = 240.0
        book.job.state, book.job.worker_id, book.job.wave_deadline = JobState.ASSIGNED, a.id, None
        book.job.version += 1
        book.log += [event(book, "assigned", 240.0, worker_id=a.id)]
    assert await stores.jobs.pending_offers_of(a.id) == []
    assert await stores.jobs.pending_offers_of(b.id) == []
    assert await stores.jobs.active_job_of(a.id) == book.job
    assert await stores.jobs.active_job_of(b.id) is None
    history = await stores.jobs.history(org.id, job.id)
    assert [(e.seq, e.kind) for e in history] == [(1, "created"), (2, "wave"), (3, "assigned")]
    assert dict(history[1].data) == {"wave": 1, "offered": [a.id, b.id]}


async def test_has_open_jobs_follows_the_jobs_state(backend: Backend) -> None:
    """``has_open_jobs`` is per organisation and turns false once no job is open."""
    stores = backend.stores
    org, other = await add_org(stores), await add_org(stores)
    assert await stores.jobs.has_open_jobs(org.id) is False
    job = await add_job(stores, org.id)
    assert await stores.jobs.has_open_jobs(org.id) is True
    assert await stores.jobs.has_open_jobs(other.id) is False
    async with stores.jobs.transaction(job.id) as book:
        book.job.state, book.job.wave_deadline = JobState.CANCELLED, None
        book.job.version += 1
        book.log += [event(book, "cancelled", 240.0)]
    assert await stores.jobs.has_open_jobs(org.id) is False


async def test_transaction_rolls_back_on_exception(backend: Backend) -> None:
    """When the block raises, nothing it did to the job, offers or log is kept."""
    stores = backend.stores
    org = await add_org(stores)
    job = await add_job(stores, org.id)
    worker = await add_worker(stores, org.id)
    offer_ids: list[str] = []

    async def fail_midway() -> None:
        async with stores.jobs.transaction(job.id) as book:
            offer = offer_for(book, worker.id)
            offer_ids.append(offer.id)
            book.offers[offer.id] = offer
            book.job.title = "changed"
            book.job.version += 1
            book.log.append(event(book, "wave"))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await fail_midway()
    (offer_id,) = offer_ids
    assert await stores.jobs.get_job(org.id, job.id) == job
    assert await stores.jobs.job_of_offer(offer_id) is None
    assert await stores.jobs.pending_offers_of(worker.id) == []
    assert [e.seq for e in await stores.jobs.history(org.id, job.id)] == [1]


async def test_transaction_on_a_missing_job_raises_not_found(backend: Backend) -> None:
    """Opening a transaction on an unknown job raises ``NotFound``."""
    with pytest.raises(NotFound):
        async with backend.stores.jobs.transaction("job_missing"):
            pytest.fail("the block must not run")


async def test_transactions_on_one_job_serialise_across_instances(backend: Backend) -> None:
    """Concurrent read-modify-write blocks on one job, from two instances, lose no update."""
    stores, twin = backend.stores, await backend.twin()
    org = await add_org(stores)
    job = await add_job(stores, org.id)

    async def bump(via: Stores) -> None:
        async with via.jobs.transaction(job.id) as book:
            seen = book.job.priority
            await asyncio.sleep(0.005)
            book.job.priority = seen + 1
            book.job.version += 1
            book.log.append(event(book, "bumped", priority=seen + 1))

    await asyncio.gather(*(bump(s) for _ in range(6) for s in (stores, twin)))
    stored = await stores.jobs.get_job(org.id, job.id)
    assert stored is not None
    assert stored.priority == job.priority + 12
    history = await stores.jobs.history(org.id, job.id)
    assert [e.seq for e in history] == list(range(1, 14))
    assert [e.data["priority"] for e in history[1:]] == list(range(3, 15))


async def test_due_lists_open_jobs_past_their_deadline_in_order(backend: Backend) -> None:
    """``due`` returns the open jobs whose deadline is at or before now, earliest first."""
    stores = backend.stores
    org = await add_org(stores)
    jobs = [await add_job(stores, org.id) for _ in range(5)]
    await set_deadline(stores, jobs[0].id, 300.0)
    await set_deadline(stores, jobs[1].id, 250.0)
    await set_deadline(stores, jobs[2].id, 400.0)
    await set_deadline(stores, jobs[3].id, None)
    async with stores.jobs.transaction(jobs[4].id) as book:  # closed: never due
        book.job.state, book.job.wave_deadline = JobState.UNFILLED, None
        book.job.version += 1
    assert await stores.jobs.next_deadline() == 250.0
    assert await stores.jobs.due(300.0, 10) == [jobs[1].id, jobs[0].id]


async def test_due_respects_its_limit(backend: Backend) -> None:
    """``due`` returns at most ``limit`` ids, the earliest deadlines first."""
    stores = backend.stores
    org = await add_org(stores)
    jobs = [await add_job(stores, org.id) for _ in range(3)]
    for i, job in enumerate(jobs):
        await set_deadline(stores, job.id, 300.0 - i)
    assert await stores.jobs.due(1000.0, 2) == [jobs[2].id, jobs[1].id]


async def test_next_deadline_is_none_without_waves(backend: Backend) -> None:
    """With no wave waiting on a deadline there is no next deadline and nothing is due."""
    stores = backend.stores
    org = await add_org(stores)
    await add_job(stores, org.id)
    assert await stores.jobs.next_deadline() is None
    assert await stores.jobs.due(10_000.0, 10) == []


async def test_open_jobs_near_is_exact(backend: Backend) -> None:
    """``open_jobs_near`` returns every open job of the org within the radius, nearest first."""
    stores = backend.stores
    rng = random.Random(7)
    org, other = await add_org(stores), await add_org(stores)
    center = (48.137, 11.575)
    placed: dict[str, tuple[float, float]] = {}
    for i in range(120):
        lat = center[0] + rng.uniform(-0.2, 0.2)
        lng = center[1] + rng.uniform(-0.3, 0.3)
        job = await add_job(stores, org.id, lat, lng)
        if i % 10 == 0:  # no longer open
            async with stores.jobs.transaction(job.id) as book:
                book.job.state = JobState.CANCELLED
                book.job.version += 1
        else:
            placed[job.id] = (lat, lng)
        await add_job(stores, other.id, lat, lng)
    for _ in range(12):
        qlat = center[0] + rng.uniform(-0.2, 0.2)
        qlng = center[1] + rng.uniform(-0.3, 0.3)
        radius = rng.choice([0.0, 500.0, 3_000.0, 12_000.0, 60_000.0])
        expected = sorted(
            (haversine_m(qlat, qlng, lat, lng), job_id)
            for job_id, (lat, lng) in placed.items()
            if haversine_m(qlat, qlng, lat, lng) <= radius
        )
        hits = await stores.jobs.open_jobs_near(org.id, qlat, qlng, radius)
        assert [(h.distance_m, h.key) for h in hits] == expected
        assert all((h.lat, h.lng) == placed[h.key] for h in hits)


@pytest.mark.parametrize(
    ("where", "query"),
    [
        ([(10.0, 179.9999), (10.0, -179.9999), (10.0, 179.9)], (10.0, 180.0)),
        ([(89.9999, 0.0), (89.9999, 180.0), (89.99, 90.0)], (90.0, 45.0)),
        ([(-89.99, -170.0), (-89.9, 10.0)], (-89.995, 20.0)),
    ],
    ids=["antimeridian", "north-pole", "south-pole"],
)
async def test_open_jobs_near_wraps_the_globe(
    backend: Backend, where: list[tuple[float, float]], query: tuple[float, float]
) -> None:
    """Jobs across the antimeridian and around the poles are found by distance, not by degrees."""
    stores = backend.stores
    org = await add_org(stores)
    ids = {(await add_job(stores, org.id, lat, lng)).id: (lat, lng) for lat, lng in where}
    radius = 2_000.0
    hits = await stores.jobs.open_jobs_near(org.id, query[0], query[1], radius)
    expected = sorted(
        (haversine_m(*query, lat, lng), job_id)
        for job_id, (lat, lng) in ids.items()
        if haversine_m(*query, lat, lng) <= radius
    )
    assert expected, "the scenario must have jobs in reach"
    assert [(h.distance_m, h.key) for h in hits] == expected


async def test_concurrent_accepts_from_two_instances_assign_once(backend: Backend) -> None:
    """Workers accepting one job through two service instances: exactly one is assigned."""
    stores, twin = backend.stores, await backend.twin()
    config = DispatchConfig(wave_size=6)
    now = 1_000.0
    first = DispatchService(stores, config, lambda: now)
    second = DispatchService(twin, config, lambda: now)
    org = await add_org(stores)
    workers = []
    for i in range(6):
        fix = Fix(52.52 + i * 0.001, 13.40, 5.0, now)
        worker = await add_worker(stores, org.id, fix=fix)
        await stores.locations.upsert(org.id, worker.id, fix.lat, fix.lng)
        workers.append(worker)
    job = await first.post_job(org.id, "Burst pipe", 52.52, 13.40, skills=["electrical"])
    offers = {}
    for worker in workers:
        (offer,) = await stores.jobs.pending_offers_of(worker.id)
        offers[worker.id] = offer.id
    results = await asyncio.gather(
        *((first if i % 2 else second).accept(w.id, offers[w.id]) for i, w in enumerate(workers)),
        return_exceptions=True,
    )
    won = [r for r in results if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, BaseException)]
    assert len(won) == 1
    assert all(isinstance(e, OfferClosed | NotEligible) for e in lost)
    stored = await stores.jobs.get_job(org.id, job.id)
    assert stored is not None
    assert stored.state is JobState.ASSIGNED
    assert stored.worker_id == won[0].worker_id
    history = await stores.jobs.history(org.id, job.id)
    assert [e.kind for e in history].count("assigned") == 1
    busy = await stores.workers.get_workers([w.id for w in workers])
    assert [w.id for w in busy.values() if w.availability is Availability.BUSY] == [
        stored.worker_id
    ]


async def test_offers_keep_their_order(backend: Backend) -> None:
    """A book's offers come back in the order they were first stored."""
    stores = backend.stores
    org = await add_org(stores)
    job = await add_job(stores, org.id)
    ids = []
    for _ in range(3):
        async with stores.jobs.transaction(job.id) as book:
            for _ in range(3):
                offer = offer_for(book, new_id("wrk"))
                book.offers[offer.id] = offer
                ids.append(offer.id)
    async with stores.jobs.transaction(job.id) as book:
        assert list(book.offers) == ids
        assert all(replace(o) == o for o in book.offers.values())
