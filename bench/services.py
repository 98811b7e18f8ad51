"""PostgreSQL and Redis for the production scenarios: the bench's own database and prefix.

:func:`create_services` makes a fresh database ``fieldcloud_bench_<random>``
on the PostgreSQL server of ``admin_dsn`` (which must allow ``CREATE
DATABASE``), applies the migrations with :func:`dispatch.stores.postgres.migrations.migrate`,
and picks a Redis key prefix of the same name. :func:`drop_services` drops the
database (``WITH (FORCE)``: connections still open are cut) and deletes every
key under the prefix (``SCAN`` + ``DEL``). ``python -m bench`` creates
them before the first scenario and drops them in a ``finally`` that also runs
after a failure, Ctrl-C (SIGINT) or SIGTERM; only ``kill -9`` leaves them
behind (then: ``DROP DATABASE fieldcloud_bench_… WITH (FORCE)`` and
``redis-cli --scan --pattern 'fieldcloud_bench_…:*' | xargs redis-cli del``).

:func:`check_services` answers, before anything starts, whether both services
answer, with a message naming the one that does not.

:func:`service_pids` finds local ``redis-server`` and ``postgres`` processes so
that the ingest scenarios can report their CPU share beside the servers'.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import redis.asyncio as aioredis

from dispatch.stores.postgres.migrations import migrate
from dispatch.stores.redis.keys import Keys

DEFAULT_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
CONNECT_TIMEOUT_S = 5.0


class ServicesUnavailable(RuntimeError):
    """PostgreSQL or Redis does not answer (the message names which, and where)."""


@dataclass(frozen=True, slots=True)
class Services:
    """The database and key prefix of one bench run (what the servers get in their environment)."""

    admin_dsn: str
    database: str
    database_url: str
    redis_url: str
    key_prefix: str

    def env(self) -> dict[str, str]:
        """The variables that put ``fieldcloud serve`` in production mode on these services."""
        return {
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "FIELDCLOUD_KEY_PREFIX": self.key_prefix,
        }


def _with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


def redact_url(url: str) -> str:
    """``url`` without its password (for messages and the JSON)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{netloc}"))


async def check_services(admin_dsn: str, redis_url: str) -> None:
    """Raise :class:`ServicesUnavailable` unless both services answer."""
    try:
        conn = await asyncpg.connect(admin_dsn, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise ServicesUnavailable(
            f"PostgreSQL does not answer at {redact_url(admin_dsn)}: {type(exc).__name__}: {exc}"
        ) from exc
    await conn.close()
    client = aioredis.Redis.from_url(redis_url, socket_connect_timeout=CONNECT_TIMEOUT_S)
    try:
        await client.ping()
    except (OSError, TimeoutError, aioredis.RedisError) as exc:
        raise ServicesUnavailable(
            f"Redis does not answer at {redact_url(redis_url)}: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        await client.aclose()


async def create_services(admin_dsn: str, redis_url: str) -> Services:
    """A new, migrated database and a new key prefix (see the module docstring)."""
    name = f"fieldcloud_bench_{secrets.token_hex(4)}"
    services = Services(admin_dsn, name, _with_database(admin_dsn, name), redis_url, name)
    conn = await asyncpg.connect(admin_dsn, timeout=CONNECT_TIMEOUT_S)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        await migrate(services.database_url)
    except BaseException:
        await drop_services(services)
        raise
    return services


async def drop_services(services: Services) -> dict[str, int]:
    """Drop the database and delete the prefix's keys; returns what was removed.

    Each half is tried even if the other fails; the first error is raised after both.
    """
    removed = {"databases": 0, "redis_keys": 0}
    errors: list[BaseException] = []
    try:
        conn = await asyncpg.connect(services.admin_dsn, timeout=CONNECT_TIMEOUT_S)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{services.database}" WITH (FORCE)')
            removed["databases"] = 1
        finally:
            await conn.close()
    except Exception as exc:
        errors.append(exc)
    try:
        removed["redis_keys"] = await delete_prefix(services.redis_url, services.key_prefix)
    except Exception as exc:
        errors.append(exc)
    if errors:
        raise errors[0]
    return removed


async def delete_prefix(redis_url: str, prefix: str) -> int:
    """Delete every key under ``prefix``; returns how many."""
    client = aioredis.Redis.from_url(redis_url, socket_connect_timeout=CONNECT_TIMEOUT_S)
    deleted = 0
    try:
        batch: list[bytes] = []
        async for key in client.scan_iter(match=Keys(prefix).pattern(), count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += int(await client.delete(*batch))
                batch = []
        if batch:
            deleted += int(await client.delete(*batch))
    finally:
        await client.aclose()
    return deleted


def cleanup_sync(services: Services) -> dict[str, int]:
    """:func:`drop_services` on a loop of its own (after the bench's loop has ended)."""
    return asyncio.run(drop_services(services))


def service_pids() -> dict[str, list[int]]:
    """Local ``redis-server`` and ``postgres`` processes (empty when the services are remote)."""
    found: dict[str, list[int]] = {"redis": [], "postgres": []}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            comm = (entry / "comm").read_text().strip()
            if comm.startswith("redis-server"):
                found["redis"].append(int(entry.name))
            elif comm.startswith("postgres"):
                found["postgres"].append(int(entry.name))
    return found
