"""Production backend only: migrations, start-up checks, outages, presence, key layout."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from dispatch.errors import Unavailable
from dispatch.models import Fix
from dispatch.stores.postgres.jobs import PgJobStore
from dispatch.stores.postgres.migrations import MigrationError, migrate, migrations
from dispatch.stores.postgres.pool import Q
from dispatch.stores.postgres.workers import PgWorkerStore
from dispatch.stores.production import open_production_stores
from dispatch.stores.redis.feed import RedisWorkerFeed
from dispatch.stores.redis.fixes import RedisFixes
from dispatch.stores.redis.index import RedisLocationIndex
from dispatch.stores.redis.keys import Keys
from dispatch.stores.redis.writer import RedisWriter
from tests.dispatch.backends import (
    RESOLUTION,
    Backend,
    ServiceEnv,
    add_job,
    add_org,
    add_worker,
    create_database,
    delete_prefix,
    drop_database,
    new_id,
    open_backend,
    pg_dsn,
)
from tests.services import REDIS_URL

pytestmark = pytest.mark.services

DEAD_PG = "postgresql://postgres:secret@127.0.0.1:1/nowhere"
DEAD_REDIS = "redis://127.0.0.1:1/0"


@pytest.fixture
async def backend(services: ServiceEnv) -> AsyncIterator[Backend]:
    async with open_backend("production", services) as opened:
        yield opened


@pytest.fixture
async def fresh_database() -> AsyncIterator[str]:
    name = new_id("fieldcloud_test_mig")
    await create_database(name)
    try:
        yield pg_dsn(name)
    finally:
        await drop_database(name)


async def test_migrate_applies_each_file_once_even_when_racing(fresh_database: str) -> None:
    """Two concurrent ``migrate`` runs apply every file exactly once; a third does nothing."""
    names = [m.name for m in migrations()]
    assert names
    assert names[0] == "0001_initial"
    first, second = await asyncio.gather(migrate(fresh_database), migrate(fresh_database))
    assert sorted([first, second]) == [[], names]
    assert await migrate(fresh_database) == []
    conn = await asyncpg.connect(fresh_database)
    try:
        rows = await conn.fetch("SELECT name FROM schema_migrations ORDER BY name")
        assert [r["name"] for r in rows] == names
    finally:
        await conn.close()


async def test_a_changed_migration_is_refused(fresh_database: str) -> None:
    """An applied migration whose recorded checksum differs is refused, not re-run."""
    await migrate(fresh_database)
    conn = await asyncpg.connect(fresh_database)
    try:
        await conn.execute("UPDATE schema_migrations SET checksum = 'x'")
    finally:
        await conn.close()
    with pytest.raises(MigrationError, match="changed"):
        await migrate(fresh_database)


async def test_open_refuses_an_unmigrated_database(fresh_database: str) -> None:
    """Opening on a database with pending migrations fails unless asked to apply them."""
    with pytest.raises(MigrationError, match="fieldcloud migrate"):
        await open_production_stores(fresh_database, REDIS_URL, RESOLUTION, "unused", "i")
    prefix = new_id("fieldcloud_test_open")
    backend = await open_production_stores(
        fresh_database, REDIS_URL, RESOLUTION, prefix, "i", apply_migrations=True
    )
    try:
        await backend.ping()
    finally:
        await backend.close()
        assert await delete_prefix(prefix) == 0


async def test_open_fails_fast_without_postgres() -> None:
    """An unreachable PostgreSQL fails start-up at once with ``Unavailable``, password hidden."""
    started = time.monotonic()
    with pytest.raises(Unavailable, match="PostgreSQL") as caught:
        await open_production_stores(DEAD_PG, REDIS_URL, RESOLUTION, "unused", "i")
    assert time.monotonic() - started < 5
    assert "secret" not in str(caught.value)


async def test_open_fails_fast_without_redis(services: ServiceEnv) -> None:
    """An unreachable Redis fails start-up at once with ``Unavailable``."""
    started = time.monotonic()
    with pytest.raises(Unavailable, match="Redis"):
        await open_production_stores(services.dsn, DEAD_REDIS, RESOLUTION, "unused", "i")
    assert time.monotonic() - started < 5


async def test_postgres_outage_raises_unavailable() -> None:
    """Store calls on a PostgreSQL that cannot be reached raise ``Unavailable``."""
    pool = await asyncpg.create_pool(DEAD_PG, min_size=0, max_size=1, timeout=2)
    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    writer = RedisWriter(client, Keys(new_id("fieldcloud_test_dead")))
    try:
        workers = PgWorkerStore(pool, RedisFixes(client, Keys("unused"), writer))
        jobs = PgJobStore(pool, RESOLUTION)
        with pytest.raises(Unavailable):
            await workers.get_worker("org", "wrk")
        with pytest.raises(Unavailable):
            await workers.claim("wrk")
        with pytest.raises(Unavailable):
            await jobs.due(1.0, 10)
        with pytest.raises(Unavailable):
            async with jobs.transaction("job"):
                pytest.fail("the block must not run")
    finally:
        await writer.aclose()
        await client.aclose()
        await pool.close()


async def test_redis_outage_raises_unavailable() -> None:
    """Index, fix and feed calls on a Redis that cannot be reached raise ``Unavailable``."""
    client = aioredis.Redis.from_url(DEAD_REDIS, decode_responses=True, socket_connect_timeout=1)
    keys = Keys("unused")
    writer = RedisWriter(client, keys)
    index = RedisLocationIndex(client, keys, writer, RESOLUTION)
    feed = RedisWorkerFeed(client, keys)
    try:
        with pytest.raises(Unavailable):
            await index.upsert("org", "wrk", 52.0, 13.0)
        with pytest.raises(Unavailable):
            await index.nearest("org", 52.0, 13.0, 3, 1_000.0)
        with pytest.raises(Unavailable):
            await RedisFixes(client, keys, writer).get_fixes({"org": ["wrk"]})
        with pytest.raises(Unavailable):
            await feed.publish("wrk", {"type": "ping"})
        with pytest.raises(Unavailable):
            await feed.replay("wrk", 0)
    finally:
        await feed.aclose()
        await writer.aclose()
        await client.aclose()


async def test_job_write_is_guarded_by_version(backend: Backend) -> None:
    """If the job row changed under a transaction, its write is refused and rolled back."""
    stores = backend.stores
    org = await add_org(stores)
    job = await add_job(stores, org.id)
    assert backend.production is not None
    pool = backend.production.pg

    async def write_behind_the_lock() -> None:
        async with stores.jobs.transaction(job.id) as book:
            # Inside the block Q runs on the transaction's own connection.
            await Q(pool).execute("UPDATE jobs SET version = version + 100 WHERE id = $1", job.id)
            book.job.title = "lost"
            book.job.version += 1

    with pytest.raises(Unavailable, match="changed outside"):
        await write_behind_the_lock()
    stored = await stores.jobs.get_job(org.id, job.id)
    assert stored == job


async def test_presence_newest_claim_wins(backend: Backend) -> None:
    """The newest claim takes the worker; only the holder can refresh or release it."""
    assert backend.production is not None
    presence = backend.production.presence
    worker = new_id("wrk")
    assert await presence.holder(worker) is None
    assert await presence.claim(worker, "a", 30) is None
    assert await presence.holder(worker) == "a"
    assert await presence.claim(worker, "b", 30) == "a"
    assert await presence.refresh(worker, "a", 30) is False
    assert await presence.release(worker, "a") is False
    assert await presence.holder(worker) == "b"
    assert await presence.refresh(worker, "b", 30) is True
    assert await presence.release(worker, "b") is True
    assert await presence.holder(worker) is None


async def test_presence_expires(backend: Backend) -> None:
    """A claim that is not refreshed expires by itself."""
    assert backend.production is not None
    presence = backend.production.presence
    worker = new_id("wrk")
    await presence.claim(worker, "a", 0.05)
    await asyncio.sleep(0.15)
    assert await presence.holder(worker) is None


async def test_presence_refresh_retakes_an_expired_claim_but_not_a_taken_one(
    backend: Backend,
) -> None:
    """A holder whose claim expired unnoticed retakes it on refresh, unless someone took it."""
    assert backend.production is not None
    presence = backend.production.presence
    worker = new_id("wrk")
    await presence.claim(worker, "a", 0.05)
    await asyncio.sleep(0.15)
    assert await presence.refresh(worker, "a", 30) is True
    assert await presence.holder(worker) == "a"
    await presence.claim(worker, "b", 30)
    assert await presence.refresh(worker, "a", 30) is False
    assert await presence.holder(worker) == "b"


async def test_every_key_lives_under_the_prefix_with_its_hash_tag(backend: Backend) -> None:
    """Everything written goes under the prefix; per-org and per-worker keys carry their tags."""
    assert backend.production is not None
    stores, client = backend.stores, backend.production.redis
    org = await add_org(stores)
    worker = await add_worker(stores, org.id)
    await stores.workers.set_fix(org.id, worker.id, Fix(52.5, 13.4, None, 1.0))
    await stores.locations.upsert(org.id, worker.id, 52.5, 13.4)
    await stores.feed.publish(worker.id, {"type": "ping"}, key="eff_1")
    await backend.production.presence.claim(worker.id, "a", 30)
    found = [key async for key in client.scan_iter(match=Keys(backend.prefix).pattern())]
    org_keys = [k for k in found if f"{{o:{org.id}}}" in k]
    worker_keys = [k for k in found if f"{{w:{worker.id}}}" in k]
    names = sorted(k.split(f"{{o:{org.id}}}:", 1)[1].split(":", 1)[0] for k in org_keys)
    assert names == ["c", "cellgeo", "fix", "reach", "where"]
    assert sorted(k.rsplit(":", 1)[1] for k in worker_keys) == ["at", "keys", "log", "seq"]
    assert len(found) == len(org_keys) + len(worker_keys)


async def test_a_notice_whose_wake_up_is_lost_arrives_by_the_rolling_sweep(
    backend: Backend,
) -> None:
    """A notice logged without its pub/sub message still reaches its listener.

    Forty workers are listened to (the sweep reads them a slice at a time),
    and wake-ups for another worker keep coming the whole time: the sweep
    must not wait for a quiet moment. The backend sweeps every log once per
    second.
    """
    assert backend.production is not None
    stores, client, keys = backend.stores, backend.production.redis, Keys(backend.prefix)
    got: dict[str, list[int]] = {}
    arrived = asyncio.Event()
    watched = [f"wrk_sweep_{i:02d}" for i in range(40)]
    stops = []
    for worker_id in [*watched, "wrk_busy"]:

        def record(notice: object, worker_id: str = worker_id) -> None:
            got.setdefault(worker_id, []).append(getattr(notice, "seq", -1))
            if worker_id == watched[17]:
                arrived.set()

        stops.append(stores.feed.listen(worker_id, record))
    await stores.feed.replay(watched[0], 0)  # waits until its listener is live
    await asyncio.sleep(0.2)
    lost = watched[17]
    await client.set(keys.feed_seq(lost), "41")
    await client.xadd(keys.feed_log(lost), {"n": '{"type": "ping"}'}, id="41-0")

    async def busy() -> None:
        while True:
            await stores.feed.publish("wrk_busy", {"type": "ping"})
            await asyncio.sleep(0.05)

    chatter = asyncio.create_task(busy())
    try:
        async with asyncio.timeout(5.0):
            await arrived.wait()
    finally:
        chatter.cancel()
        for stop in stops:
            stop()
    assert got[lost] == [41]
    assert len(got["wrk_busy"]) >= 2


async def test_writes_of_one_worker_land_in_order_across_writer_lanes(backend: Backend) -> None:
    """Moves and removals submitted in one tick for many workers (spread over the writer's
    lanes, with later writes queued while earlier batches are in flight) end in each
    worker's last state: a worker's writes are applied in the order submitted."""
    stores = backend.stores
    org = await add_org(stores)
    workers = [f"wrk_order_{i:03d}" for i in range(120)]
    rng = random.Random(7)
    last: dict[str, tuple[float, float] | None] = {}
    pending: list[asyncio.Future[Any]] = []
    for step in range(6):
        for worker_id in workers:
            if rng.random() < 0.3:
                pending.append(asyncio.ensure_future(stores.locations.remove(org.id, worker_id)))
                last[worker_id] = None
            else:
                lat, lng = 52.5 + rng.uniform(-0.05, 0.05), 13.4 + rng.uniform(-0.05, 0.05)
                move = stores.locations.upsert(org.id, worker_id, lat, lng)
                pending.append(asyncio.ensure_future(move))
                last[worker_id] = (lat, lng)
        if step % 2:
            await asyncio.sleep(0)  # let a batch leave while more are submitted
    await asyncio.gather(*pending)
    found = {
        hit.key: (hit.lat, hit.lng)
        for hit in await stores.locations.nearest(org.id, 52.5, 13.4, 1_000, 50_000.0)
    }
    assert found == {w: p for w, p in last.items() if p is not None}


async def test_a_worker_id_that_would_break_a_batch_is_refused(backend: Backend) -> None:
    """Writes travel to Redis as tab-separated lines: an id with a tab or newline is refused
    before anything is queued, and the other workers' writes are unaffected."""
    stores = backend.stores
    org = await add_org(stores)
    for bad in ("wrk\tx", "wrk\nx"):
        with pytest.raises(ValueError, match="tab or a newline"):
            await stores.locations.upsert(org.id, bad, 52.5, 13.4)
    await stores.locations.upsert(org.id, "wrk_fine", 52.5, 13.4)
    hits = await stores.locations.nearest(org.id, 52.5, 13.4, 5, 1_000.0)
    assert [h.key for h in hits] == ["wrk_fine"]
