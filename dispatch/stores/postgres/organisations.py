"""PostgreSQL organisations and their API keys (stored hashed, several per organisation)."""

from __future__ import annotations

import asyncpg

from ...models import Organisation
from .pool import Q, params
from .rows import Table

__all__ = ["PgOrgStore"]

ORGS = Table("orgs", Organisation)
_SELECT = f"SELECT {ORGS.select} FROM orgs"
_ADD_ORG = (
    f"INSERT INTO orgs ({ORGS.select}) VALUES ({params(len(ORGS.columns))})"
    " ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name"
)
"""Add the organisation (``add_org`` passes its fields in ``ORGS.columns`` order)."""


class PgOrgStore:
    """Organisations, and their API keys (hashed) in ``org_keys``."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._q = Q(pool)

    async def add_org(self, org: Organisation, key_hash: str) -> None:
        async with self._q.conn() as conn, conn.transaction():
            await conn.execute(_ADD_ORG, *(getattr(org, c) for c in ORGS.columns))
            await conn.execute(
                "INSERT INTO org_keys (key_hash, org_id) VALUES ($1, $2)", key_hash, org.id
            )

    async def org_by_key(self, key_hash: str) -> Organisation | None:
        row = await self._q.fetchrow(
            f"{_SELECT} WHERE id = (SELECT org_id FROM org_keys WHERE key_hash = $1)",
            key_hash,
        )
        return None if row is None else _org(row)

    async def get_org(self, org_id: str) -> Organisation | None:
        row = await self._q.fetchrow(f"{_SELECT} WHERE id = $1", org_id)
        return None if row is None else _org(row)


def _org(row: asyncpg.Record) -> Organisation:
    return Organisation(**{c: row[c] for c in ORGS.columns})
