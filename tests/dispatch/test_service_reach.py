"""How the service notices a worker moving into reach of an open job (pinned clock)."""

from __future__ import annotations

import math

from dispatch.config import DispatchConfig
from dispatch.models import Availability, WorkerKind
from dispatch.service import OPEN_JOBS_RECHECK_S, REACH_RECHECK_S, DispatchService
from dispatch.stores.memory import memory_stores
from geo import latlng_to_cell

SITE = (45.7640, 4.8357)
RADIUS = 1000.0
M_PER_DEG_LAT = math.pi * 6_371_008.8 / 180


def north(metres: float) -> tuple[float, float]:
    """A point ``metres`` north of the job site."""
    return SITE[0] + metres / M_PER_DEG_LAT, SITE[1]


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


async def setup() -> tuple[DispatchService, Clock, str]:
    """A service with one open job whose wave reaches RADIUS metres, and an available worker."""
    clock = Clock()
    config = DispatchConfig(wave_size=5, offer_timeout_s=600.0, radii_m=(RADIUS,))
    service = DispatchService(memory_stores(9, 64), config, clock)
    org, _ = await service.create_org("City")
    anchor, _ = await service.create_worker(org.id, "anchor", WorkerKind.EMPLOYEE, [])
    await service.set_status(anchor.id, Availability.AVAILABLE)
    await service.report_location(anchor.id, *north(10))
    await service.post_job(org.id, "Leak", *SITE)
    mover, _ = await service.create_worker(org.id, "mover", WorkerKind.EMPLOYEE, [])
    await service.set_status(mover.id, Availability.AVAILABLE)
    return service, clock, mover.id


async def pending(service: DispatchService, worker_id: str) -> int:
    return len(await service.stores.jobs.pending_offers_of(worker_id))


def same_cell_pair() -> tuple[tuple[float, float], tuple[float, float]]:
    """Two points in one H3 cell, the first just outside RADIUS and the second inside."""
    for outside in range(1001, 1200):
        a, b = north(outside), north(outside - 10)
        if latlng_to_cell(*a, 9) == latlng_to_cell(*b, 9) and outside - 10 < RADIUS:
            return a, b
    raise AssertionError("no cell straddles the radius")


async def test_moving_into_reach_across_a_cell_boundary_brings_the_offer_at_once() -> None:
    """A worker who enters another cell inside the wave's radius is offered the job at once."""
    service, _, mover = await setup()
    await service.report_location(mover, *north(1500))
    assert await pending(service, mover) == 0
    await service.report_location(mover, *north(600))
    assert await pending(service, mover) == 1


async def test_moving_into_reach_inside_one_cell_is_noticed_within_the_recheck_time() -> None:
    """Inside one cell the job is matched again once REACH_RECHECK_S has passed, not before."""
    service, clock, mover = await setup()
    outside, inside = same_cell_pair()
    await service.report_location(mover, *outside)
    clock.now += 1
    await service.report_location(mover, *inside)
    assert await pending(service, mover) == 0
    clock.now += REACH_RECHECK_S
    await service.report_location(mover, *inside)
    assert await pending(service, mover) == 1


async def test_a_known_snapshot_saves_the_read_and_is_returned_with_the_new_fix() -> None:
    """Passing the caller's snapshot works like a fresh read, and the result carries the fix."""
    service, _, mover = await setup()
    snapshot = await service.report_location(mover, *north(1500))
    after = await service.report_location(mover, *north(600), known=snapshot)
    assert after.fix is not None
    assert (after.fix.lat, after.fix.lng) == north(600)
    assert await pending(service, mover) == 1


async def test_a_job_posted_elsewhere_reaches_late_joiners_within_the_open_jobs_recheck() -> None:
    """Another instance's new job is matched here once OPEN_JOBS_RECHECK_S has passed."""
    clock = Clock()
    config = DispatchConfig(wave_size=5, offer_timeout_s=600.0, radii_m=(RADIUS,))
    stores = memory_stores(9, 64)
    here, elsewhere = DispatchService(stores, config, clock), DispatchService(stores, config, clock)
    org, _ = await here.create_org("City")
    mover, _ = await here.create_worker(org.id, "mover", WorkerKind.EMPLOYEE, [])
    await here.set_status(mover.id, Availability.AVAILABLE)
    await here.report_location(mover.id, *north(5000))  # no open job yet: remembered here
    anchor, _ = await elsewhere.create_worker(org.id, "anchor", WorkerKind.EMPLOYEE, [])
    await elsewhere.set_status(anchor.id, Availability.AVAILABLE)
    await elsewhere.report_location(anchor.id, *north(10))
    await elsewhere.post_job(org.id, "Leak", *SITE)  # offered to the anchor
    clock.now += OPEN_JOBS_RECHECK_S / 2
    await here.report_location(mover.id, *north(600))  # another cell, in reach
    assert await pending(here, mover.id) == 0, "the remembered answer is still fresh"
    clock.now += OPEN_JOBS_RECHECK_S
    await here.report_location(mover.id, *north(50))  # another cell again
    assert await pending(here, mover.id) == 1
