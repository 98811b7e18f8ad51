"""The console's job changes on every backend: claims and releases commit with the job."""

from __future__ import annotations

import pytest

from dispatch.config import DispatchConfig
from dispatch.console import Console
from dispatch.errors import NotEligible
from dispatch.models import Actor, Availability, JobState, WorkerKind
from dispatch.service import DispatchService
from tests.dispatch.backends import Backend

SITE = (45.7640, 4.8357)
DEE = Actor("dispatcher", "dsp-1")
CONFIG = DispatchConfig(wave_size=5, offer_timeout_s=600.0, radii_m=(1_000.0, 3_000.0))


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


async def notices(service: DispatchService, worker_id: str) -> list[str]:
    return [n.notice["type"] for n in await service.stores.feed.replay(worker_id, 0)]


async def test_direct_assignment_claims_the_worker_with_the_job(backend: Backend) -> None:
    """A direct assignment makes the worker busy in the job's transaction and tells the
    phone; a second one of the same worker elsewhere is refused as busy."""
    service = DispatchService(backend.stores, CONFIG, Clock())
    console = Console(service)
    org, _ = await service.create_org("City")
    worker, _ = await service.create_worker(org.id, "Ann", WorkerKind.EMPLOYEE, [])
    await service.set_status(worker.id, Availability.AVAILABLE)
    await service.report_location(worker.id, SITE[0] + 0.05, SITE[1])  # 5.6 km: out of reach
    job = await service.post_job(org.id, "Leak", *SITE)
    assert job.state is JobState.UNFILLED

    assigned = await console.assign(org.id, job.id, worker.id, DEE)
    assert (assigned.state, assigned.worker_id) == (JobState.ASSIGNED, worker.id)
    assert (await service.get_worker(org.id, worker.id)).availability is Availability.BUSY
    assert await notices(service, worker.id) == ["assigned"]
    kinds = [e.kind for e in (await service.get_job(org.id, job.id)).history]
    assert kinds[-2:] == ["reopened", "assigned"]

    other = await service.post_job(org.id, "Second leak", *SITE)
    with pytest.raises(NotEligible) as refused:
        await console.assign(org.id, other.id, worker.id, DEE)
    assert refused.value.reason == "busy"
    assert (await service.get_job(org.id, other.id)).job.state is JobState.UNFILLED


async def test_a_reoffer_reaches_further_on_every_backend(backend: Backend) -> None:
    """A re-offer's wave reaches a worker past the job's radius, and the job waits for them."""
    service = DispatchService(backend.stores, CONFIG, Clock())
    console = Console(service)
    org, _ = await service.create_org("City")
    near, _ = await service.create_worker(org.id, "near", WorkerKind.EMPLOYEE, [])
    far, _ = await service.create_worker(org.id, "far", WorkerKind.EMPLOYEE, [])
    for worker, north in ((near, 0.005), (far, 0.02)):  # 0.56 km, 2.2 km
        await service.set_status(worker.id, Availability.AVAILABLE)
        await service.report_location(worker.id, SITE[0] + north, SITE[1])
    job = await service.post_job(org.id, "Leak", *SITE)
    assert await notices(service, far.id) == []
    again = await console.reoffer(org.id, job.id, DEE)
    assert (again.state, again.wave, again.wave_radius_m) == (JobState.OPEN, 2, 3_000.0)
    assert await notices(service, far.id) == ["offer"]
    assert len(await service.stores.jobs.pending_offers_of(near.id)) == 1
