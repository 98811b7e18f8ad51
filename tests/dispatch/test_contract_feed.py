"""Store contract, worker feed: durable ordered logs, replay, the cap, live listeners."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from dispatch.stores.ports import LoggedNotice
from tests.dispatch.backends import (
    LOG_SIZE,
    Backend,
    new_id,
)


class Inbox(list[LoggedNotice]):
    """A listener callback that keeps what it got and wakes whoever waits for it."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Event()

    def __call__(self, entry: LoggedNotice) -> None:
        self.append(entry)
        self.changed.set()

    async def until(self, done: Callable[[], bool], within_s: float = 5.0) -> None:
        """Wait (at most ``within_s``) until ``done()`` holds (listeners may be called later)."""
        async with asyncio.timeout(within_s):
            while not done():
                self.changed.clear()
                await self.changed.wait()

    async def holds(self, count: int) -> None:
        """Wait until ``count`` notices arrived."""
        await self.until(lambda: len(self) >= count)


async def test_publish_numbers_notices_per_worker(backend: Backend) -> None:
    """Each worker's notices are numbered in steps of one, in a series of their own."""
    feed = backend.stores.feed
    a, b = new_id("wrk"), new_id("wrk")
    first = [await feed.publish(a, {"type": "ping", "n": i}) for i in range(3)]
    assert first == [first[0], first[0] + 1, first[0] + 2]
    other = await feed.publish(b, {"type": "ping"})
    assert await feed.publish(a, {"type": "ping"}) == first[0] + 3
    assert await feed.publish(b, {"type": "ping"}) == other + 1


async def test_a_keyed_notice_published_again_is_not_appended_again(backend: Backend) -> None:
    """A notice re-published under its key keeps its first seq and its single log entry."""
    feed = backend.stores.feed
    worker = new_id("wrk")
    first = await feed.publish(worker, {"type": "offer", "n": 1}, key="eff_1")
    other = await feed.publish(worker, {"type": "offer", "n": 2}, key="eff_2")
    assert await feed.publish(worker, {"type": "offer", "n": 1}, key="eff_1") == first
    unkeyed = await feed.publish(worker, {"type": "ping"})
    assert [e.seq for e in await feed.replay(worker, 0)] == [first, other, unkeyed]
    assert other == first + 1
    assert unkeyed == other + 1
    assert await feed.publish(new_id("wrk"), {"type": "offer"}, key="eff_1") > 0


async def test_keys_are_remembered_for_at_least_the_last_log_size_notices(
    backend: Backend,
) -> None:
    """Within the last ``LOG_SIZE`` keyed notices a repeat is recognised."""
    feed = backend.stores.feed
    worker = new_id("wrk")
    seqs = [await feed.publish(worker, {"n": i}, key=f"eff_{i}") for i in range(LOG_SIZE)]
    assert await feed.publish(worker, {"n": 0}, key="eff_0") == seqs[0]
    assert len(await feed.replay(worker, 0)) == LOG_SIZE


async def test_a_new_log_starts_above_any_number_handed_out_before(backend: Backend) -> None:
    """A log the backend lost restarts above every earlier number, so resuming phones skip none."""
    feed = backend.stores.feed
    before = await feed.publish(new_id("wrk"), {"type": "ping"})
    await asyncio.sleep(0.01)
    after = await feed.publish(new_id("wrk"), {"type": "ping"})
    assert after > before


async def test_replay_returns_what_follows_a_seq(backend: Backend) -> None:
    """``replay`` returns the notices after ``after_seq``, oldest first, as published."""
    feed = backend.stores.feed
    worker = new_id("wrk")
    notices = [
        {"type": "offer", "offer_id": f"off_{i}", "job": {"skills": ["a"], "lat": 1.5}}
        for i in range(4)
    ]
    seqs = [await feed.publish(worker, notice) for notice in notices]
    base = seqs[0]
    assert await feed.replay(worker, 0) == [
        LoggedNotice(base + i, n) for i, n in enumerate(notices)
    ]
    assert [e.seq for e in await feed.replay(worker, base + 1)] == [base + 2, base + 3]
    assert await feed.replay(worker, base + 3) == []
    assert await feed.replay(new_id("wrk"), 0) == []


async def test_the_log_is_capped(backend: Backend) -> None:
    """Only the newest ``log_size`` notices are kept; numbering goes on."""
    feed = backend.stores.feed
    worker = new_id("wrk")
    seqs = [await feed.publish(worker, {"type": "ping", "n": i}) for i in range(LOG_SIZE + 3)]
    b = seqs[0] - 1  # numbers run b+1, b+2, …
    kept = await feed.replay(worker, 0)
    assert [e.seq for e in kept] == list(range(b + 4, b + LOG_SIZE + 4))
    assert [e.notice["n"] for e in kept] == list(range(3, LOG_SIZE + 3))
    tail = await feed.replay(worker, b + LOG_SIZE + 1)
    assert [e.seq for e in tail] == [b + LOG_SIZE + 2, b + LOG_SIZE + 3]


async def test_listener_on_another_instance_gets_every_notice_in_order(backend: Backend) -> None:
    """A listener on one instance receives all notices published on another, in seq order."""
    here, there = backend.stores.feed, (await backend.twin()).feed
    worker = new_id("wrk")
    got = Inbox()
    stop = here.listen(worker, got)
    try:
        assert await here.replay(worker, 0) == []  # listen, then replay: the listener is live
        published = await asyncio.gather(
            *(there.publish(worker, {"type": "ping", "n": i}) for i in range(LOG_SIZE - 1))
        )
        await got.holds(len(published))
        first = min(published)
        assert [e.seq for e in got] == list(range(first, first + LOG_SIZE - 1))
        assert got == await here.replay(worker, 0)
    finally:
        stop()


async def test_stopped_listener_hears_nothing_more(backend: Backend) -> None:
    """After ``stop()`` the callback is not called again, while other listeners continue."""
    feed, other = backend.stores.feed, (await backend.twin()).feed
    worker = new_id("wrk")
    first = Inbox()
    second = Inbox()
    stop_first = feed.listen(worker, first)
    stop_second = feed.listen(worker, second)
    await feed.replay(worker, 0)
    await other.publish(worker, {"type": "ping", "n": 1})
    await first.holds(1)
    stop_first()
    await other.publish(worker, {"type": "ping", "n": 2})
    await second.holds(2)
    await asyncio.sleep(0.1)
    base = second[0].seq
    assert [e.seq for e in first] == [base]
    assert [e.seq for e in second] == [base, base + 1]
    stop_second()
    stop_second()  # idempotent


async def test_listeners_only_hear_their_worker(backend: Backend) -> None:
    """A listener is called for its own worker's notices only."""
    feed = backend.stores.feed
    mine, theirs = new_id("wrk"), new_id("wrk")
    got = Inbox()
    stop = feed.listen(mine, got)
    await feed.replay(mine, 0)
    await feed.publish(theirs, {"type": "ping"})
    await feed.publish(mine, {"type": "pong"})
    await got.holds(1)
    await asyncio.sleep(0.1)
    assert [e.notice["type"] for e in got] == ["pong"]
    stop()


async def test_listen_then_replay_leaves_no_gap(backend: Backend) -> None:
    """Notices published around ``listen`` + ``replay`` are all seen by one or the other."""
    feed, other = backend.stores.feed, (await backend.twin()).feed
    worker = new_id("wrk")
    first = await other.publish(worker, {"type": "ping", "n": 0})
    everything = {first, first + 1, first + 2, first + 3}
    got = Inbox()

    async def publish_more() -> None:
        for i in range(1, 4):
            await other.publish(worker, {"type": "ping", "n": i})
            await asyncio.sleep(0)

    racing = asyncio.create_task(publish_more())
    stop = feed.listen(worker, got)
    backlog = await feed.replay(worker, 0)
    await racing
    seen = {e.seq for e in backlog}
    await got.until(lambda: seen | {e.seq for e in got} == everything)
    stop()
    assert [e.seq for e in got] == sorted(e.seq for e in got)


async def test_many_listeners_started_together_all_go_live_and_hear_their_worker(
    backend: Backend,
) -> None:
    """Listeners started in one go (subscribed and confirmed as a batch) each get live, then
    hear exactly their own worker's notice."""
    feed, other = backend.stores.feed, (await backend.twin()).feed
    workers = [new_id("wrk") for _ in range(40)]
    inboxes = [Inbox() for _ in workers]
    stops = [feed.listen(w, got) for w, got in zip(workers, inboxes, strict=True)]
    try:
        async with asyncio.timeout(5.0):
            assert await asyncio.gather(*(feed.replay(w, 0) for w in workers)) == [[]] * 40
        seqs = await asyncio.gather(*(other.publish(w, {"type": "ping", "w": w}) for w in workers))
        for worker, got, seq in zip(workers, inboxes, seqs, strict=True):
            await got.holds(1)
            assert [(e.seq, e.notice["w"]) for e in got] == [(seq, worker)]
    finally:
        for stop in stops:
            stop()


async def test_a_replay_does_not_wait_for_a_listener_that_stopped(backend: Backend) -> None:
    """A listener stopped before it went live holds up no replay of its worker."""
    feed = backend.stores.feed
    worker = new_id("wrk")
    stop = feed.listen(worker, Inbox())
    stop()
    async with asyncio.timeout(1.0):  # far below the wait for a live listener
        assert await feed.replay(worker, 0) == []
