"""Backends for the store contract suite, opened the same way for every test.

``service_env()`` (a module fixture's body) creates a PostgreSQL database
``fieldcloud_test_<random>``, migrates it, and picks a Redis key prefix
``fieldcloud_test_<random>`` (the same name); at the end it drops the database
and deletes every key under the prefix (``SCAN`` + ``DEL``), and checks nothing
is left. Databases and prefixes of runs that were killed before their
teardown are swept by a later run once they are an hour old.
``open_backend(kind, env)`` opens one backend for one test: ``memory`` needs
no services; ``production`` empties the tables and takes a fresh sub-prefix.

Rules for callers: production tests need the PostgreSQL and Redis servers
of ``tests.services`` (127.0.0.1 by default, or ``FIELDCLOUD_TEST_*``); when
they cannot be reached the tests fail (they never skip).
``Backend.twin()`` opens a second instance on the same database and prefix
(the memory backend is one process: its twin is itself).
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncpg
import pytest
import redis.asyncio as aioredis

from dispatch.models import (
    Availability,
    Fix,
    Job,
    JobEvent,
    JobState,
    Organisation,
    Worker,
    WorkerKind,
)
from dispatch.stores.memory import memory_stores
from dispatch.stores.ports import Stores
from dispatch.stores.postgres.migrations import migrate
from dispatch.stores.production import ProductionBackend, open_production_stores
from dispatch.stores.redis.keys import Keys
from tests.services import PG_ADMIN_DSN, REDIS_URL, pg_where, with_database

RESOLUTION = 9
LOG_SIZE = 5
BACKENDS = ["memory", "production"]

T = TypeVar("T")

STALE_AFTER_S = 3600.0
_STAMP = "fieldcloud test database, created at "

_TABLES = (
    "dispatchers, open311_requests, open311_keys, open311_services,"
    " outbox, job_events, offers, jobs, workers, org_keys, orgs"
)


@dataclass
class ServiceEnv:
    """One module's database and Redis prefix."""

    dsn: str
    database: str
    prefix: str
    _counter: Iterator[int] = field(default_factory=itertools.count)

    def next_prefix(self) -> str:
        """A fresh key prefix under this module's prefix."""
        return f"{self.prefix}:{next(self._counter)}"


def pg_dsn(database: str) -> str:
    """The DSN of ``database`` on the test server."""
    return with_database(database)


async def create_database(name: str) -> None:
    """``CREATE DATABASE name`` (stamped with its creation time); fails loudly if
    PostgreSQL is not there."""
    try:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    except Exception as exc:
        pytest.fail(f"PostgreSQL at {pg_where()} is not reachable: {exc!r}", pytrace=False)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.execute(f"COMMENT ON DATABASE \"{name}\" IS '{_STAMP}{time.time():.0f}'")
    finally:
        await conn.close()


async def sweep_stale() -> None:
    """Drop test databases (and their Redis prefixes) left by runs that were killed.

    Only databases stamped more than ``STALE_AFTER_S`` ago are touched, so
    concurrent runs are safe. A module's Redis prefix is its database's name.
    """
    conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    try:
        rows = await conn.fetch(
            "SELECT datname, shobj_description(oid, 'pg_database') AS note FROM pg_database"
            " WHERE datname LIKE 'fieldcloud\\_test\\_%'"
        )
    finally:
        await conn.close()
    for row in rows:
        note = row["note"] or ""
        if note.startswith(_STAMP) and time.time() - float(note[len(_STAMP) :]) > STALE_AFTER_S:
            await drop_database(row["datname"])
            await delete_prefix(row["datname"])


async def drop_database(name: str) -> None:
    """``DROP DATABASE name WITH (FORCE)`` and check it is gone."""
    conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        left = await conn.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", name)
        assert left == 0, f"database {name} was left behind"
    finally:
        await conn.close()


async def delete_prefix(prefix: str) -> int:
    """Delete every Redis key under ``prefix`` (SCAN + DEL); return how many are left."""
    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        pattern = Keys(prefix).pattern()
        batch: list[str] = []
        async for key in client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 500:
                await client.delete(*batch)
                batch.clear()
        if batch:
            await client.delete(*batch)
        return len([k async for k in client.scan_iter(match=pattern, count=1000)])
    finally:
        await client.aclose()


async def _check_redis() -> None:
    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=5)
    try:
        await client.ping()
    except Exception as exc:
        pytest.fail(f"Redis at {REDIS_URL} is not reachable: {exc!r}", pytrace=False)
    finally:
        await client.aclose()


def _run(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion on a fresh loop in a helper thread.

    Module fixtures are set up from inside a test's running loop, where
    ``asyncio.run`` is not allowed.
    """
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


def service_env() -> Iterator[ServiceEnv]:
    """Body of a module fixture: a migrated database and a Redis prefix, removed after."""
    tag = secrets.token_hex(4)
    name = f"fieldcloud_test_{tag}"
    env = ServiceEnv(dsn=pg_dsn(name), database=name, prefix=name)
    _run(_check_redis)
    _run(lambda: create_database(env.database))
    _run(sweep_stale)
    try:
        _run(lambda: migrate(env.dsn))
        yield env
    finally:
        _run(lambda: drop_database(env.database))
        left = _run(lambda: delete_prefix(env.prefix))
        assert left == 0, f"{left} Redis keys under {env.prefix} were left behind"


@dataclass(eq=False)
class Backend:
    """One open backend as a test sees it."""

    kind: str
    stores: Stores
    production: ProductionBackend | None = None
    env: ServiceEnv | None = None
    prefix: str = ""
    redis_url: str = REDIS_URL
    _twins: list[ProductionBackend] = field(default_factory=list)

    async def twin(self) -> Stores:
        """A second instance sharing this backend's state (closed with it)."""
        if self.env is None:
            return self.stores
        other = await open_production_stores(
            self.env.dsn,
            self.redis_url,
            RESOLUTION,
            self.prefix,
            f"twin-{len(self._twins)}",
            log_size=LOG_SIZE,
            sweep_s=1.0,
        )
        self._twins.append(other)
        return other.stores

    async def close(self) -> None:
        for twin in self._twins:
            await twin.close()
        if self.production is not None:
            await self.production.close()


@asynccontextmanager
async def open_backend(
    kind: str, env: ServiceEnv | None, redis_url: str = REDIS_URL
) -> AsyncIterator[Backend]:
    """Open a fresh, empty backend of ``kind`` (``env`` is required for production).

    ``redis_url`` names another Redis for production (a test's own, to stop).
    """
    if kind == "memory":
        yield Backend(kind, memory_stores(RESOLUTION, LOG_SIZE))
        return
    assert env is not None, "production backends need the services fixture"
    conn = await asyncpg.connect(env.dsn, timeout=5)
    try:
        await conn.execute(f"TRUNCATE {_TABLES}")
    finally:
        await conn.close()
    prefix = env.next_prefix()
    production = await open_production_stores(
        env.dsn,
        redis_url,
        RESOLUTION,
        prefix,
        "main",
        log_size=LOG_SIZE,
        sweep_s=1.0,
        connect_timeout_s=1.0,
    )
    backend = Backend(kind, production.stores, production, env, prefix, redis_url)
    try:
        yield backend
    finally:
        await backend.close()


# -- records for the tests -------------------------------------------------------


def new_id(prefix: str) -> str:
    """A random id like the service's."""
    return f"{prefix}_{secrets.token_hex(8)}"


async def add_org(stores: Stores, name: str = "Plant") -> Organisation:
    """Store a new organisation (API-key hash = ``key-<id>``)."""
    org = Organisation(new_id("org"), name, 100.0)
    await stores.orgs.add_org(org, f"key-{org.id}")
    return org


async def add_worker(
    stores: Stores,
    org_id: str,
    *,
    availability: Availability = Availability.AVAILABLE,
    skills: frozenset[str] = frozenset({"electrical"}),
    fix: Fix | None = None,
) -> Worker:
    """Store a new worker (token hash = ``token-<id>``)."""
    worker = Worker(
        id=new_id("wrk"),
        org_id=org_id,
        name="Ada",
        kind=WorkerKind.CONTRACTOR,
        skills=skills,
        availability=availability,
        fix=fix,
        created_at=101.0,
    )
    await stores.workers.add_worker(worker, f"token-{worker.id}")
    return worker


async def add_job(stores: Stores, org_id: str, lat: float = 52.52, lng: float = 13.40) -> Job:
    """Store a new open job with its ``created`` event."""
    job = Job(
        id=new_id("job"),
        org_id=org_id,
        title="Street light out",
        lat=lat,
        lng=lng,
        skills=frozenset({"electrical"}),
        priority=2,
        state=JobState.OPEN,
        created_at=200.0,
        updated_at=200.0,
        description="corner of 5th",
        external_ref="ext-1",
    )
    await stores.jobs.add_job(job, JobEvent(job.id, org_id, 200.0, "created", {"by": "test"}))
    return job
