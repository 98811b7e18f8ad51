"""The background loops stop between rounds, and a round stuck past the grace is cancelled."""

from __future__ import annotations

import asyncio

from dispatch.errors import Unavailable
from mobile_api.shutdown import Loops


async def test_stop_lets_the_round_in_progress_finish_and_starts_no_other() -> None:
    """A loop asked to stop while a round runs finishes that round, then runs none again."""
    inside, release = asyncio.Event(), asyncio.Event()
    rounds: list[str] = []

    async def round_() -> None:
        rounds.append("begun")
        inside.set()
        await release.wait()
        rounds.append("finished")

    loops = Loops()
    loops.start("ticker", round_, every_s=0.0)
    await inside.wait()
    stopping = asyncio.create_task(loops.stop(grace_s=60))
    await asyncio.sleep(0)
    release.set()
    await stopping
    assert rounds == ["begun", "finished"]


async def test_a_round_still_busy_after_the_grace_is_cancelled() -> None:
    """A round that does not end within the grace is cancelled, and stop returns."""
    inside = asyncio.Event()
    cancelled: list[bool] = []

    async def stuck() -> None:
        inside.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    loops = Loops()
    loops.start("stuck", stuck, every_s=1.0)
    await inside.wait()
    await loops.stop(grace_s=0.01)
    assert cancelled == [True]


async def test_a_failing_round_does_not_end_the_loop() -> None:
    """A round that raises is logged, and the next round still runs."""
    calls: list[int] = []
    third = asyncio.Event()

    async def flaky() -> None:
        calls.append(len(calls))
        if len(calls) == 1:
            raise Unavailable("redis is gone")
        if len(calls) == 2:
            raise RuntimeError("boom")
        third.set()

    loops = Loops()
    loops.start("flaky", flaky, every_s=0.0)
    await asyncio.wait_for(third.wait(), 10)
    await loops.stop()
    assert calls[:3] == [0, 1, 2]
