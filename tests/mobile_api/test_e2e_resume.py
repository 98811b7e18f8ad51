"""End to end: resuming a dropped phone from its log, and one connection per worker."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from dispatch.config import DispatchConfig
from dispatch.stores.memory import MemoryPresence
from tests.mobile_api.live import PARIS, WAIT_S, StartServer, offset, types_of

SKILL = "electrical"


async def test_notices_published_while_away_are_replayed_once_in_order(
    start_server: StartServer,
) -> None:
    """Reconnecting with last_seq=N replays every notice after N in log order, then goes
    live, and no notice is delivered twice."""
    live = await start_server(DispatchConfig(wave_size=1, offer_timeout_s=600.0))
    org = await live.create_org()
    cred = await live.create_worker(org, "Ann", (SKILL,))
    phone = await live.connect_worker(cred.token)
    assert phone.welcome["last_seq"] is None
    await phone.request({"type": "status", "status": "available"}, "status")
    here = offset(PARIS, 250.0, 0.0)
    await phone.send({"type": "location", "lat": here[0], "lng": here[1]})
    await phone.assert_quiet()

    first = await live.post_job(org, *PARIS, skills=[SKILL], title="one")
    offer = await phone.recv_type("offer")
    s1 = offer["seq"]
    await phone.close()

    # While the phone is away: the offer is cancelled and two new jobs are offered.
    await live.cancel_job(org, first["id"])
    second = await live.post_job(org, *PARIS, skills=[SKILL], title="two")
    third = await live.post_job(org, *PARIS, skills=[SKILL], title="three")

    back = await live.connect_worker(cred.token, last_seq=s1)
    assert back.welcome["last_seq"] == s1 + 3
    frames = await back.pending()
    assert [f["seq"] for f in frames] == [s1 + 1, s1 + 2, s1 + 3]
    assert types_of(frames) == ["offer_closed", "offer", "offer"]
    assert frames[0]["offer_id"] == offer["offer_id"]
    assert frames[0]["reason"] == "cancelled"
    assert [f["job"]["id"] for f in frames[1:]] == [second["id"], third["id"]]

    # Live again: the next notice follows on, and nothing is replayed a second time.
    accepted = await back.request({"type": "accept", "offer_id": frames[1]["offer_id"]}, "assigned")
    assert accepted["seq"] == s1 + 4
    rest = await back.pending()
    assert [(f["type"], f["seq"]) for f in rest] == [("offer_closed", s1 + 5)]
    assert rest[0]["reason"] == "withdrawn"  # the third offer: the worker is busy now
    assert rest[0]["offer_id"] == frames[2]["offer_id"]
    await back.close()

    # A phone that lost everything replays the whole log; one without last_seq gets none.
    again = await live.connect_worker(cred.token, last_seq=0)
    assert [f["seq"] for f in await again.pending()] == [s1 + i for i in range(6)]
    await again.close()
    fresh = await live.connect_worker(cred.token)
    assert fresh.welcome["last_seq"] == s1 + 5
    await fresh.assert_quiet()


async def test_a_second_connection_of_a_worker_closes_the_first_with_4001(
    start_server: StartServer,
) -> None:
    """A newer connection of the same worker closes the older one with code 4001 and alone
    receives the worker's notices."""
    live = await start_server()
    org = await live.create_org()
    cred = await live.create_worker(org, "Ann", (SKILL,))
    old = await live.connect_worker(cred.token)
    new = await live.connect_worker(cred.token)

    assert await old.close_code() == 4001

    await new.request({"type": "status", "status": "available"}, "status")
    await new.send({"type": "location", "lat": PARIS[0], "lng": PARIS[1]})
    job = await live.post_job(org, *PARIS, skills=[SKILL])
    offer = await new.recv_type("offer")
    assert offer["job"]["id"] == job["id"]
    await new.assert_quiet()


async def test_in_memory_mode_presence_follows_the_newest_socket(
    start_server: StartServer,
) -> None:
    """Without Redis the same presence loop runs in process: the open socket holds its
    worker's claim, a newer socket takes it over, and the claim goes when that one closes."""
    live = await start_server()
    assert live.runtime.mode == "memory"
    presence = live.runtime.presence
    assert isinstance(presence, MemoryPresence)
    org = await live.create_org()
    cred = await live.create_worker(org, "Ann", (SKILL,))

    async def held_by(expected: Callable[[], str | None]) -> str | None:
        """The claim's holder once it is ``expected()`` (polled: the keeper claims in a loop)."""
        async with asyncio.timeout(WAIT_S):
            while True:  # polling the keeper's work, bounded by the timeout
                holder = await presence.holder(cred.id)
                if holder == expected():
                    return holder
                await asyncio.sleep(0.01)

    def current() -> str | None:
        session = live.runtime.sessions.get(cred.id)
        return None if session is None else session.holder

    await live.connect_worker(cred.token)
    first = await held_by(current)
    new = await live.connect_worker(cred.token)
    second = await held_by(current)
    assert first is not None
    assert second not in {None, first}
    await new.close()
    assert await held_by(lambda: None) is None
