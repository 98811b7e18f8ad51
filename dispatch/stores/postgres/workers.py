"""PostgreSQL workers: identity, kind, skills, availability; the last fix elsewhere.

A worker's last fix is hot state and is not stored here: ``PgWorkerStore``
reads and writes it through a ``FixCache`` (Redis in production,
``redis.fixes.RedisFixes``). A lost fix only means the worker is not matched
until the phone reports again. ``claim`` decides the race for a worker with
one conditional ``UPDATE``; inside a job transaction it (and
``set_availability``) runs on the transaction's connection (``pool.Q``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, Protocol

import asyncpg

from ...models import Availability, Fix, Worker, WorkerKind
from .pool import Q, params
from .rows import Table, column_value

__all__ = ["FixCache", "PgWorkerStore"]


class FixCache(Protocol):
    """Where the workers' last fixes live (hot state, outside PostgreSQL)."""

    def set_fix(self, org_id: str, worker_id: str, fix: Fix) -> Awaitable[None]: ...

    def forget_fix(self, org_id: str, worker_id: str) -> Awaitable[None]:
        """Delete the worker's last fix, after any ``set_fix`` of theirs submitted before."""
        ...

    async def get_fixes(self, wanted: Mapping[str, Sequence[str]]) -> Mapping[str, Fix]:
        """The last fixes of ``{org id: worker ids}`` (absent: none known)."""
        ...


WORKERS = Table("workers", Worker, skip=("fix",))
"""Workers: a column per ``Worker`` field but the fix (and ``token_hash``, write-only)."""

_SELECT = f"SELECT {WORKERS.select} FROM workers"

_INSERT = (
    f"INSERT INTO workers ({WORKERS.select}, token_hash)"
    f" VALUES ({params(len(WORKERS.columns) + 1)})"
)


def _insert_args(worker: Worker, token_hash: str) -> tuple[Any, ...]:
    """``_INSERT``'s arguments: the worker's columns, then the token hash."""
    return (*(column_value(getattr(worker, c)) for c in WORKERS.columns), token_hash)


def _worker(row: asyncpg.Record, fix: Fix | None) -> Worker:
    found = {c: row[c] for c in WORKERS.columns}
    found["kind"] = WorkerKind(found["kind"])
    found["skills"] = frozenset(found["skills"])
    found["availability"] = Availability(found["availability"])
    return Worker(**found, fix=fix)


class PgWorkerStore:
    """Workers in PostgreSQL; their last fix in a ``FixCache``."""

    def __init__(self, pool: asyncpg.Pool, fixes: FixCache) -> None:
        self._q = Q(pool)
        self._fixes = fixes

    async def add_worker(self, worker: Worker, token_hash: str) -> None:
        await self._q.execute(_INSERT, *_insert_args(worker, token_hash))
        if worker.fix is not None:
            await self._fixes.set_fix(worker.org_id, worker.id, worker.fix)

    async def worker_by_token(self, token_hash: str) -> Worker | None:
        row = await self._q.fetchrow(f"{_SELECT} WHERE token_hash = $1", token_hash)
        return None if row is None else await self._with_fix(row)

    async def get_worker(self, org_id: str, worker_id: str) -> Worker | None:
        row = await self._q.fetchrow(
            f"{_SELECT} WHERE id = $1 AND org_id = $2",
            worker_id,
            org_id,
        )
        return None if row is None else await self._with_fix(row)

    async def get_workers(self, worker_ids: Sequence[str]) -> dict[str, Worker]:
        if not worker_ids:
            return {}
        ids = list(dict.fromkeys(worker_ids))
        rows = await self._q.fetch(f"{_SELECT} WHERE id = ANY($1::text[])", ids)
        wanted: dict[str, list[str]] = {}
        for r in rows:
            wanted.setdefault(r["org_id"], []).append(r["id"])
        fixes = await self._fixes.get_fixes(wanted)
        found = {r["id"]: _worker(r, fixes.get(r["id"])) for r in rows}
        return {w: found[w] for w in ids if w in found}

    def set_fix(self, org_id: str, worker_id: str, fix: Fix) -> Awaitable[None]:
        return self._fixes.set_fix(org_id, worker_id, fix)

    def forget_fix(self, org_id: str, worker_id: str) -> Awaitable[None]:
        return self._fixes.forget_fix(org_id, worker_id)

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
