"""Scenario 3: offer latency, from ``POST /v1/jobs`` to the offer frame on the phones.

``N`` technician sockets (agent processes) are connected, available, with one
fix each, uniformly over the city. The bench then posts jobs at random spots
at a modest, steady rate over one keep-alive connection; each post is
stamped with ``time.time_ns()`` right before its request is written, and
each offer frame with ``time.time_ns()`` when the phone's process reads it
(one host, one clock). Every offer of wave 1 (up to ``wave_size`` phones per
job) is one sample; the figures are p50 and p99.

Baseline, measured over the same sockets at the same time: the round trip of
an application ``ping`` -> ``pong`` (a frame in, a frame out, no work) -- the
floor of any reaction of the server to a phone.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from .fleet import Fleet, connect_estimate_s
from .runner import Context, Plan, Row, ScenarioResult, city_point, fmt_pair_s, percentile
from .wire import Http

GOAL_P50_S = 5e-3
GOAL_P99_S = 25e-3
DRAIN_S = 0.5


async def _post_jobs(ctx: Context, fleet: Fleet) -> tuple[dict[str, int], list[float]]:
    """Post jobs at the plan's rate; returns ``job id -> send time_ns`` and response times."""
    plan = ctx.plan
    assert fleet.api_key is not None
    rng = random.Random(plan.seed + 7)
    count = max(1, round(plan.offer_rate_per_s * plan.offer_duration_s))
    posted: dict[str, int] = {}
    answered: list[float] = []
    async with Http(fleet.server.port) as http:
        start = time.monotonic()
        for i in range(count):
            delay = start + i / plan.offer_rate_per_s - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            lat, lng = city_point(rng)
            body = {"title": f"bench job {i}", "lat": lat, "lng": lng}
            status, job, sent_ns = await http.timed_call("POST", "/v1/jobs", body, fleet.api_key)
            answered.append((time.time_ns() - sent_ns) / 1e9)
            if status != 201:
                raise RuntimeError(f"POST /v1/jobs answered {status}: {job!r}")
            posted[job["id"]] = sent_ns
    return posted, answered


async def run(ctx: Context, fleet: Fleet) -> ScenarioResult:
    plan = ctx.plan
    if not fleet.connected:
        with ctx.progress.phase(
            f"offers: connect {fleet.size} phones", connect_estimate_s(fleet.size)
        ):
            await fleet.connect()
    with ctx.progress.phase("offers: phones go available", 0.5 + fleet.size / 5_000):
        await fleet.ask("available")
    window = plan.offer_duration_s + DRAIN_S
    with ctx.progress.phase(f"offers: post jobs for {plan.offer_duration_s:g} s", window):
        await fleet.ask("record")
        spy = ctx.profiler.start(fleet.server.pid, "offers")
        posted, answered = await _post_jobs(ctx, fleet)
        await asyncio.sleep(DRAIN_S)
        await ctx.profiler.stop(spy, "offers")
        replies = await fleet.ask("collect")
    errors = sum(int(r["errors"]) for r in replies)
    if errors:
        first = next(r["first_error"] for r in replies if r["first_error"])
        raise RuntimeError(f"offers: {errors} error frames, e.g. {first}")
    latencies: list[float] = []
    jobs_offered: set[str] = set()
    for reply in replies:
        for job_id, arrived_ns in reply["offers"]:
            if job_id in posted:
                latencies.append((arrived_ns - posted[job_id]) / 1e9)
                jobs_offered.add(job_id)
    rtts = [ns / 1e9 for reply in replies for ns in reply["rtts_ns"]]
    if not latencies or not rtts:
        raise RuntimeError(f"offers: {len(latencies)} offers and {len(rtts)} pings recorded")
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    b50, b99 = percentile(rtts, 50), percentile(rtts, 99)
    details: dict[str, Any] = {
        "jobs_posted": len(posted),
        "jobs_offered": len(jobs_offered),
        "offers": len(latencies),
        "post_response_p50_s": percentile(answered, 50),
        "post_response_p99_s": percentile(answered, 99),
        "ping_samples": len(rtts),
        **fleet.details,
    }
    row = Row(
        "offers",
        f"offer latency POST /v1/jobs → offer frame ({plan.mode}), {fleet.size:,} sockets",
        figure=fmt_pair_s(p50, p99),
        baseline=f"ws ping→pong {fmt_pair_s(b50, b99)}",
        ratio=f"{p50 / b50:.3g}x / {p99 / b99:.3g}x",
        goal="p50 ≤ 5 ms, p99 ≤ 25 ms",
        met=ctx.goal_met(p50 <= GOAL_P50_S and p99 <= GOAL_P99_S),
        values={"p50_s": p50, "p99_s": p99, "ping_p50_s": b50, "ping_p99_s": b99},
    )
    return ScenarioResult("offers", [row], details)


def estimate_s(plan: Plan, connected: bool) -> float:
    """Wall time the progress bar expects (the sum of the phase estimates)."""
    connect = 0.0 if connected else connect_estimate_s(plan.fleet_sockets)
    return connect + 0.5 + plan.fleet_sockets / 5_000 + plan.offer_duration_s + DRAIN_S
