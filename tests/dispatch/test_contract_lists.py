"""Store contract, the dispatcher's lists: filters, keyset pages and tenant scope, every backend."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from dispatch.listing import JobQuery, WorkerQuery
from dispatch.models import Availability, Fix, JobState, OfferState, Worker, WorkerKind
from dispatch.stores.ports import Stores
from tests.dispatch.backends import Backend, add_job, add_org, add_worker
from tests.dispatch.test_contract_jobs import offer_for


async def walk_workers(stores: Stores, org_id: str, query: WorkerQuery) -> list[str]:
    """Every page of a worker list, followed to its end: the ids in order."""
    seen: list[str] = []
    after = None
    while True:
        page = await stores.lists.workers(org_id, replace(query, after=after))
        seen.extend(w.id for w in page.items)
        assert len(page.items) <= query.limit
        if page.last is None:
            return seen
        assert page.last == page.items[-1].id
        after = page.last


async def test_worker_pages_cover_the_organisation_once_in_id_order(backend: Backend) -> None:
    """Pages of 3 list each of the organisation's workers once, by id, and nobody else's."""
    stores = backend.stores
    mine, theirs = await add_org(stores), await add_org(stores)
    ids = sorted([(await add_worker(stores, mine.id)).id for _ in range(8)])
    await add_worker(stores, theirs.id)
    assert await walk_workers(stores, mine.id, WorkerQuery(3)) == ids
    whole = await stores.lists.workers(mine.id, WorkerQuery(8))
    assert [w.id for w in whole.items] == ids
    assert whole.last is None


async def test_a_walk_neither_skips_nor_repeats_while_workers_are_added(backend: Backend) -> None:
    """Workers inserted between pages never make a walk skip or repeat one that was there."""
    stores = backend.stores
    org = await add_org(stores)
    before = {(await add_worker(stores, org.id)).id for _ in range(10)}
    seen: list[str] = []
    after = None
    rng = random.Random(12)
    while True:
        page = await stores.lists.workers(org.id, WorkerQuery(3, after))
        seen.extend(w.id for w in page.items)
        for _ in range(rng.randint(1, 3)):
            await add_worker(stores, org.id)
        if page.last is None:
            break
        after = page.last
    assert len(seen) == len(set(seen)), "a worker was listed twice"
    assert before <= set(seen), "a worker that was there all along was skipped"
    assert seen == sorted(seen)


async def test_worker_filters(backend: Backend) -> None:
    """Status, kind, skill, bounding box and fix time each keep exactly the matching workers."""
    stores = backend.stores
    org = await add_org(stores)
    near = Fix(45.76, 4.85, 5.0, 500.0)
    far = Fix(48.85, 2.35, None, 400.0)
    a = await add_worker(stores, org.id, skills=frozenset({"hvac"}), fix=near)
    b = await add_worker(stores, org.id, availability=Availability.BUSY, fix=far)
    c = await add_worker(stores, org.id, availability=Availability.OFF_DUTY)
    await stores.workers.set_fix(org.id, a.id, near)
    await stores.workers.set_fix(org.id, b.id, far)

    async def ids(**filters: object) -> set[str]:
        page = await stores.lists.workers(org.id, WorkerQuery(50, **filters))  # type: ignore[arg-type]
        return {w.id for w in page.items}

    assert await ids(statuses=frozenset({Availability.BUSY, Availability.OFF_DUTY})) == {b.id, c.id}
    assert await ids(kinds=frozenset({WorkerKind.CONTRACTOR})) == {a.id, b.id, c.id}
    assert await ids(kinds=frozenset({WorkerKind.EMPLOYEE})) == set()
    assert await ids(skill="hvac") == {a.id}
    assert await ids(bbox=(4.0, 45.0, 5.0, 46.0)) == {a.id}
    assert await ids(bbox=(2.0, 45.0, 5.0, 49.0)) == {a.id, b.id}
    assert await ids(updated_since=450.0) == {a.id}
    assert await ids(bbox=(2.0, 45.0, 5.0, 49.0), statuses=frozenset({Availability.BUSY})) == {b.id}
    listed = (await stores.lists.workers(org.id, WorkerQuery(50, skill="hvac"))).items[0]
    assert listed == replace(a, fix=near)


async def test_a_thin_filter_still_fills_its_pages(backend: Backend) -> None:
    """With a bounding box matching few workers, pages still hold ``limit`` of them, in order."""
    stores = backend.stores
    org = await add_org(stores)
    inside: list[Worker] = []
    for n in range(30):
        fix = Fix(45.76, 4.85, None, 300.0) if n % 5 == 0 else Fix(10.0, 10.0, None, 300.0)
        worker = await add_worker(stores, org.id, fix=fix)
        await stores.workers.set_fix(org.id, worker.id, fix)
        if n % 5 == 0:
            inside.append(worker)
    box = WorkerQuery(2, bbox=(4.0, 45.0, 5.0, 46.0))
    first = await stores.lists.workers(org.id, box)
    assert len(first.items) == 2
    assert first.last is not None
    assert await walk_workers(stores, org.id, box) == sorted(w.id for w in inside)


async def test_a_bounding_box_may_cross_the_antimeridian(backend: Backend) -> None:
    """A box whose west edge lies east of its east edge holds both sides of the 180th meridian."""
    stores = backend.stores
    org = await add_org(stores)
    east_side = await add_job(stores, org.id, lat=-17.0, lng=179.5)
    west_side = await add_job(stores, org.id, lat=-17.0, lng=-179.5)
    await add_job(stores, org.id, lat=-17.0, lng=0.0)
    page = await stores.lists.jobs(org.id, JobQuery(10, bbox=(179.0, -18.0, -179.0, -16.0)))
    assert {j.job.id for j in page.items} == {east_side.id, west_side.id}


async def test_job_lists_carry_the_pending_offers_and_filter(backend: Backend) -> None:
    """A job list holds the organisation's jobs with pending offers only, and its filters hold."""
    stores = backend.stores
    mine, theirs = await add_org(stores), await add_org(stores)
    job = await add_job(stores, mine.id)
    other = await add_job(stores, mine.id, lat=45.76, lng=4.85)
    await add_job(stores, theirs.id)
    async with stores.jobs.transaction(job.id) as book:
        out, gone = offer_for(book, "wrk_a"), offer_for(book, "wrk_b")
        gone.state, gone.closed_at = OfferState.DECLINED, 240.0
        book.offers = {out.id: out, gone.id: gone}
    async with stores.jobs.transaction(other.id) as book:
        book.job.state, book.job.updated_at = JobState.CANCELLED, 900.0
        book.job.version += 1
    page = await stores.lists.jobs(mine.id, JobQuery(10))
    assert sorted(j.job.id for j in page.items) == sorted([job.id, other.id])
    listed = next(j for j in page.items if j.job.id == job.id)
    assert [o.id for o in listed.offers] == [out.id]

    async def ids(**filters: object) -> set[str]:
        found = await stores.lists.jobs(mine.id, JobQuery(10, **filters))  # type: ignore[arg-type]
        return {j.job.id for j in found.items}

    assert await ids(states=frozenset({JobState.OPEN})) == {job.id}
    assert await ids(states=frozenset({JobState.CANCELLED, JobState.ASSIGNED})) == {other.id}
    assert await ids(skill="electrical") == {job.id, other.id}
    assert await ids(skill="hvac") == set()
    assert await ids(bbox=(4.0, 45.0, 5.0, 46.0)) == {other.id}
    assert await ids(updated_since=800.0) == {other.id}
    assert [o.id for o in await stores.lists.offers_of(mine.id, job.id)] == [out.id, gone.id]
    assert await stores.lists.offers_of(theirs.id, job.id) == []


@pytest.mark.parametrize("limit", [1, 2, 5])
async def test_job_pages_cover_every_job_once(backend: Backend, limit: int) -> None:
    """Job pages of any size list every job of the organisation exactly once, by id."""
    stores = backend.stores
    org = await add_org(stores)
    ids = sorted([(await add_job(stores, org.id)).id for _ in range(5)])
    seen: list[str] = []
    after = None
    while True:
        page = await stores.lists.jobs(org.id, JobQuery(limit, after))
        seen.extend(j.job.id for j in page.items)
        if page.last is None:
            break
        after = page.last
    assert seen == ids
