"""PostgreSQL outbox: the effects job transactions committed, until delivered.

``jobs.PgJobStore.transaction`` inserts a book's effects (``OUTBOX``) in the
statement that writes the job, before it commits (so an effect exists exactly
when its change does); ``PgOutbox`` serves the deliverers. Table ``outbox``
(migration 0002): rows are ordered by ``n``, and rows of one job are inserted
under its row lock, so within a job ``n`` is commit order.

How a sweeper claims (``claim_due``): one statement selects rows whose lease
(``due_at``) has passed, oldest first, ``FOR UPDATE SKIP LOCKED`` — rows
another sweeper is claiming at that moment are skipped, not waited for — and
moves their lease to ``now + lease_s``, so concurrent sweepers on any number
of instances get disjoint sets. A sweeper that dies mid-delivery loses its
lease when it lapses; the rows are then claimed again (delivery is at least
once).

Rules for callers: times are the service clock's POSIX seconds on every
instance (leases of seconds tolerate ordinary clock skew); delete rows with
``delivered`` only after their effect took place.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from ...effects import Effect, EffectKind
from .pool import Q
from .rows import Table

__all__ = ["BACKLOG", "OUTBOX", "PgOutbox"]

OUTBOX = Table("outbox", Effect)
"""Effects, ordered by ``n`` (an identity column); ``attempts`` counts sweeper claims."""
_COLS = OUTBOX.select


def _effect(row: asyncpg.Record) -> Effect:
    return Effect(
        id=row["id"],
        kind=EffectKind(row["kind"]),
        target=row["target"],
        payload=row["payload"],
        job_id=row["job_id"],
        created_at=row["created_at"],
        due_at=row["due_at"],
    )


_FORGET = """
WITH lazy AS (SELECT set_config('synchronous_commit', 'off', true))
DELETE FROM outbox WHERE id = ANY($1::text[]) AND EXISTS (SELECT 1 FROM lazy)
"""
"""Delete delivered rows without waiting for the WAL flush of the commit.

``set_config(…, true)`` lasts until the end of the statement's own
transaction, so only this delete commits asynchronously. If PostgreSQL
crashes before the flush, the rows come back and are delivered once more,
which delivery tolerates (it is at least once; notices are de-duplicated):
a lost delete costs a repeat, while waiting for the flush cost a disk sync
per delivered transaction.
"""

BACKLOG = "EXISTS (SELECT 1 FROM outbox WHERE job_id = $1) AS backlog"
"""A select-list item: whether the job (``$1``) still has effects waiting."""


class PgOutbox:
    """``Outbox`` in PostgreSQL; see the module docstring."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._q = Q(pool)

    async def delivered(self, effect_ids: Sequence[str]) -> None:
        if effect_ids:
            await self._q.execute(_FORGET, list(effect_ids))

    async def of_job(self, job_id: str) -> list[Effect]:
        rows = await self._q.fetch(
            f"SELECT {_COLS} FROM outbox WHERE job_id = $1 ORDER BY n", job_id
        )
        return [_effect(r) for r in rows]

    async def claim_due(self, now: float, lease_s: float, limit: int) -> list[Effect]:
        rows = await self._q.fetch(
            f"""
            UPDATE outbox SET due_at = $2, attempts = attempts + 1
             WHERE n IN (SELECT n FROM outbox WHERE due_at <= $1 ORDER BY due_at, n
                          LIMIT $3 FOR UPDATE SKIP LOCKED)
            RETURNING n, {_COLS}
            """,
            now,
            now + lease_s,
            limit,
        )
        return [_effect(r) for r in sorted(rows, key=lambda r: r["n"])]

    async def backlog(self) -> tuple[int, float | None]:
        rows = await self._q.fetch("SELECT count(*) AS n, min(created_at) AS oldest FROM outbox")
        return int(rows[0]["n"]), rows[0]["oldest"]
