"""The ``Presence`` port's rules, held by both implementations.

Each test runs against ``MemoryPresence`` (on a clock the test moves) and
against ``RedisPresence`` (the shared Redis under a prefix of the test's own,
see ``tests/conftest.py``; time passes for real there, in tenths of a second).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest

from dispatch.stores.memory import MemoryPresence
from dispatch.stores.redis.presence import RedisPresence
from tests.dispatch.backends import new_id

SHORT_S = 0.05
"""A TTL that runs out within ``advance(PAST_S)``."""
PAST_S = 0.15


@dataclass
class Clock:
    """Monotonic seconds that only move when told to."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Subject:
    """A presence implementation and how to let time pass for it."""

    presence: MemoryPresence | RedisPresence
    advance: Callable[[float], Awaitable[None]]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.services)])
def subject(request: pytest.FixtureRequest) -> Subject:
    if request.param == "memory":
        clock = Clock()

        async def move(seconds: float) -> None:
            clock.now += seconds

        return Subject(MemoryPresence(clock), move)
    presence: RedisPresence = request.getfixturevalue("presence")
    return Subject(presence, asyncio.sleep)


async def test_the_newest_claim_wins_and_only_the_holder_refreshes_or_releases(
    subject: Subject,
) -> None:
    """A claim takes the worker and names the previous holder; the old holder can neither
    refresh nor release the claim any more, the new one can."""
    presence, worker = subject.presence, new_id("wrk")
    assert await presence.holder(worker) is None
    assert await presence.claim(worker, "a", 30) is None
    assert await presence.holder(worker) == "a"
    assert await presence.claim(worker, "b", 30) == "a"
    assert await presence.refresh(worker, "a", 30) is False
    assert await presence.release(worker, "a") is False
    assert await presence.holder(worker) == "b"
    assert await presence.refresh(worker, "b", 30) is True
    assert await presence.release(worker, "b") is True
    assert await presence.holder(worker) is None


async def test_a_claim_that_is_not_refreshed_expires(subject: Subject) -> None:
    """Past its TTL a claim is gone: nobody holds the worker, and a release finds nothing."""
    presence, worker = subject.presence, new_id("wrk")
    await presence.claim(worker, "a", SHORT_S)
    await subject.advance(PAST_S)
    assert await presence.holder(worker) is None
    assert await presence.release(worker, "a") is False
    assert await presence.claim(worker, "b", 30) is None


async def test_a_refresh_extends_the_claim(subject: Subject) -> None:
    """A refreshed claim outlives its first TTL."""
    presence, worker = subject.presence, new_id("wrk")
    await presence.claim(worker, "a", 2 * PAST_S)
    await subject.advance(PAST_S)
    assert await presence.refresh(worker, "a", 30) is True
    await subject.advance(PAST_S + SHORT_S)
    assert await presence.holder(worker) == "a"


async def test_a_refresh_retakes_an_expired_claim_but_not_a_taken_one(subject: Subject) -> None:
    """A holder whose claim ran out unnoticed takes it back, unless someone else took it."""
    presence, worker = subject.presence, new_id("wrk")
    await presence.claim(worker, "a", SHORT_S)
    await subject.advance(PAST_S)
    assert await presence.refresh(worker, "a", 30) is True
    assert await presence.holder(worker) == "a"
    await presence.claim(worker, "b", 30)
    assert await presence.refresh(worker, "a", 30) is False
    assert await presence.holder(worker) == "b"


async def test_batches_answer_claim_by_claim_in_order(subject: Subject) -> None:
    """``claim_many`` reports each previous holder and ``refresh_many`` each claim's fate:
    held → extended, expired → taken back, taken by another → False and left alone."""
    presence = subject.presence
    held, expired, taken, never = (new_id("wrk") for _ in range(4))
    await presence.claim(taken, "old/3", 30)
    previous = await presence.claim_many([(held, "a/1"), (taken, "a/3")], 2 * PAST_S)
    assert previous == [None, "old/3"]
    await presence.claim(expired, "a/2", SHORT_S)
    await presence.claim(taken, "b/9", 30)  # a newer socket elsewhere
    await subject.advance(PAST_S)
    claims = [(held, "a/1"), (expired, "a/2"), (taken, "a/3"), (never, "a/4")]
    assert await presence.refresh_many(claims, 30) == [True, True, False, True]
    assert [await presence.holder(w) for w in (held, expired, taken, never)] == [
        "a/1",
        "a/2",
        "b/9",
        "a/4",
    ]
    assert await presence.claim_many([], 30) == []
    assert await presence.refresh_many([], 30) == []


@pytest.mark.parametrize("ttl_s", [0.0, -1.0])
async def test_a_ttl_that_is_not_positive_is_refused(subject: Subject, ttl_s: float) -> None:
    """A claim must live for some time: zero or a negative TTL is a caller's error."""
    with pytest.raises(ValueError, match="positive"):
        await subject.presence.claim(new_id("wrk"), "a", ttl_s)
    with pytest.raises(ValueError, match="positive"):
        await subject.presence.refresh_many([(new_id("wrk"), "a")], ttl_s)
