"""Handing work back, through the service on every backend (pinned clock).

A technician holding a job may not go off duty (or available) until it ends;
before arriving on site they may release it, which re-opens it and offers it
at once to others, through the job's transaction and the outbox.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from dispatch.config import DispatchConfig
from dispatch.errors import IllegalTransition, NotEligible, NotFound
from dispatch.models import Availability, JobState, WorkerKind
from dispatch.service import DispatchService
from dispatch.stores.ports import Stores
from tests.dispatch.backends import Backend

SITE = (45.7640, 4.8357)
NEAR = (45.7650, 4.8357)  # ~110 m north
FARTHER = (45.7660, 4.8357)  # ~220 m north
CONFIG = DispatchConfig(wave_size=1, offer_timeout_s=600.0, radii_m=(1000.0, 5000.0))


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


async def on_duty(service: DispatchService, org_id: str, name: str, at: tuple[float, float]) -> str:
    """An available worker at ``at``; returns the id."""
    worker, _ = await service.create_worker(org_id, name, WorkerKind.EMPLOYEE, [])
    await service.set_status(worker.id, Availability.AVAILABLE)
    await service.report_location(worker.id, *at)
    return worker.id


async def notices(stores: Stores, worker_id: str) -> list[dict[str, object]]:
    """The worker's logged notices, oldest first."""
    return [dict(e.notice) for e in await stores.feed.replay(worker_id, 0)]


async def assigned_job(backend: Backend) -> tuple[DispatchService, Clock, str, str, str]:
    """A job accepted by the nearest of two workers: (service, clock, job, holder, other)."""
    clock = Clock()
    service = DispatchService(backend.stores, CONFIG, clock)
    org, _ = await service.create_org("City")
    holder = await on_duty(service, org.id, "near", NEAR)
    other = await on_duty(service, org.id, "farther", FARTHER)
    job = await service.post_job(org.id, "Burst main", *SITE)
    (offer,) = await notices(backend.stores, holder)
    clock.now += 5
    await service.accept(holder, str(offer["offer_id"]))
    assert await notices(backend.stores, other) == []  # wave 1 reached one worker
    return service, clock, job.id, holder, other


async def test_a_released_job_is_offered_at_once_to_another_worker(backend: Backend) -> None:
    """Release re-opens the job, logs the reason, frees the worker and offers it to the next."""
    service, clock, job_id, holder, other = await assigned_job(backend)
    clock.now += 5
    job = await service.release(holder, job_id, "van broke down")
    assert (job.state, job.worker_id, job.wave) == (JobState.OPEN, None, 1)
    (offer,) = await notices(backend.stores, other)
    assert offer["type"] == "offer"
    assert isinstance(offer["job"], dict)
    assert offer["job"]["id"] == job_id
    assert [n["type"] for n in await notices(backend.stores, holder)] == ["offer", "assigned"]
    found = await backend.stores.workers.get_workers([holder])
    assert found[holder].availability is Availability.AVAILABLE
    view = await service.get_job(job.org_id, job_id)
    released = [e for e in view.history if e.kind == "released"]
    assert [dict(e.data) for e in released] == [
        {"worker_id": holder, "reason": "van broke down", "was": "assigned"}
    ]
    assert [e.kind for e in view.history][-2:] == ["released", "wave"]
    assert await backend.stores.jobs.active_job_of(holder) is None
    await service.relay.flush()
    assert await backend.stores.outbox.claim_due(clock.now + 3600, 5.0, 100) == []


async def test_a_worker_holding_a_job_cannot_go_off_duty_or_available(backend: Backend) -> None:
    """Off duty and available are refused naming the job; busy is what they are."""
    service, _, job_id, holder, _ = await assigned_job(backend)
    for status in (Availability.OFF_DUTY, Availability.AVAILABLE):
        with pytest.raises(NotEligible) as info:
            await service.set_status(holder, status)
        assert info.value.job_id == job_id
        assert job_id in info.value.message
    await service.set_status(holder, Availability.BUSY)
    found = await backend.stores.workers.get_workers([holder])
    assert found[holder].availability is Availability.BUSY
    await service.release(holder, job_id, "")
    await service.set_status(holder, Availability.OFF_DUTY)


async def test_a_release_after_arriving_or_of_a_foreign_job_is_refused(backend: Backend) -> None:
    """On site the job stays; another worker's release is not found; nothing changes."""
    service, _, job_id, holder, other = await assigned_job(backend)
    with pytest.raises(NotFound):
        await service.release(other, job_id, "")
    await service.progress(holder, job_id, JobState.ON_SITE)
    with pytest.raises(IllegalTransition):
        await service.release(holder, job_id, "")
    assert (await backend.stores.jobs.active_job_of(holder)) is not None
    assert await notices(backend.stores, other) == []


class FirstLookMisses:
    """Wraps a job store: the first ``active_job_of`` answers None, as if an accept
    committed just after it looked."""

    def __init__(self, inner: object) -> None:
        self._inner = inner
        self.missed = False

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    async def active_job_of(self, worker_id: str) -> object:
        if not self.missed:
            self.missed = True
            return None
        return await self._inner.active_job_of(worker_id)  # type: ignore[attr-defined]


async def test_a_job_won_between_the_check_and_the_write_keeps_its_worker_busy(
    backend: Backend,
) -> None:
    """Going off duty re-checks after writing: a job that arrived meanwhile wins, the worker
    is set back to busy and told which job it is."""
    service, _, job_id, holder, _ = await assigned_job(backend)
    racing = FirstLookMisses(backend.stores.jobs)
    service.stores = replace(backend.stores, jobs=racing)  # type: ignore[arg-type]
    with pytest.raises(NotEligible) as info:
        await service.set_status(holder, Availability.OFF_DUTY)
    assert racing.missed
    assert info.value.job_id == job_id
    found = await backend.stores.workers.get_workers([holder])
    assert found[holder].availability is Availability.BUSY
    assert found[holder].fix is not None
