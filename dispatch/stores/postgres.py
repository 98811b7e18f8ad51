"""PostgreSQL backend (asyncpg): organisations and workers; shared plumbing.

PostgreSQL is the source of truth and decides every race with one
conditional statement (``claim``) or a row lock (``pg_jobs``). Rules for
callers:

* Build the pool with ``create_pool`` (it installs the ``jsonb`` codec the
  stores rely on) on a database migrated by ``dispatch.stores.migrate``.
* A worker's last fix is hot state and is not stored here: ``PgWorkerStore``
  reads and writes it through a ``FixCache`` (Redis in production,
  ``dispatch.stores.redis.RedisFixes``). A lost fix only means the worker is
  not matched until the phone reports again.
* Inside ``PgJobStore.transaction`` the calling task's statements of every
  store here run on the transaction's connection (a context variable carries
  it): ``claim`` inside an accept commits or rolls back with the job, and a
  transaction never needs a second pooled connection, so pool exhaustion
  cannot deadlock it. Do not share that task's context with concurrent
  children (no ``gather`` of store calls inside a transaction block).
* Connection failures surface as ``dispatch.errors.Unavailable``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import Any, Protocol

import asyncpg

from ..errors import InvalidInput, Unavailable
from ..models import Availability, Fix, Organisation, Worker, WorkerKind

__all__ = [
    "FixCache",
    "PgOrgStore",
    "PgWorkerStore",
    "Q",
    "create_pool",
    "pg_errors",
]

_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable (ConnectionError is an OSError)
    TimeoutError,  # connect / acquire / command timeouts
    asyncpg.PostgresConnectionError,  # class 08: connection lost mid-statement
    asyncpg.exceptions.OperatorInterventionError,  # class 57: shutdown, cannot connect now
    asyncpg.exceptions.InsufficientResourcesError,  # class 53: too many connections
    asyncpg.exceptions.TransactionRollbackError,  # class 40: deadlock, serialization
)


@contextmanager
def pg_errors(what: str = "PostgreSQL") -> Iterator[None]:
    """Turn connection-level failures into ``Unavailable``; others pass through."""
    try:
        yield
    except asyncpg.UniqueViolationError as exc:
        raise InvalidInput(f"already exists: {exc.detail or exc}") from exc
    except _UNAVAILABLE as exc:
        raise Unavailable(f"{what} unavailable: {type(exc).__name__}: {exc}") from exc
    except asyncpg.InterfaceError as exc:
        if "closed" in str(exc) or "released" in str(exc):
            raise Unavailable(f"{what} unavailable: {exc}") from exc
        raise


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog", format="text"
    )


async def create_pool(
    dsn: str, *, min_size: int = 1, max_size: int = 10, connect_timeout_s: float = 5.0
) -> asyncpg.Pool:
    """A connection pool with the stores' codecs; connects ``min_size`` at once."""
    pool: asyncpg.Pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        timeout=connect_timeout_s,
        command_timeout=30.0,
        init=_init_connection,
        reset=_keep_session,
    )
    return pool


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Skip asyncpg's per-release reset query (``RESET ALL``, ``UNLISTEN *`` …).

    The stores leave no session state behind — no ``SET``, ``LISTEN``, temp
    tables or session advisory locks (migrations use their own connection) —
    and asyncpg still rolls back a transaction left open on release. The reset
    query cost a round trip per pooled statement: 3% of the server's CPU and
    40% of PostgreSQL's under location ingest (docs/benchmarks.md).
    """


_tx_conn: ContextVar[asyncpg.Connection | None] = ContextVar("fieldcloud_pg_tx", default=None)


class Q:
    """Runs statements on the current job transaction's connection, else the pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @asynccontextmanager
    async def conn(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection for a few statements; errors mapped by ``pg_errors``."""
        current = _tx_conn.get()
        if current is not None:
            with pg_errors():
                yield current
            return
        with pg_errors():
            async with self.pool.acquire() as conn:
                yield conn

    @staticmethod
    def bind(conn: asyncpg.Connection | None) -> object:
        """Make ``conn`` the current task's transaction connection; returns a token."""
        return _tx_conn.set(conn)

    @staticmethod
    def unbind(token: object) -> None:
        """Undo ``bind``."""
        _tx_conn.reset(token)  # type: ignore[arg-type]

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        async with self.conn() as conn:
            rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
            return rows

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        async with self.conn() as conn:
            row: asyncpg.Record | None = await conn.fetchrow(sql, *args)
            return row

    async def fetchval(self, sql: str, *args: Any) -> Any:
        async with self.conn() as conn:
            return await conn.fetchval(sql, *args)

    async def execute(self, sql: str, *args: Any) -> str:
        async with self.conn() as conn:
            status: str = await conn.execute(sql, *args)
            return status


class FixCache(Protocol):
    """Where the workers' last fixes live (hot state, outside PostgreSQL)."""

    def set_fix(self, org_id: str, worker_id: str, fix: Fix) -> Awaitable[None]: ...

    async def get_fixes(self, wanted: Mapping[str, Sequence[str]]) -> Mapping[str, Fix]:
        """The last fixes of ``{org id: worker ids}`` (absent: none known)."""
        ...


class PgOrgStore:
    """Organisations, and their API keys (hashed) in ``org_keys``."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._q = Q(pool)

    async def add_org(self, org: Organisation, key_hash: str) -> None:
        async with self._q.conn() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO orgs (id, name, created_at) VALUES ($1, $2, $3)"
                " ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name",
                org.id,
                org.name,
                org.created_at,
            )
            await conn.execute(
                "INSERT INTO org_keys (key_hash, org_id) VALUES ($1, $2)", key_hash, org.id
            )

    async def org_by_key(self, key_hash: str) -> Organisation | None:
        row = await self._q.fetchrow(
            "SELECT o.id, o.name, o.created_at FROM org_keys k JOIN orgs o ON o.id = k.org_id"
            " WHERE k.key_hash = $1",
            key_hash,
        )
        return None if row is None else _org(row)

    async def get_org(self, org_id: str) -> Organisation | None:
        row = await self._q.fetchrow("SELECT id, name, created_at FROM orgs WHERE id = $1", org_id)
        return None if row is None else _org(row)


def _org(row: asyncpg.Record) -> Organisation:
    return Organisation(id=row["id"], name=row["name"], created_at=row["created_at"])


_WORKER_COLS = "id, org_id, name, kind, skills, availability, created_at"


class PgWorkerStore:
    """Workers in PostgreSQL; their last fix in a ``FixCache``."""

    def __init__(self, pool: asyncpg.Pool, fixes: FixCache) -> None:
        self._q = Q(pool)
        self._fixes = fixes

    async def add_worker(self, worker: Worker, token_hash: str) -> None:
        await self._q.execute(
            "INSERT INTO workers (id, org_id, name, kind, skills, availability, token_hash,"
            " created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            worker.id,
            worker.org_id,
            worker.name,
            worker.kind.value,
            sorted(worker.skills),
            worker.availability.value,
            token_hash,
            worker.created_at,
        )
        if worker.fix is not None:
            await self._fixes.set_fix(worker.org_id, worker.id, worker.fix)

    async def worker_by_token(self, token_hash: str) -> Worker | None:
        row = await self._q.fetchrow(
            f"SELECT {_WORKER_COLS} FROM workers WHERE token_hash = $1", token_hash
        )
        return None if row is None else await self._with_fix(row)

    async def get_worker(self, org_id: str, worker_id: str) -> Worker | None:
        row = await self._q.fetchrow(
            f"SELECT {_WORKER_COLS} FROM workers WHERE id = $1 AND org_id = $2",
            worker_id,
            org_id,
        )
        return None if row is None else await self._with_fix(row)

    async def get_workers(self, worker_ids: Sequence[str]) -> dict[str, Worker]:
        if not worker_ids:
            return {}
        ids = list(dict.fromkeys(worker_ids))
        rows = await self._q.fetch(
            f"SELECT {_WORKER_COLS} FROM workers WHERE id = ANY($1::text[])", ids
        )
        wanted: dict[str, list[str]] = {}
        for r in rows:
            wanted.setdefault(r["org_id"], []).append(r["id"])
        fixes = await self._fixes.get_fixes(wanted)
        found = {r["id"]: _worker(r, fixes.get(r["id"])) for r in rows}
        return {w: found[w] for w in ids if w in found}

    def set_fix(self, org_id: str, worker_id: str, fix: Fix) -> Awaitable[None]:
        return self._fixes.set_fix(org_id, worker_id, fix)

    async def set_availability(self, worker_id: str, availability: Availability) -> None:
        await self._q.execute(
            "UPDATE workers SET availability = $2 WHERE id = $1", worker_id, availability.value
        )

    async def claim(self, worker_id: str) -> bool:
        row = await self._q.fetchrow(
            "UPDATE workers SET availability = 'busy'"
            " WHERE id = $1 AND availability = 'available' RETURNING id",
            worker_id,
        )
        return row is not None

    async def _with_fix(self, row: asyncpg.Record) -> Worker:
        fixes = await self._fixes.get_fixes({row["org_id"]: [row["id"]]})
        return _worker(row, fixes.get(row["id"]))


def _worker(row: asyncpg.Record, fix: Fix | None) -> Worker:
    return Worker(
        id=row["id"],
        org_id=row["org_id"],
        name=row["name"],
        kind=WorkerKind(row["kind"]),
        skills=frozenset(row["skills"]),
        availability=Availability(row["availability"]),
        fix=fix,
        created_at=row["created_at"],
    )
