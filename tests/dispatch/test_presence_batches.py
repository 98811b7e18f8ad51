"""Presence in Redis, many claims per call: ``claim_many`` and ``refresh_many``.

Against the real Redis (``backends.REDIS_URL``), under a prefix of the test's own
that is removed afterwards. The ``presence`` fixture (``tests/conftest.py``)
makes ``BATCH`` small so that every call spans several script runs.
"""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from dispatch.errors import Unavailable
from dispatch.stores.redis.keys import Keys
from dispatch.stores.redis.presence import RedisPresence
from tests.dispatch.backends import new_id

DEAD_REDIS = "redis://127.0.0.1:1/0"


async def test_claim_many_takes_every_worker_and_returns_the_previous_holders(
    presence: RedisPresence,
) -> None:
    """Each claim takes its worker (the newest wins) and reports who held it before."""
    workers = [new_id("wrk") for _ in range(5)]
    await presence.claim(workers[1], "old/1", 30)
    await presence.claim(workers[4], "old/4", 30)
    previous = await presence.claim_many([(w, f"a/{i}") for i, w in enumerate(workers)], 30)
    assert previous == [None, "old/1", None, None, "old/4"]
    assert [await presence.holder(w) for w in workers] == [f"a/{i}" for i in range(5)]


async def test_refresh_many_extends_retakes_an_expired_claim_and_reports_a_taken_one(
    presence: RedisPresence,
) -> None:
    """Held → extended; expired → taken back; taken by another → False, and left alone."""
    held, expired, taken, never = (new_id("wrk") for _ in range(4))
    await presence.claim_many([(held, "a/1"), (taken, "a/3")], 0.2)
    await presence.claim(expired, "a/2", 0.05)
    await presence.claim(taken, "b/9", 30)  # a newer socket elsewhere
    await asyncio.sleep(0.1)  # the claim of ``expired`` runs out
    assert await presence.holder(expired) is None
    claims = [(held, "a/1"), (expired, "a/2"), (taken, "a/3"), (never, "a/4")]
    assert await presence.refresh_many(claims, 30) == [True, True, False, True]
    assert await presence.holder(held) == "a/1"
    assert await presence.holder(expired) == "a/2"
    assert await presence.holder(taken) == "b/9"
    assert await presence.holder(never) == "a/4"
    await asyncio.sleep(0.25)  # past the first claims' 0.2 s: the refresh extended them
    assert await presence.holder(held) == "a/1"
    assert await presence.refresh_many([], 30) == []


async def test_batches_on_a_redis_that_does_not_answer_raise_unavailable() -> None:
    """Connection failures surface as ``Unavailable``, never as a lost claim."""
    client = aioredis.Redis.from_url(DEAD_REDIS, decode_responses=True, socket_connect_timeout=1)
    presence = RedisPresence(client, Keys("unused"))
    try:
        with pytest.raises(Unavailable):
            await presence.claim_many([("wrk", "a/1")], 30)
        with pytest.raises(Unavailable):
            await presence.refresh_many([("wrk", "a/1")], 30)
    finally:
        await client.aclose()
