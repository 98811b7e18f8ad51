"""PostgreSQL dispatchers and their tokens (stored hashed; migration 0012)."""

from __future__ import annotations

import asyncpg

from ...models import Dispatcher
from .pool import Q, params
from .rows import Table

__all__ = ["PgDispatcherStore"]

DISPATCHERS = Table("dispatchers", Dispatcher)
_SELECT = f"SELECT {DISPATCHERS.select} FROM dispatchers"
_INSERT = (
    f"INSERT INTO dispatchers ({DISPATCHERS.select}, token_hash)"
    f" VALUES ({params(len(DISPATCHERS.columns) + 1)})"
)


def _dispatcher(row: asyncpg.Record) -> Dispatcher:
    return Dispatcher(**{c: row[c] for c in DISPATCHERS.columns})


class PgDispatcherStore:
    """Dispatchers in table ``dispatchers``; a revoke stamps ``revoked_at`` once."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._q = Q(pool)

    async def add_dispatcher(self, dispatcher: Dispatcher, token_hash: str) -> None:
        values = (getattr(dispatcher, c) for c in DISPATCHERS.columns)
        await self._q.execute(_INSERT, *values, token_hash)

    async def dispatcher_by_token(self, token_hash: str) -> Dispatcher | None:
        row = await self._q.fetchrow(
            f"{_SELECT} WHERE token_hash = $1 AND revoked_at IS NULL", token_hash
        )
        return None if row is None else _dispatcher(row)

    async def dispatchers(self, org_id: str) -> list[Dispatcher]:
        rows = await self._q.fetch(f"{_SELECT} WHERE org_id = $1 ORDER BY created_at, id", org_id)
        return [_dispatcher(r) for r in rows]

    async def revoke(self, org_id: str, dispatcher_id: str, at: float) -> Dispatcher | None:
        row = await self._q.fetchrow(
            "UPDATE dispatchers SET revoked_at = coalesce(revoked_at, $3)"
            f" WHERE id = $1 AND org_id = $2 RETURNING {DISPATCHERS.select}",
            dispatcher_id,
            org_id,
            at,
        )
        return None if row is None else _dispatcher(row)
