"""The runtime's sweep of departed phones, in process with a pinned clock and a presence
that can be made to fail (Redis away)."""

from __future__ import annotations

import pytest

from dispatch.config import DispatchConfig
from dispatch.errors import Unavailable
from dispatch.models import Availability, WorkerKind
from dispatch.service import DispatchService
from dispatch.stores.memory import MemoryPresence, memory_stores
from mobile_api.runtime import Runtime, Session
from mobile_api.settings import Settings

FORGET_S = 60.0
SPOT = (48.8566, 2.3522)


class Clock:
    """The service's clock, moved by hand."""

    now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class FlakyPresence(MemoryPresence):
    """``MemoryPresence`` whose ``holder`` raises ``Unavailable`` while ``away``."""

    away = False

    async def holder(self, worker_id: str) -> str | None:
        if self.away:
            raise Unavailable("redis is away")
        return await super().holder(worker_id)


class Closed(Session):
    """A socket that is already closed."""

    async def close(self, code: int, reason: str) -> None:
        self.open = False


async def departed() -> tuple[Runtime, FlakyPresence, Clock, str, str]:
    """A runtime whose only worker (indexed, with a fix) just closed its socket here."""
    clock = Clock()
    service = DispatchService(memory_stores(9), DispatchConfig(), clock)
    presence = FlakyPresence()
    rt = Runtime(Settings(disconnect_forget_s=FORGET_S), service, "admin", "memory", presence)
    org, _ = await service.create_org("City")
    worker, _ = await service.create_worker(org.id, "Ann", WorkerKind.EMPLOYEE, [])
    await service.set_status(worker.id, Availability.AVAILABLE)
    await service.report_location(worker.id, *SPOT)
    session = Closed(worker.id)
    await rt.register(session)
    rt.left(session, org.id)
    return rt, presence, clock, org.id, worker.id


async def has_fix(rt: Runtime, worker_id: str) -> bool:
    found = await rt.service.stores.workers.get_workers([worker_id])
    return found[worker_id].fix is not None


async def test_presence_unknown_keeps_the_departure_for_the_next_sweep() -> None:
    """While it cannot be told whether the phone is back elsewhere, nothing is forgotten
    and the sweep raises; once it can, the position goes."""
    rt, presence, clock, _, worker_id = await departed()
    clock.now += FORGET_S
    presence.away = True
    with pytest.raises(Unavailable):
        await rt.forget_departed()
    assert await has_fix(rt, worker_id)
    assert len(rt.departures) == 1
    presence.away = False
    assert await rt.forget_departed() == [worker_id]
    assert not await has_fix(rt, worker_id)
    assert len(rt.departures) == 0


async def test_a_phone_back_on_another_instance_keeps_its_position() -> None:
    """A worker whose socket another instance holds is not forgotten, and the departure ends."""
    rt, presence, clock, _, worker_id = await departed()
    await presence.claim(worker_id, "other-instance", 3600.0)
    clock.now += FORGET_S
    assert await rt.forget_departed() == []
    assert await has_fix(rt, worker_id)
    assert len(rt.departures) == 0
