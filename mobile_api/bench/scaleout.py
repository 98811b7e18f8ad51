"""Scenario 5 (slot): scale-out over several instances in PostgreSQL + Redis mode.

Planned: ``N`` fieldcloud instances (``mode`` = production: ``DATABASE_URL`` and
``REDIS_URL`` passed by :func:`mobile_api.bench.procs.mode_env`) behind the load
agents, ingest and offer latency measured against one instance as the baseline,
so the ratio is the scaling factor. It needs the production mode of the bench,
which comes with the Redis backend; until then the row is a slot.
"""

from __future__ import annotations

from .runner import Context, Row, ScenarioResult


async def run(ctx: Context) -> ScenarioResult:
    row = Row(
        "scaleout",
        "scale-out: ingest and offers over N instances vs 1",
        goal="-",
        status="slot",
        note="needs the PostgreSQL + Redis mode of the bench",
    )
    return ScenarioResult("scaleout", [row])
