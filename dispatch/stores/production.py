"""The production backend: PostgreSQL (source of truth) plus Redis (hot state).

``open_production_stores`` connects to both services, checks the schema, and
returns a ``ProductionBackend`` whose ``stores`` the service uses and whose
``presence`` the websocket layer uses. What lives where:

=====================  ==========  =======================================
Any number of instances may open the same database and Redis (same
``key_prefix``) and act as one; each needs its own ``instance_id``.

Rules for callers:

* Open once per process in the lifespan; ``await backend.close()`` at
  shutdown, after the last request (it flushes buffered writes, stops the
  feed's background tasks and closes the pools).
* Opening fails fast with ``Unavailable`` (naming the service and address,
  never the password) when PostgreSQL or Redis cannot be reached within
  ``connect_timeout_s``, and with ``MigrationError`` when the schema is
  behind (run ``fieldcloud migrate`` or pass ``apply_migrations=True``).
* During operation connection failures surface as ``Unavailable``.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import redis.asyncio as aioredis

from geo import validate_resolution

from ..errors import Unavailable
from .ports import Stores
from .postgres.dispatchers import PgDispatcherStore
from .postgres.jobs import PgJobStore
from .postgres.lists import PgListings
from .postgres.migrations import MigrationError, migrate, pending
from .postgres.open311 import PgOpen311Store
from .postgres.organisations import PgOrgStore
from .postgres.outbox import PgOutbox
from .postgres.pool import create_pool, pg_errors
from .postgres.workers import PgWorkerStore
from .redis.client import redis_errors
from .redis.feed import PUBLISH_SCRIPT, RedisWorkerFeed
from .redis.fixes import RedisFixes
from .redis.index import MOVE_SCRIPT, NEAREST_SCRIPT, RedisLocationIndex
from .redis.keys import DEFAULT_PREFIX, Keys
from .redis.presence import RedisPresence
from .redis.writer import RedisWriter

__all__ = ["ProductionBackend", "open_production_stores"]


@dataclass(eq=False)
class ProductionBackend:
    """The open production backend: ports, presence, and the pools behind them."""

    stores: Stores
    presence: RedisPresence
    instance_id: str
    keys: Keys
    pg: asyncpg.Pool
    redis: aioredis.Redis
    _writer: RedisWriter
    _feed: RedisWorkerFeed
    _closed: bool = False

    async def ping(self) -> None:
        """Check both services answer; raises ``Unavailable`` if one does not."""
        with pg_errors():
            async with self.pg.acquire() as conn:
                await conn.fetchval("SELECT 1")
        with redis_errors():
            await self.redis.ping()

    async def close(self) -> None:
        """Shut down, in order: stop the feed, flush writes, close Redis, close PostgreSQL."""
        if self._closed:
            return
        self._closed = True
        # 1. The feed's pub/sub reader, control and drain tasks, and its connection.
        await self._feed.aclose()
        # 2. Location writes already submitted still go out.
        await self._writer.aclose()
        # 3. Redis connections.
        await self.redis.aclose()
        # 4. PostgreSQL: wait for connections to come back, then close them.
        try:
            await asyncio.wait_for(self.pg.close(), 10.0)
        except TimeoutError:
            self.pg.terminate()


async def open_production_stores(
    database_url: str,
    redis_url: str,
    resolution: int,
    key_prefix: str = DEFAULT_PREFIX,
    instance_id: str = "fieldcloud",
    *,
    log_size: int = 256,
    pool_min_size: int = 1,
    pool_max_size: int = 10,
    connect_timeout_s: float = 5.0,
    apply_migrations: bool = False,
    log_ttl_s: float = 86_400.0,
    write_delay_s: float = 0.0,
    sweep_s: float = 15.0,
) -> ProductionBackend:
    """Connect to PostgreSQL and Redis and build every store; see the module docstring."""
    validate_resolution(resolution)
    keys = Keys(key_prefix)
    pool = await _open_postgres(
        database_url, pool_min_size, pool_max_size, connect_timeout_s, apply_migrations
    )
    try:
        client = await _open_redis(redis_url, connect_timeout_s)
    except BaseException:
        await pool.close()
        raise
    writer = RedisWriter(client, keys, delay_s=write_delay_s)
    feed = RedisWorkerFeed(client, keys, log_size=log_size, log_ttl_s=log_ttl_s, sweep_s=sweep_s)
    fixes = RedisFixes(client, keys, writer)
    stores = Stores(
        orgs=PgOrgStore(pool),
        workers=PgWorkerStore(pool, fixes),
        jobs=PgJobStore(pool, resolution),
        locations=RedisLocationIndex(client, keys, writer, resolution),
        feed=feed,
        outbox=PgOutbox(pool),
        dispatchers=PgDispatcherStore(pool),
        lists=PgListings(pool, fixes),
        open311=PgOpen311Store(pool),
    )
    return ProductionBackend(
        stores=stores,
        presence=RedisPresence(client, keys),
        instance_id=instance_id,
        keys=keys,
        pg=pool,
        redis=client,
        _writer=writer,
        _feed=feed,
    )


async def _open_postgres(
    dsn: str, min_size: int, max_size: int, timeout_s: float, apply_migrations: bool
) -> asyncpg.Pool:
    where = _redact(dsn)
    try:
        pool = await asyncio.wait_for(
            create_pool(
                dsn, min_size=max(1, min_size), max_size=max_size, connect_timeout_s=timeout_s
            ),
            timeout_s + 1.0,
        )
    except Exception as exc:
        raise Unavailable(
            f"PostgreSQL at {where} cannot be reached: {type(exc).__name__}: {exc}"
        ) from exc
    try:
        async with pool.acquire() as conn:
            missing = await pending(conn)
        if missing and apply_migrations:
            await migrate(dsn)
        elif missing:
            raise MigrationError(
                f"the database at {where} lacks migrations {', '.join(missing)}; "
                "run `fieldcloud migrate` first"
            )
    except BaseException:
        await pool.close()
        raise
    return pool


REDIS_MAX_CONNECTIONS = 64
"""Redis connections per process; callers beyond it wait for one to free up."""


async def _open_redis(url: str, timeout_s: float) -> aioredis.Redis:
    where = _redact(url)
    # A blocking pool: a burst of work (hundreds of phones connecting at once)
    # waits briefly for a connection instead of failing with "too many
    # connections" (redis-py's default pool raises at once when exhausted).
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=REDIS_MAX_CONNECTIONS,
        timeout=max(timeout_s, 10.0),
        decode_responses=True,
        socket_connect_timeout=timeout_s,
        socket_timeout=max(timeout_s, 10.0),
        health_check_interval=30,
    )
    client: aioredis.Redis = aioredis.Redis.from_pool(pool)
    try:
        await asyncio.wait_for(_prepare(client), timeout_s + 1.0)
    except Exception as exc:
        await client.aclose()
        raise Unavailable(
            f"Redis at {where} cannot be reached: {type(exc).__name__}: {exc}"
        ) from exc
    return client


async def _prepare(client: aioredis.Redis) -> None:
    await client.ping()
    for script in (MOVE_SCRIPT, PUBLISH_SCRIPT, NEAREST_SCRIPT):
        await client.script_load(script.text)


def _redact(url: str) -> str:
    """``url`` without its password, for error messages."""
    with contextlib.suppress(ValueError):
        parts = urlsplit(url)
        if parts.password is not None:
            host = parts.hostname or ""
            if parts.port is not None:
                host = f"{host}:{parts.port}"
            user = f"{parts.username}:***@" if parts.username else ":***@"
            return urlunsplit(parts._replace(netloc=user + host))
        return url
    return "<unparseable URL>"
