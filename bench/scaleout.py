"""Scenario 5: scale-out, location ingest over two instances against one (PostgreSQL + Redis).

The ingest scenario's load (the same phones, agents, batches and window)
against ``N`` fieldcloud instances sharing the run's database and Redis
prefix, agent ``i`` driving instance ``i % N``; the baseline is the same load
against one instance, taken from the ingest scenario of the same run when it
ran in production mode, measured here otherwise. The ratio is the scaling
factor.

On a small machine the instances share the cores with the load agents, Redis
and PostgreSQL, so the figure measures the machine as much as fieldcloud: the
details record every process's CPU share over the window and the machine's
busy cores (``machine_busy_cores`` close to ``nproc`` means the machine, not
the instances, bounds it).
"""

from __future__ import annotations

import os
from typing import Any

from . import ingest
from .runner import Context, Plan, Row, ScenarioResult, fmt_rate, fmt_ratio

GOAL_SCALING = 1.7


async def run(ctx: Context) -> ScenarioResult:
    plan = ctx.plan
    n = plan.scaleout_instances
    single = ctx.measured.get("ingest-production")
    if single is None:
        single = await ingest.measure(ctx, "fieldcloud", "production")
    several = await ingest.measure(ctx, "fieldcloud", "production", n, f"scaleout-{n}x")
    one, many = float(single["updates_per_s"]), float(several["updates_per_s"])
    ratio = many / one
    cores = len(os.sched_getaffinity(0))
    row = Row(
        "scaleout",
        f"scale-out: ingest over {n} instances vs 1 (PostgreSQL + Redis), "
        f"{plan.ingest_phones} ws / {plan.ingest_procs} procs, {cores} cores shared",
        figure=fmt_rate(many),
        baseline=f"1 instance {fmt_rate(one)}",
        ratio=fmt_ratio(ratio),
        goal=f"≥ {GOAL_SCALING:g}x",
        met=ctx.goal_met(ratio >= GOAL_SCALING),
        values={"updates_per_s": many, "one_instance_updates_per_s": one, "ratio": ratio},
    )
    details: dict[str, Any] = {"instances": n, "one": single, "several": several, "nproc": cores}
    return ScenarioResult("scaleout", [row], details)


def estimate_s(plan: Plan, reuse_single: bool) -> float:
    """Wall time the progress bar expects (the sum of the phase estimates)."""
    several = ingest.measure_estimate_s(plan, plan.scaleout_instances)
    return several if reuse_single else several + ingest.measure_estimate_s(plan)
