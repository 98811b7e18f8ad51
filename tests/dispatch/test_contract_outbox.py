"""Store contract, outbox: effects are written with their change, leased, claimed and forgotten."""

from __future__ import annotations

import asyncio

import pytest

from dispatch.effects import Effect, EffectKind
from dispatch.stores.ports import Stores
from tests.dispatch.backends import Backend, add_job, add_org, new_id

NOW = 1_800_000_000.0
LEASE_S = 5.0


def notice(job_id: str, n: int, due_at: float = NOW + LEASE_S) -> Effect:
    """A notice effect of ``job_id`` (the ``n``-th), leased until ``due_at``."""
    return Effect(
        new_id("eff"), EffectKind.NOTICE, "wrk_a", {"type": "ping", "n": n}, job_id, NOW, due_at
    )


async def commit(stores: Stores, job_id: str, *effects: Effect) -> None:
    """A job transaction that changes the job and writes ``effects``."""
    async with stores.jobs.transaction(job_id) as book:
        book.job.priority += 1
        book.effects.extend(effects)


async def test_a_transaction_writes_its_effects_with_its_change(backend: Backend) -> None:
    """On commit the book's effects are kept, in order, as written."""
    stores = backend.stores
    job = await add_job(stores, (await add_org(stores)).id)
    first, second = notice(job.id, 1), notice(job.id, 2)
    await commit(stores, job.id, first, second)
    third = notice(job.id, 3)
    await commit(stores, job.id, third)
    assert await stores.outbox.of_job(job.id) == [first, second, third]
    assert await stores.outbox.of_job("job_other") == []


async def test_a_transaction_that_fails_writes_no_effect(backend: Backend) -> None:
    """An exception in the block keeps none of its effects."""
    stores = backend.stores
    job = await add_job(stores, (await add_org(stores)).id)

    async def refused() -> None:
        async with stores.jobs.transaction(job.id) as book:
            book.effects.append(notice(job.id, 1))
            raise RuntimeError("engine refused")

    with pytest.raises(RuntimeError):
        await refused()
    assert await stores.outbox.of_job(job.id) == []


async def test_the_book_says_when_earlier_effects_of_the_job_wait(backend: Backend) -> None:
    """``book.backlog`` is set while the job has undelivered effects, and clear once delivered."""
    stores = backend.stores
    job = await add_job(stores, (await add_org(stores)).id)
    async with stores.jobs.transaction(job.id) as book:
        assert not book.backlog
    effect = notice(job.id, 1)
    await commit(stores, job.id, effect)
    async with stores.jobs.transaction(job.id) as book:
        assert book.backlog
    await stores.outbox.delivered([effect.id, "eff_unknown"])
    async with stores.jobs.transaction(job.id) as book:
        assert not book.backlog
    assert await stores.outbox.of_job(job.id) == []


async def test_only_lapsed_leases_are_claimed_and_a_claim_renews_the_lease(
    backend: Backend,
) -> None:
    """``claim_due`` hands out effects whose lease has passed, and leases them anew."""
    stores = backend.stores
    job = await add_job(stores, (await add_org(stores)).id)
    late, early = notice(job.id, 1, NOW + 9), notice(job.id, 2, NOW + 3)
    await commit(stores, job.id, late, early)
    assert await stores.outbox.claim_due(NOW + 2, LEASE_S, 10) == []
    claimed = await stores.outbox.claim_due(NOW + 3, LEASE_S, 10)
    assert [e.id for e in claimed] == [early.id]
    assert claimed[0].due_at == NOW + 3 + LEASE_S
    assert await stores.outbox.claim_due(NOW + 4, LEASE_S, 10) == []
    again = await stores.outbox.claim_due(NOW + 9, LEASE_S, 10)
    assert [e.id for e in again] == [late.id, early.id]
    assert await stores.outbox.claim_due(NOW + 100, LEASE_S, 1) != []


async def test_concurrent_claims_on_two_instances_are_disjoint(backend: Backend) -> None:
    """Two instances claiming at once never both get one effect, and together get all."""
    stores, twin = backend.stores, await backend.twin()
    org = await add_org(stores)
    written: list[str] = []
    for _ in range(6):
        job = await add_job(stores, org.id)
        effects = [notice(job.id, n, NOW) for n in range(5)]
        await commit(stores, job.id, *effects)
        written += [e.id for e in effects]
    got = await asyncio.gather(
        *(s.outbox.claim_due(NOW, LEASE_S, 4) for s in (stores, twin, stores, twin) * 3)
    )
    ids = [e.id for batch in got for e in batch]
    assert len(ids) == len(set(ids))
    assert sorted(ids) == sorted(written)


async def test_the_backlog_counts_what_waits_and_dates_the_oldest(backend: Backend) -> None:
    """``backlog`` is the number of effects not yet delivered and the oldest one's time."""
    stores = backend.stores
    assert await stores.outbox.backlog() == (0, None)
    job = await add_job(stores, (await add_org(stores)).id)
    first, second = notice(job.id, 1), notice(job.id, 2)
    older = Effect(new_id("eff"), EffectKind.NOTICE, "wrk_a", {"n": 0}, job.id, NOW - 7, NOW)
    await commit(stores, job.id, first, older, second)
    assert await stores.outbox.backlog() == (3, NOW - 7)
    await stores.outbox.delivered([older.id, first.id])
    assert await stores.outbox.backlog() == (1, NOW)
