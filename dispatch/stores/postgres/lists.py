"""PostgreSQL lists for dispatchers: keyset pages of workers and jobs (``dispatch.listing``).

Jobs are filtered entirely in SQL (``jobs_org_id``, ``jobs_org_updated`` and
the open-job indexes of migrations 0001 and 0012). Workers are filtered in
SQL by status, kind and skill; their last fix lives in Redis (``OrgFixes``),
so a page with a fix filter (bounding box, ``updated_since``) reads the
organisation's fixes first (one ``HGETALL``), keeps the ids whose fix passes,
and asks PostgreSQL for the page among those ids (one statement): two round
trips whatever the filter keeps. Together they are ``listing.matches_worker``,
the memory backend's rule (the contract tests hold both to it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import asyncpg

from ...listing import JobQuery, ListedJob, Page, WorkerQuery, in_bbox, page_of
from ...models import Fix, Offer, Worker
from .jobs import JOBS, OFFERS, _job, _offer
from .pool import Q
from .workers import WORKERS, FixCache, _worker

__all__ = ["PgListings"]


class OrgFixes(FixCache, Protocol):
    """A ``FixCache`` that can also hand out all of one organisation's fixes."""

    async def org_fixes(self, org_id: str) -> Mapping[str, Fix]: ...


def _fix_passes(fix: Fix, query: WorkerQuery) -> bool:
    """Whether ``fix`` passes the query's fix filters (bounding box, ``updated_since``)."""
    if query.bbox is not None and not in_bbox(fix.lat, fix.lng, query.bbox):
        return False
    return query.updated_since is None or fix.at >= query.updated_since


class _Where:
    """A ``WHERE`` clause built from filters, with its ``$n`` arguments."""

    def __init__(self, org_id: str, after: str | None) -> None:
        self.args: list[Any] = [org_id, after or ""]
        self.terms = ["org_id = $1", "id > $2"]

    def add(self, term: str, *values: Any) -> None:
        """Add ``term`` whose placeholders ``{0}``, ``{1}``… stand for ``values``."""
        first = len(self.args) + 1
        self.args.extend(values)
        self.terms.append(term.format(*(f"${first + i}" for i in range(len(values)))))

    def sql(self) -> str:
        return " AND ".join(self.terms)


class PgListings:
    """``Listings`` over PostgreSQL, with the workers' fixes from ``OrgFixes``."""

    def __init__(self, pool: asyncpg.Pool, fixes: OrgFixes) -> None:
        self._q = Q(pool)
        self._fixes = fixes

    async def workers(self, org_id: str, query: WorkerQuery) -> Page[Worker]:
        where = _Where(org_id, query.after)
        fixes: Mapping[str, Fix] | None = None
        if query.bbox is not None or query.updated_since is not None:
            fixes = await self._fixes.org_fixes(org_id)
            kept = sorted(w for w, fix in fixes.items() if _fix_passes(fix, query))
            where.add("id = ANY({0}::text[])", kept)
        if query.statuses:
            where.add("availability = ANY({0}::text[])", sorted(s for s in query.statuses))
        if query.kinds:
            where.add("kind = ANY({0}::text[])", sorted(k for k in query.kinds))
        if query.skill is not None:
            where.add("{0} = ANY(skills)", query.skill)
        rows = await self._q.fetch(
            f"SELECT {WORKERS.select} FROM workers WHERE {where.sql()}"
            f" ORDER BY id LIMIT ${len(where.args) + 1}",
            *where.args,
            query.limit + 1,
        )
        if fixes is None and rows:
            fixes = await self._fixes.get_fixes({org_id: [r["id"] for r in rows]})
        found = [_worker(r, (fixes or {}).get(r["id"])) for r in rows]
        return page_of(found, [w.id for w in found], query.limit)

    async def jobs(self, org_id: str, query: JobQuery) -> Page[ListedJob]:
        where = _Where(org_id, query.after)
        if query.states:
            where.add("state = ANY({0}::text[])", sorted(s for s in query.states))
        if query.skill is not None:
            where.add("{0} = ANY(skills)", query.skill)
        if query.bbox is not None:
            west, south, east, north = query.bbox
            where.add("lat BETWEEN {0} AND {1}", south, north)
            if west <= east:
                where.add("lng BETWEEN {0} AND {1}", west, east)
            else:
                where.add("(lng >= {0} OR lng <= {1})", west, east)
        if query.updated_since is not None:
            where.add("updated_at >= {0}", query.updated_since)
        rows = await self._q.fetch(
            f"SELECT {JOBS.select} FROM jobs WHERE {where.sql()}"
            f" ORDER BY id LIMIT ${len(where.args) + 1}",
            *where.args,
            query.limit + 1,
        )
        jobs = [_job(r) for r in rows]
        pending: dict[str, list[Offer]] = {j.id: [] for j in jobs}
        if jobs:
            offer_rows = await self._q.fetch(
                f"SELECT {OFFERS.select} FROM offers"
                " WHERE job_id = ANY($1::text[]) AND state = 'pending' ORDER BY n",
                list(pending),
            )
            for r in offer_rows:
                pending[r["job_id"]].append(_offer(r))
        listed = [ListedJob(j, pending[j.id]) for j in jobs]
        return page_of(listed, [j.id for j in jobs], query.limit)

    async def offers_of(self, org_id: str, job_id: str) -> list[Offer]:
        rows = await self._q.fetch(
            f"SELECT {OFFERS.select} FROM offers WHERE job_id = $1 AND org_id = $2 ORDER BY n",
            job_id,
            org_id,
        )
        return [_offer(r) for r in rows]
