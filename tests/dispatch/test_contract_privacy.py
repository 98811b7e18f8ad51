"""Location privacy on every backend: an off-duty technician's position is kept nowhere.

Going off duty deletes the last fix and the index entry; a fix reported while
off duty is not stored. On production the test then reads back everything
under its Redis prefix and every PostgreSQL table and finds neither the
worker in the location keys nor the coordinates anywhere.
"""

from __future__ import annotations

import math
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from dispatch.config import DispatchConfig
from dispatch.models import Availability, WorkerKind
from dispatch.service import DispatchService
from dispatch.stores.redis.keys import Keys
from tests.dispatch.backends import Backend

CONFIG = DispatchConfig(wave_size=5, offer_timeout_s=600.0, radii_m=(1000.0,))
ON_DUTY_AT = (45.76512345, 4.83571234)
OFF_DUTY_AT = (45.76598765, 4.83579876)
"""Coordinates with digits no other record of the test holds."""


class Clock:
    """A pinned clock."""

    now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


async def redis_dump(backend: Backend) -> list[tuple[str, str]]:
    """Every ``(key, text)`` under the backend's prefix: hash fields and values, set and
    stream members, strings, one pair per item."""
    # Replies are read as plain text (decode_responses); redis-py types them loosely.
    client: Any = aioredis.Redis.from_url(backend.redis_url, decode_responses=True)
    found: list[tuple[str, str]] = []
    try:
        async for key in client.scan_iter(match=Keys(backend.prefix).pattern(), count=1000):
            kind = await client.type(key)
            if kind == "hash":
                for field, value in (await client.hgetall(key)).items():
                    found += [(key, field), (key, value)]
            elif kind == "zset":
                found += [(key, m) for m in await client.zrange(key, 0, -1)]
            elif kind == "stream":
                for _, entry in await client.xrange(key):
                    found += [(key, v) for v in entry.values()]
            elif kind == "string":
                found.append((key, str(await client.get(key))))
            else:
                raise AssertionError(f"{key}: a {kind} the test does not read")
    finally:
        await client.aclose()
    return found


async def pg_rows_holding(backend: Backend, text: str) -> list[str]:
    """Names of the PostgreSQL tables with a row whose text holds ``text``."""
    assert backend.env is not None
    conn = await asyncpg.connect(backend.env.dsn, timeout=5)
    try:
        tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        holding = []
        for row in tables:
            name = row["tablename"]
            # The names come from the catalogue of the test's own database.
            query = f'SELECT count(*) FROM "{name}" t WHERE t::text LIKE $1'  # noqa: S608
            hits = await conn.fetchval(query, f"%{text}%")
            if hits:
                holding.append(name)
        return holding
    finally:
        await conn.close()


async def test_going_off_duty_leaves_no_position_anywhere(backend: Backend) -> None:
    """After off duty neither the last fix nor the index entry is left, and a fix reported
    off duty is not stored: the store, the index, Redis and PostgreSQL hold none of it."""
    service = DispatchService(backend.stores, CONFIG, Clock())
    org, _ = await service.create_org("City")
    worker, _ = await service.create_worker(org.id, "Ann", WorkerKind.EMPLOYEE, [])
    await service.set_status(worker.id, Availability.AVAILABLE)
    await service.report_location(worker.id, *ON_DUTY_AT, accuracy_m=5.0)
    stored = (await backend.stores.workers.get_workers([worker.id]))[worker.id]
    assert stored.fix is not None  # the test sees a stored fix when there is one
    assert [h.key for h in await backend.stores.locations.nearest(org.id, *ON_DUTY_AT, 5, 100.0)]

    await service.set_status(worker.id, Availability.OFF_DUTY)
    answer = await service.report_location(worker.id, *OFF_DUTY_AT)
    assert answer.fix is None

    stored = (await backend.stores.workers.get_workers([worker.id]))[worker.id]
    assert stored.fix is None
    assert await backend.stores.locations.nearest(org.id, *OFF_DUTY_AT, 5, math.inf) == []
    if backend.production is None:
        return
    coordinates = [repr(c) for c in (*ON_DUTY_AT, *OFF_DUTY_AT)]
    dump = await redis_dump(backend)
    assert any(":loc:" in key for key, _ in dump)  # the scan reads the location keys
    assert [(k, t) for k, t in dump if ":loc:" in k and worker.id in t] == []
    assert [(k, t) for k, t in dump for c in coordinates if c in t] == []
    for text in coordinates:
        assert await pg_rows_holding(backend, text) == []


async def test_a_fix_of_a_worker_who_never_went_on_duty_is_not_stored(backend: Backend) -> None:
    """A new (off-duty) worker's location reports are dropped, and going available then
    finds no position to index until the next fix."""
    service = DispatchService(backend.stores, CONFIG, Clock())
    org, _ = await service.create_org("City")
    worker, _ = await service.create_worker(org.id, "Bo", WorkerKind.EMPLOYEE, [])
    await service.report_location(worker.id, *OFF_DUTY_AT)
    await service.set_status(worker.id, Availability.AVAILABLE)
    assert (await backend.stores.workers.get_workers([worker.id]))[worker.id].fix is None
    assert await backend.stores.locations.nearest(org.id, *OFF_DUTY_AT, 5, math.inf) == []
    await service.report_location(worker.id, *ON_DUTY_AT)
    hits = await backend.stores.locations.nearest(org.id, *ON_DUTY_AT, 5, 100.0)
    assert [h.key for h in hits] == [worker.id]
