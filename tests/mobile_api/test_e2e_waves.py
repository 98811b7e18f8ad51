"""End to end: offer deadlines, wider waves, unfilled jobs, and workers who join late."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from dispatch.config import DispatchConfig
from tests.mobile_api.live import (
    PARIS,
    ManualClock,
    StartServer,
    haversine_m,
    offset,
    pending_all,
    types_of,
)

SKILL = "electrical"


def expected_waves(
    positions: dict[str, tuple[float, float]],
    job_at: tuple[float, float],
    radii_m: tuple[float, ...],
    k: int,
) -> list[list[str]]:
    """Brute force: wave n offers the k nearest not yet offered within radii_m[n-1]."""
    by_distance = sorted((haversine_m(*job_at, *pos), wid) for wid, pos in positions.items())
    offered: set[str] = set()
    waves = []
    for radius in radii_m:
        wave = [wid for d, wid in by_distance if d <= radius and wid not in offered][:k]
        offered.update(wave)
        waves.append(wave)
    return waves


async def test_unanswered_waves_expire_widen_and_end_unfilled(start_server: StartServer) -> None:
    """Unanswered offers close as expired, the next wave reaches the next nearest within a
    wider radius, and after the last wave the job is unfilled."""
    config = DispatchConfig(wave_size=2, offer_timeout_s=30.0, radii_m=(1000.0, 2500.0, 5000.0))
    clock = ManualClock()
    live = await start_server(config, tick_s=0.02, clock=clock)
    org = await live.create_org()
    distances = [300.0, 600.0, 900.0, 1500.0, 2000.0, 4000.0, 8000.0]
    phones = await asyncio.gather(
        *(
            live.on_duty(org, f"t{i}", (SKILL,), offset(PARIS, d, 45.0 * i))
            for i, d in enumerate(distances)
        )
    )
    off_duty = await live.on_duty(org, "off", (SKILL,), offset(PARIS, 50.0, 0), available=False)
    positions = {
        p.worker_id: offset(PARIS, d, 45.0 * i)
        for i, (p, d) in enumerate(zip(phones, distances, strict=True))
    }
    waves = expected_waves(positions, PARIS, config.radii_m, config.wave_size)
    assert [len(w) for w in waves] == [2, 2, 2]
    by_id = {p.worker_id: p for p in phones}

    job = await live.post_job(org, *PARIS, skills=[SKILL])
    offers: dict[str, str] = {}
    for number, wave in enumerate(waves, start=1):
        for worker_id in wave:
            offer = await by_id[worker_id].recv_type("offer")
            assert offer["wave"] == number
            assert offer["job"]["id"] == job["id"]
            offers[worker_id] = offer["offer_id"]
        for phone in phones:  # the wave's offers are out, and nothing else moved yet
            await phone.assert_quiet()
        clock.advance(config.offer_timeout_s)  # the wave's deadline is now
        for worker_id in wave:
            closed = await by_id[worker_id].recv_type("offer_closed")
            assert closed["reason"] == "expired"
            assert closed["offer_id"] == offers[worker_id]

    # The expired offers of the last wave close in the step that makes the job unfilled.
    view = await live.get_job(org, job["id"])
    assert view["state"] == "unfilled"
    assert view["wave"] == 3
    assert view["wave_deadline"] is None
    history = view["history"]
    assert [e["data"]["offered"] for e in history if e["kind"] == "wave"] == waves
    assert [e["kind"] for e in history].count("expired") == 3
    assert history[-1]["kind"] == "unfilled"

    # A late accept of an expired offer is refused with the reason.
    first = waves[0][0]
    await by_id[first].send({"type": "accept", "offer_id": offers[first]})
    error = await by_id[first].recv_type("error")
    assert error["code"] == "offer_closed"
    assert error["reason"] == "expired"

    # Nobody heard anything else: no re-offers, nothing for the far or off-duty worker.
    for phone, frames in zip(phones, await pending_all(phones), strict=True):
        assert frames == [], phone.worker_id
    await off_duty.assert_quiet()
    assert all(w not in offers for w in (phones[-1].worker_id, off_duty.worker_id))


async def test_workers_who_come_into_reach_of_an_open_wave_are_offered_it(
    start_server: StartServer,
) -> None:
    """A worker who goes available or moves into the radius of an open job's wave gets an
    offer for it; workers out of reach or without the skill still get nothing."""
    live = await start_server(DispatchConfig(wave_size=5, offer_timeout_s=600.0))
    org = await live.create_org()
    first = await live.on_duty(org, "first", (SKILL,), offset(PARIS, 500.0, 0.0))
    # Connected but off duty and without a fix yet.
    cred = await live.create_worker(org, "fresh", (SKILL,))
    fresh = await live.connect_worker(cred.token)
    # Off duty: the fix it reports is not kept.
    parked_at = offset(PARIS, 900.0, 90.0)
    parked = await live.on_duty(org, "parked", (SKILL,), parked_at, available=False)
    # Available, but outside wave 1's radius (2 km) for now.
    mover = await live.on_duty(org, "mover", (SKILL,), offset(PARIS, 3000.0, 180.0))
    # Available and near, but without the skill.
    unskilled = await live.on_duty(org, "unskilled", ("plumbing",), offset(PARIS, 300.0, 270.0))
    # Goes available far away.
    far = await live.on_duty(org, "far", (SKILL,), offset(PARIS, 3500.0, 45.0), available=False)

    job = await live.post_job(org, *PARIS, skills=[SKILL])
    assert types_of(await first.pending()) == ["offer"]
    for phone in (fresh, parked, mover, unskilled, far):
        await phone.assert_quiet()

    reply = await fresh.request({"type": "status", "status": "available"}, "status")
    assert reply["status"] == "available"
    await fresh.assert_quiet()  # available without a position: nothing to match yet
    fresh_at = offset(PARIS, 800.0, 30.0)
    await fresh.send({"type": "location", "lat": fresh_at[0], "lng": fresh_at[1]})
    reply = await parked.request({"type": "status", "status": "available"}, "status")
    assert reply["status"] == "available"
    await parked.assert_quiet()  # its off-duty fix was dropped: nothing to match yet
    await parked.send({"type": "location", "lat": parked_at[0], "lng": parked_at[1]})
    mover_to = offset(PARIS, 1200.0, 180.0)
    await mover.send({"type": "location", "lat": mover_to[0], "lng": mover_to[1]})
    await unskilled.send({"type": "location", "lat": PARIS[0], "lng": PARIS[1]})
    await far.send({"type": "status", "status": "available"})

    for phone in (fresh, parked, mover):
        frames = [f for f in await phone.pending() if f["type"] != "status"]
        assert types_of(frames) == ["offer"], (phone.worker_id, frames)
        assert frames[0]["job"]["id"] == job["id"]
        assert frames[0]["wave"] == 1
    assert await unskilled.pending() == []
    assert types_of(await far.pending()) == ["status"]

    view = await live.get_job(org, job["id"])
    assert view["state"] == "open"
    assert view["wave"] == 1
    late = [e["data"]["worker_id"] for e in view["history"] if e["kind"] == "offered"]
    assert sorted(late) == sorted(p.worker_id for p in (fresh, parked, mover))


async def test_a_stale_position_does_not_count_until_a_fresh_one_arrives(
    start_server: StartServer,
) -> None:
    """A fix stamped older than the freshness limit earns no offer; a fresh fix then brings
    the open job's offer."""
    live = await start_server(
        DispatchConfig(wave_size=5, offer_timeout_s=600.0, fix_max_age_s=60.0)
    )
    org = await live.create_org()
    anchor = await live.on_duty(org, "anchor", (SKILL,), offset(PARIS, 1500.0, 0))
    cred = await live.create_worker(org, "stale", (SKILL,))
    stale = await live.connect_worker(cred.token)
    await stale.request({"type": "status", "status": "available"}, "status")
    now = time.time()
    await stale.send({"type": "location", "lat": PARIS[0], "lng": PARIS[1], "ts": now - 600})
    await stale.assert_quiet()

    job = await live.post_job(org, *PARIS, skills=[SKILL])
    assert types_of(await anchor.pending()) == ["offer"]
    await stale.assert_quiet()
    old_iso = datetime.fromtimestamp(now - 300, UTC).isoformat().replace("+00:00", "Z")
    await stale.send({"type": "location", "lat": PARIS[0], "lng": PARIS[1], "ts": old_iso})
    await stale.assert_quiet()

    await stale.send({"type": "location", "lat": PARIS[0], "lng": PARIS[1], "ts": now})
    frames = await stale.pending()
    assert types_of(frames) == ["offer"]
    assert frames[0]["job"]["id"] == job["id"]
    assert frames[0]["distance_m"] == 0.0
