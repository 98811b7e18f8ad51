"""The relay: effects go out in order, a failure stops the rest, what went out is forgotten."""

from __future__ import annotations

from dispatch.effects import Effect, EffectKind
from dispatch.errors import Unavailable
from dispatch.relay import Relay
from tests.dispatch.backends import Backend, add_job, add_org, new_id

NOW = 1_800_000_000.0


def effect(job_id: str, kind: EffectKind, target: str, **payload: object) -> Effect:
    """An effect of ``job_id``, leased for 5 s."""
    return Effect(new_id("eff"), kind, target, payload, job_id, NOW, NOW + 5)


async def committed(backend: Backend, *effects: Effect) -> None:
    """Write ``effects`` as a job transaction of their job would."""
    async with backend.stores.jobs.transaction(effects[0].job_id or "") as book:
        book.effects.extend(effects)


async def job_id(backend: Backend) -> str:
    return (await add_job(backend.stores, (await add_org(backend.stores)).id)).id


async def test_an_effect_waits_for_the_notices_before_it(backend: Backend) -> None:
    """``perform`` runs only once every earlier notice is in the feed, then the rest follow."""
    feed = backend.stores.feed
    job = await job_id(backend)
    seen: list[list[str]] = []

    async def perform(done: Effect) -> None:
        seen.append([str(e.notice["n"]) for e in await feed.replay(done.target, 0)])

    effects = [
        effect(job, EffectKind.NOTICE, "wrk_a", type="t", n=1),
        effect(job, EffectKind.NOTICE, "wrk_b", type="t", n=2),
        effect(job, EffectKind.NOTICE, "wrk_a", type="t", n=3),
        effect(job, EffectKind.FREED, "wrk_a"),
        effect(job, EffectKind.NOTICE, "wrk_a", type="t", n=4),
    ]
    await committed(backend, *effects)
    relay = Relay(backend.stores, perform)
    assert await relay.deliver(effects)
    await relay.flush()
    assert seen == [["1", "3"]]
    assert [e.notice["n"] for e in await feed.replay("wrk_a", 0)] == [1, 3, 4]
    assert await backend.stores.outbox.of_job(job) == []


async def test_a_failing_effect_stops_delivery_and_keeps_the_rest(backend: Backend) -> None:
    """What went out before the failure is forgotten; the failed effect and those after it
    stay in the outbox, in order; a service being away is reported, another error is not."""
    job = await job_id(backend)
    first = effect(job, EffectKind.NOTICE, "wrk_a", type="t", n=1)
    freed = effect(job, EffectKind.FREED, "wrk_a")
    last = effect(job, EffectKind.NOTICE, "wrk_a", type="t", n=2)
    await committed(backend, first, freed, last)

    async def away(done: Effect) -> None:
        raise Unavailable("Redis unavailable")

    async def broken(done: Effect) -> None:
        raise ValueError("a bug")

    relay = Relay(backend.stores, away)
    assert not await relay.deliver([first, freed, last])
    await relay.flush()
    assert [e.id for e in await backend.stores.outbox.of_job(job)] == [freed.id, last.id]
    assert await Relay(backend.stores, broken).deliver([freed, last])
    assert [e.id for e in await backend.stores.outbox.of_job(job)] == [freed.id, last.id]
    assert [e.notice["n"] for e in await backend.stores.feed.replay("wrk_a", 0)] == [1]


async def test_delivering_again_appends_no_notice_twice(backend: Backend) -> None:
    """The same effects delivered again — by this relay before their rows are gone, or by
    another instance's (a sweeper after a slow committer) — keep one copy in the feed."""
    job = await job_id(backend)
    effects = [effect(job, EffectKind.NOTICE, "wrk_a", type="t", n=n) for n in range(3)]
    await committed(backend, *effects)

    performed: list[Effect] = []

    async def perform(done: Effect) -> None:
        performed.append(done)

    relay, other = Relay(backend.stores, perform), Relay(await backend.twin(), perform)
    assert await relay.deliver(effects)
    assert await relay.deliver(effects)
    assert await other.deliver(effects)
    await relay.flush()
    await other.flush()
    assert await backend.stores.outbox.of_job(job) == []
    log = await backend.stores.feed.replay("wrk_a", 0)
    assert [e.notice["n"] for e in log] == [0, 1, 2]
    assert performed == []
