"""``GET /v1/workers/{id}`` says whether the worker's phone is connected right now."""

from __future__ import annotations

import asyncio

from tests.mobile_api.live import PARIS, WAIT_S, LiveServer, Org


async def connected_becomes(server: LiveServer, org: Org, worker_id: str, want: bool) -> None:
    """Wait until the worker's ``connected`` is ``want`` (a socket closes asynchronously)."""
    async with asyncio.timeout(WAIT_S):
        while True:
            if (await server.get_worker(org, worker_id))["connected"] is want:
                return
            await asyncio.sleep(0.02)


async def test_connected_follows_the_phone_while_status_keeps_its_last_value(
    server: LiveServer,
) -> None:
    """connected is false before the phone comes, true while it is there, false once it left;
    status stays what the phone last reported."""
    org = await server.create_org()
    cred = await server.create_worker(org, "Ann")
    before = await server.get_worker(org, cred.id)
    phone = await server.on_duty(org, "Bob", [], PARIS)  # someone else, to be sure it is per worker
    mine = await server.connect_worker(cred.token)
    await mine.request({"type": "status", "status": "available"}, "status")
    during = await server.get_worker(org, cred.id)
    await mine.close()
    await connected_becomes(server, org, cred.id, False)
    after = await server.get_worker(org, cred.id)

    assert (before["connected"], before["status"]) == (False, "off_duty")
    assert (during["connected"], during["status"]) == (True, "available")
    assert (after["connected"], after["status"]) == (False, "available")
    assert (await server.get_worker(org, phone.worker_id))["connected"] is True
