"""PostgreSQL plumbing: the pool, error mapping, and the job transaction's connection.

Rules for callers:

* Build the pool with ``create_pool`` (it installs the ``jsonb`` codec the
  stores rely on) on a database migrated by ``postgres.migrations``.
* Run statements through ``Q``: inside ``PgJobStore.transaction`` the calling
  task's statements of every PostgreSQL store run on the transaction's
  connection (a context variable carries it), so ``claim`` or a release
  inside a job step commits or rolls back with the job, and a transaction
  never needs a second pooled connection (pool exhaustion cannot deadlock
  it). Do not share that task's context with concurrent children (no
  ``gather`` of store calls inside a transaction block).
* Connection failures surface as ``dispatch.errors.Unavailable`` (wrap
  statements in ``pg_errors``; ``Q`` does).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import Any

import asyncpg

from ...errors import InvalidInput, Unavailable

__all__ = ["Q", "create_pool", "params", "pg_errors"]


def params(count: int, start: int = 1) -> str:
    """``"$start, …, $(start+count-1)"``: placeholders for ``count`` arguments."""
    return ", ".join(f"${i}" for i in range(start, start + count))


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
