"""Scenario 4: resident memory per idle technician socket.

The server's ``VmRSS`` (``/proc/<pid>/status``) is read once its workers exist
and again after ``N`` phones have connected (each answered one ping) and the
process has settled; the difference over ``N`` is the memory one idle,
authenticated socket costs (the websocket protocol state, the ASGI task, the
session and its writer task, the notice queue). Kernel socket buffers are not
in RSS and are not counted.

Baseline: the same measure on the bare websocket server (same uvicorn
configuration, an endpoint that just reads) -- what the stack itself costs
per socket. In production mode the fleet is spread over two instances and
their RSS is summed.
"""

from __future__ import annotations

import asyncio

from .fleet import Fleet, connect_estimate_s, create_estimate_s
from .runner import MODE_LABELS, Context, Plan, Row, ScenarioResult, fmt_kib, fmt_ratio

GOAL_KIB = 24.0


def settle_s(plan: Plan) -> float:
    """Pause before reading RSS, for the process to finish what the phones started."""
    return 0.2 if plan.quick else 1.0


async def _per_socket(ctx: Context, fleet: Fleet, label: str) -> dict[str, float]:
    settle = settle_s(ctx.plan)
    await asyncio.sleep(settle)
    before = fleet.rss_kib()
    with ctx.progress.phase(
        f"connections: connect {fleet.size} phones ({label})",
        connect_estimate_s(fleet.size) + settle,
    ):
        seconds = await fleet.connect()
        await asyncio.sleep(settle)
    after = fleet.rss_kib()
    return {
        "rss_before_kib": float(before),
        "rss_after_kib": float(after),
        "per_socket_kib": (after - before) / fleet.size,
        "connect_s": seconds,
    }


async def bare_baseline(ctx: Context) -> dict[str, float]:
    """Per-socket memory of the bare websocket server."""
    with ctx.progress.phase("connections: start the bare ws server", 1.5):
        fleet = await Fleet.start(ctx, "bare", "bare")
    try:
        return await _per_socket(ctx, fleet, "bare ws")
    finally:
        await fleet.close()


async def run(ctx: Context, fleet: Fleet, bare: dict[str, float]) -> ScenarioResult:
    """Measure on ``fleet`` (workers created, phones not connected yet)."""
    instances = len(fleet.servers)
    ours = await _per_socket(ctx, fleet, f"fieldcloud {MODE_LABELS[fleet.mode]}")
    ours["instances"] = float(instances)
    per, base = ours["per_socket_kib"], bare["per_socket_kib"]
    spread = f", over {instances} instances" if instances > 1 else ""
    row = Row(
        "connections",
        f"memory per idle socket ({MODE_LABELS[fleet.mode]}), {fleet.size:,} sockets{spread}",
        figure=fmt_kib(per),
        baseline=f"bare ws {fmt_kib(base)}",
        ratio=fmt_ratio(per / base),
        goal=f"≤ {GOAL_KIB:g} KiB",
        met=ctx.goal_met(per <= GOAL_KIB),
        values={"per_socket_kib": per, "bare_per_socket_kib": base, "ratio": per / base},
    )
    return ScenarioResult("connections", [row], {fleet.mode: ours, "bare": bare})


def estimate_s(plan: Plan) -> float:
    """Wall time of the bare baseline and the measures (the fleets' starts are offers')."""
    per_run = connect_estimate_s(plan.fleet_sockets) + 2 * settle_s(plan)
    return 1.5 + (1 + len(plan.modes)) * per_run


def fleet_estimate_s(plan: Plan) -> float:
    """Starting the fieldcloud fleet (shared by connections and offers)."""
    return create_estimate_s(plan.fleet_sockets)
