"""Scenario 3: offer latency, from ``POST /v1/jobs`` to the offer frame on the phones.

``N`` technician sockets (agent processes) are connected, available, with one
fix each, uniformly over the city. The bench then posts jobs at random spots
at a modest, steady rate over one keep-alive connection; each post is
stamped with ``time.time_ns()`` right before its request is written, and
each offer frame with ``time.time_ns()`` when the phone's process reads it
(one host, one clock). Every offer of wave 1 (up to ``wave_size`` phones per
job) is one sample; the figures are p50 and p99.

In PostgreSQL + Redis mode the phones are spread over two instances, A and B,
one organisation each; the jobs of A's organisation are posted to B and those
of B's to A (alternating, half each), so every offer crosses instances: the
job is stored in PostgreSQL by one instance, its notice published through
Redis, and written to the socket by the other.

Baseline, measured over the same sockets at the same time: the round trip of
an application ``ping`` -> ``pong`` (a frame in, a frame out, no work) -- the
floor of any reaction of the server to a phone.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random
import time
from collections.abc import Iterable
from typing import Any

from .fleet import Fleet, connect_estimate_s
from .runner import (
    MODE_LABELS,
    Context,
    Plan,
    Row,
    ScenarioResult,
    city_point,
    fmt_pair_s,
    percentile,
)
from .wire import Http

GOAL_P50_S = 5e-3
GOAL_P99_S = 25e-3
GOAL_CROSS_P99_S = 50e-3
DRAIN_S = 0.5


def drain_s(plan: Plan) -> float:
    """How long offers may still arrive after the last post (a quick run waits less)."""
    return DRAIN_S / 2 if plan.quick else DRAIN_S


async def _post_jobs(ctx: Context, fleet: Fleet) -> tuple[dict[str, int], list[float]]:
    """Post jobs at the plan's rate; returns ``job id -> send time_ns`` and response times.

    Job ``i`` goes to target ``i % len(targets)`` (one organisation each, posted
    to the instance its phones are *not* on when there are several), over one
    keep-alive connection per target.
    """
    plan = ctx.plan
    targets = fleet.targets
    rng = random.Random(plan.seed + 7)
    count = max(len(targets), round(plan.offer_rate_per_s * plan.offer_duration_s))
    posted: dict[str, int] = {}
    answered: list[float] = []
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(Http(s.port)) for _, s in targets]
        start = time.monotonic()
        for i in range(count):
            delay = start + i / plan.offer_rate_per_s - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            lat, lng = city_point(rng)
            body = {"title": f"bench job {i}", "lat": lat, "lng": lng}
            api_key = targets[i % len(targets)][0]
            http = clients[i % len(targets)]
            status, job, sent_ns = await http.timed_call("POST", "/v1/jobs", body, api_key)
            answered.append((time.time_ns() - sent_ns) / 1e9)
            if status != 201:
                raise RuntimeError(f"POST /v1/jobs answered {status}: {job!r}")
            posted[job["id"]] = sent_ns
    return posted, answered


def _sum_counts(parts: Iterable[dict[str, int]]) -> dict[str, int]:
    total: collections.Counter[str] = collections.Counter()
    for part in parts:
        total.update(part)
    return dict(total)


def _profile_names(fleet: Fleet) -> list[str]:
    name = f"offers-{fleet.mode}"
    if len(fleet.servers) == 1:
        return [name]
    return [f"{name}-{chr(65 + i)}" for i in range(len(fleet.servers))]


async def run(ctx: Context, fleet: Fleet) -> ScenarioResult:
    plan = ctx.plan
    if not fleet.connected:
        with ctx.progress.phase(
            f"offers: connect {fleet.size} phones", connect_estimate_s(fleet.size)
        ):
            await fleet.connect()
    with ctx.progress.phase("offers: phones go available", 0.5 + fleet.size / 5_000):
        replies = await fleet.ask("available")
        fleet.details["status_refused"] = sum(int(r["status_refused"]) for r in replies)
        fleet.details["closed_by_server"] = _sum_counts(r["closed_by_server"] for r in replies)
    window = plan.offer_duration_s + drain_s(plan)
    label = MODE_LABELS[fleet.mode]
    with ctx.progress.phase(f"offers ({label}): post jobs for {plan.offer_duration_s:g} s", window):
        await fleet.ask("record")
        names = _profile_names(fleet)
        spies = [ctx.profiler.start(s.pid, n) for s, n in zip(fleet.servers, names, strict=True)]
        posted, answered = await _post_jobs(ctx, fleet)
        await asyncio.sleep(drain_s(plan))
        for spy, name in zip(spies, names, strict=True):
            await ctx.profiler.stop(spy, name)
        replies = await fleet.ask("collect")
    errors = sum(int(r["errors"]) for r in replies)
    if errors:
        first = next(r["first_error"] for r in replies if r["first_error"])
        raise RuntimeError(f"offers: {errors} error frames, e.g. {first}")
    unavailable = sum(int(r["unavailable"]) for r in replies)
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
        "mode": fleet.mode,
        "instances": len(fleet.servers),
        "jobs_posted": len(posted),
        "jobs_offered": len(jobs_offered),
        "offers": len(latencies),
        "latency_max_s": max(latencies),
        "post_response_p50_s": percentile(answered, 50),
        "post_response_p99_s": percentile(answered, 99),
        "ping_samples": len(rtts),
        "unavailable_error_frames": unavailable,
        "closed_while_recording": _sum_counts(r["closed_while_recording"] for r in replies),
        "first_unavailable": next(
            (r["first_unavailable"] for r in replies if r["unavailable"]), ""
        ),
        **fleet.details,
    }
    refusals = unavailable + sum(
        int(fleet.details.get(k, 0))
        for k in ("handshakes_refused_503", "closed_before_first_pong", "status_refused")
    )
    closed = sum(fleet.details.get("closed_by_server", {}).values())
    closed += sum(details["closed_while_recording"].values())
    trouble = f"; {refusals:,} requests refused 'unavailable'" if refusals else ""
    trouble += f", {closed:,} sockets closed by the server" if closed else ""
    if len(fleet.servers) == 1:
        what = f"offer latency POST /v1/jobs → offer frame ({label}), {fleet.size:,} sockets"
        what += trouble
        goal = "p50 ≤ 5 ms, p99 ≤ 25 ms"
        met = p50 <= GOAL_P50_S and p99 <= GOAL_P99_S
    else:
        what = (
            f"offer latency across {len(fleet.servers)} instances, POST /v1/jobs to B → offer "
            f"frame on A and vice versa ({label}), {fleet.size:,} sockets{trouble}"
        )
        goal = f"p99 ≤ {GOAL_CROSS_P99_S * 1e3:g} ms"
        met = p99 <= GOAL_CROSS_P99_S
    row = Row(
        "offers",
        what,
        figure=fmt_pair_s(p50, p99),
        baseline=f"ws ping→pong {fmt_pair_s(b50, b99)}",
        ratio=f"{p50 / b50:.3g}x / {p99 / b99:.3g}x",
        goal=goal,
        met=ctx.goal_met(met),
        values={"p50_s": p50, "p99_s": p99, "ping_p50_s": b50, "ping_p99_s": b99},
    )
    return ScenarioResult("offers", [row], {fleet.mode: details})


def estimate_s(plan: Plan, connected: bool) -> float:
    """Wall time the progress bar expects for one fleet (the sum of the phase estimates)."""
    connect = 0.0 if connected else connect_estimate_s(plan.fleet_sockets)
    return connect + 0.5 + plan.fleet_sockets / 5_000 + plan.offer_duration_s + drain_s(plan)
