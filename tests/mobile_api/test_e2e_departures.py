"""End to end: a phone gone longer than ``FIELDCLOUD_DISCONNECT_FORGET_S`` loses its position."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable

from tests.mobile_api.live import PARIS, WAIT_S, LiveServer, ManualClock, StartServer, offset


async def until(check: Callable[[], Awaitable[bool]]) -> None:
    """Return once ``check()`` holds (polled: the server works in its own tasks)."""
    async with asyncio.timeout(WAIT_S):
        while True:  # polling the server's work, bounded by the timeout
            if await check():
                return
            await asyncio.sleep(0.02)


async def positions(live: LiveServer, org_id: str) -> set[str]:
    """The workers the location index holds around Paris."""
    hits = await live.runtime.service.stores.locations.nearest(org_id, *PARIS, 50, math.inf)
    return {h.key for h in hits}


async def test_a_phone_gone_past_the_retention_leaves_the_index_and_loses_its_fix(
    start_server: StartServer,
) -> None:
    """A closed socket keeps the position until the retention has passed (injected clock),
    then the sweep forgets it; a phone that came back in time keeps its own."""
    clock = ManualClock()
    live = await start_server(clock=clock)
    org = await live.create_org()
    stores = live.runtime.service.stores
    gone = await live.on_duty(org, "gone", (), offset(PARIS, 100.0, 0.0))
    cred_back = await live.create_worker(org, "back")
    back = await live.connect_worker(cred_back.token)
    await back.request({"type": "status", "status": "available"}, "status")
    back_at = offset(PARIS, 200.0, 90.0)
    await back.send({"type": "location", "lat": back_at[0], "lng": back_at[1]})
    assert await back.pending() == []
    assert await positions(live, org.id) == {gone.worker_id, back.worker_id}

    await gone.close()
    await back.close()

    async def both_left() -> bool:
        return len(live.runtime.departures) == 2

    await until(both_left)
    await live.connect_worker(cred_back.token)  # back in time: nothing to forget
    assert len(live.runtime.departures) == 1

    clock.advance(live.settings.disconnect_forget_s - 1.0)
    assert await live.runtime.forget_departed() == []
    assert await positions(live, org.id) == {gone.worker_id, back.worker_id}

    clock.advance(1.0)

    async def forgotten() -> bool:  # by the app's own sweep
        return gone.worker_id not in await positions(live, org.id)

    await until(forgotten)
    found = await stores.workers.get_workers([gone.worker_id, back.worker_id])
    assert found[gone.worker_id].fix is None
    assert found[back.worker_id].fix is not None
    assert await positions(live, org.id) == {back.worker_id}
