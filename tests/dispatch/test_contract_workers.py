"""Store contract, organisations and workers: the same behaviour from every backend."""

from __future__ import annotations

import asyncio

import pytest

from dispatch.models import Availability, Fix, Organisation
from tests.dispatch.backends import (
    Backend,
    add_org,
    add_worker,
    new_id,
)


async def test_org_round_trip(backend: Backend) -> None:
    """An organisation is found by id and by its key hash, and nothing else is."""
    orgs = backend.stores.orgs
    org = Organisation("org_round_trip", "Water works", 123.5)
    await orgs.add_org(org, "hash-1")
    assert await orgs.get_org(org.id) == org
    assert await orgs.org_by_key("hash-1") == org
    assert await orgs.org_by_key("hash-2") is None
    assert await orgs.get_org("org_missing") is None


async def test_worker_round_trip(backend: Backend) -> None:
    """A stored worker comes back field for field, by id within its org and by token."""
    stores = backend.stores
    org = await add_org(stores)
    worker = await add_worker(stores, org.id, skills=frozenset({"hvac", "electrical"}))
    assert await stores.workers.get_worker(org.id, worker.id) == worker
    assert await stores.workers.worker_by_token(f"token-{worker.id}") == worker
    assert await stores.workers.worker_by_token("token-nobody") is None


async def test_worker_lookup_is_tenant_scoped(backend: Backend) -> None:
    """Another organisation's worker id is simply not found."""
    stores = backend.stores
    mine, theirs = await add_org(stores), await add_org(stores)
    worker = await add_worker(stores, theirs.id)
    assert await stores.workers.get_worker(mine.id, worker.id) is None
    assert await stores.workers.get_worker(theirs.id, worker.id) is not None


async def test_get_workers_returns_the_existing_ones(backend: Backend) -> None:
    """``get_workers`` returns exactly the existing workers among the ids, any organisation."""
    stores = backend.stores
    a, b = await add_org(stores), await add_org(stores)
    wa = await add_worker(stores, a.id, fix=Fix(52.5, 13.4, 8.0, 150.0))
    wb = await add_worker(stores, b.id)
    found = await stores.workers.get_workers([wa.id, "wrk_missing", wb.id, wa.id])
    assert set(found) == {wa.id, wb.id}
    assert found[wa.id] == wa
    assert found[wb.id] == wb
    assert await stores.workers.get_workers([]) == {}


async def test_fix_and_availability_are_kept(backend: Backend) -> None:
    """The last fix and the availability set are what the next read returns."""
    stores = backend.stores
    org = await add_org(stores)
    worker = await add_worker(stores, org.id, availability=Availability.OFF_DUTY)
    first, last = Fix(52.5, 13.4, None, 300.0), Fix(52.500001, 13.400002, 4.25, 301.5)
    await stores.workers.set_fix(org.id, worker.id, first)
    await stores.workers.set_fix(org.id, worker.id, last)
    await stores.workers.set_availability(worker.id, Availability.AVAILABLE)
    again = await stores.workers.get_worker(org.id, worker.id)
    assert again is not None
    assert again.fix == last
    assert again.availability is Availability.AVAILABLE
    assert (await stores.workers.get_workers([worker.id]))[worker.id].fix == last


async def test_updates_of_unknown_workers_are_ignored(backend: Backend) -> None:
    """Setting the fix or availability of an unknown worker neither fails nor creates one."""
    stores = backend.stores
    ghost = new_id("wrk")
    await stores.workers.set_fix(new_id("org"), ghost, Fix(1.0, 2.0, None, 3.0))
    await stores.workers.set_availability(ghost, Availability.AVAILABLE)
    assert await stores.workers.get_workers([ghost]) == {}
    assert await stores.workers.claim(ghost) is False


async def test_claim_is_exactly_once(backend: Backend) -> None:
    """Of 20 concurrent claims of one available worker exactly one succeeds."""
    stores = backend.stores
    org = await add_org(stores)
    worker = await add_worker(stores, org.id)
    results = await asyncio.gather(*(stores.workers.claim(worker.id) for _ in range(20)))
    assert sorted(results) == [False] * 19 + [True]
    again = await stores.workers.get_worker(org.id, worker.id)
    assert again is not None
    assert again.availability is Availability.BUSY
    assert await stores.workers.claim(worker.id) is False


async def test_claim_is_exactly_once_across_instances(backend: Backend) -> None:
    """Claims racing from two instances sharing the backend still succeed exactly once."""
    stores, twin = backend.stores, await backend.twin()
    org = await add_org(stores)
    worker = await add_worker(stores, org.id)
    calls = [s.workers.claim(worker.id) for _ in range(10) for s in (stores, twin)]
    assert sorted(await asyncio.gather(*calls)) == [False] * 19 + [True]


@pytest.mark.parametrize("availability", [Availability.BUSY, Availability.OFF_DUTY])
async def test_claim_needs_an_available_worker(
    backend: Backend, availability: Availability
) -> None:
    """A busy or off-duty worker cannot be claimed and stays as it was."""
    stores = backend.stores
    org = await add_org(stores)
    worker = await add_worker(stores, org.id, availability=availability)
    assert await stores.workers.claim(worker.id) is False
    again = await stores.workers.get_worker(org.id, worker.id)
    assert again is not None
    assert again.availability is availability
