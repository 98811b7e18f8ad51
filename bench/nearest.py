"""Scenario 2: the nearest-workers query (k = 10 within 2 km, as a first wave asks).

Workers are spread uniformly over a 40 km x 40 km box around Chicago; query
points are uniform over the same box. Per size (10k, 100k, 1M workers; 10k
only in a quick run), in an agent process of its own:

* ``geo.CellIndex.nearest`` -- the in-memory H3 index the memory mode uses;
* brute force -- every worker's haversine distance, then the ``k`` smallest;
  vectorised with numpy when it is installed (the ``bench`` extra), else plain
  Python (the table says which). This is the baseline and what the goal is
  judged against; a plain-Python scan is timed too (a few queries) and its
  ratio shown beside, since a loop over the workers is what the index replaces;
* Redis ``GEOSEARCH ... BYRADIUS 2000 m ASC COUNT 10`` through redis-py's
  asyncio client on ``127.0.0.1:6379``, over the same points, under a unique
  key that is deleted afterwards (skipped, with a note, if Redis does not
  answer).

Each query is timed on its own (``perf_counter_ns``); the figures are p50 and
p99. The first queries double as a check: CellIndex and brute force must return
the same workers.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import random
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from geo import DEFAULT_RESOLUTION, EARTH_RADIUS_M, CellIndex, haversine_m

from .procs import Agent, Channel
from .runner import (
    Context,
    Plan,
    Row,
    ScenarioResult,
    Status,
    city_point,
    fmt_pair_s,
    fmt_ratio,
    fmt_speedup,
    fmt_time_s,
    percentile,
)

K = 10
RADIUS_M = 2_000.0
CHECKED_QUERIES = 20
WARM_UP = 50
MIN_SAMPLES = 50
GOAL_P99_S = 1e-3
GOAL_SPEEDUP = 100.0
GOAL_REDIS_P99_S = 3e-3
"""The Redis-backed index at GOAL_SIZE: p99 at most this, and no slower than GEOSEARCH."""
GOAL_GROWTH = 3.0
GOAL_SIZE = 100_000

BruteQuery = Callable[[float, float], list[str]]


@dataclass(frozen=True, slots=True)
class NearestConfig:
    queries: int
    brute_queries: dict[int, int]
    redis_queries: int
    redis_url: str
    seed: int
    budget_s: float


def size_label(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 else f"{n // 1_000}k"


def _numpy_brute(lats: list[float], lngs: list[float], keys: list[str]) -> BruteQuery | None:
    """A vectorised scan with preallocated buffers, or ``None`` without numpy."""
    try:
        import numpy as np  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    lat_r = np.radians(np.asarray(lats, dtype=np.float64))
    lng_r = np.radians(np.asarray(lngs, dtype=np.float64))
    cos_lat = np.cos(lat_r)
    a = np.empty_like(lat_r)
    b = np.empty_like(lat_r)

    def query(lat: float, lng: float) -> list[str]:
        qlat, qlng = math.radians(lat), math.radians(lng)
        np.subtract(lat_r, qlat, out=a)
        np.multiply(a, 0.5, out=a)
        np.sin(a, out=a)
        np.square(a, out=a)
        np.subtract(lng_r, qlng, out=b)
        np.multiply(b, 0.5, out=b)
        np.sin(b, out=b)
        np.square(b, out=b)
        np.multiply(b, cos_lat, out=b)
        np.multiply(b, math.cos(qlat), out=b)
        np.add(a, b, out=a)  # haversine's a; distance grows with it
        limit = math.sin(RADIUS_M / (2 * EARTH_RADIUS_M)) ** 2
        inside = np.flatnonzero(a <= limit)
        if len(inside) > K:
            inside = inside[np.argpartition(a[inside], K - 1)[:K]]
        order = inside[np.argsort(a[inside], kind="stable")]
        return [keys[i] for i in order.tolist()]

    return query


def _python_brute(lats: list[float], lngs: list[float], keys: list[str]) -> BruteQuery:
    points = list(zip(lats, lngs, keys, strict=True))

    def query(lat: float, lng: float) -> list[str]:
        near = (
            (d, key)
            for plat, plng, key in points
            if (d := haversine_m(lat, lng, plat, plng)) <= RADIUS_M
        )
        return [key for _, key in heapq.nsmallest(K, near)]

    return query


def _cell_query(index: CellIndex[str]) -> Callable[[float, float], list[str]]:
    def query(lat: float, lng: float) -> list[str]:
        return [h.key for h in index.nearest(lat, lng, K, RADIUS_M)]

    return query


def _timed(
    fn: Callable[[float, float], Any],
    queries: list[tuple[float, float]],
    budget_s: float,
    min_samples: int = 50,
) -> list[float]:
    """Each query's time; stops early once ``budget_s`` is spent (after ``min_samples``)."""
    out: list[float] = []
    deadline = time.perf_counter() + budget_s
    for lat, lng in queries:
        t0 = time.perf_counter_ns()
        fn(lat, lng)
        out.append((time.perf_counter_ns() - t0) / 1e9)
        if len(out) >= min_samples and time.perf_counter() > deadline:
            break
    return out


async def _timed_async(
    fn: Callable[[float, float], Awaitable[list[str]]],
    queries: list[tuple[float, float]],
    budget_s: float,
) -> tuple[list[float], list[list[str]]]:
    """Like :func:`_timed` for a coroutine; also returns the first answers."""
    out: list[float] = []
    firsts: list[list[str]] = []
    for lat, lng in queries[:WARM_UP]:
        await fn(lat, lng)
    deadline = time.perf_counter() + budget_s
    for lat, lng in queries:
        t0 = time.perf_counter_ns()
        hits = await fn(lat, lng)
        out.append((time.perf_counter_ns() - t0) / 1e9)
        if len(firsts) < CHECKED_QUERIES:
            firsts.append(hits)
        if len(out) >= MIN_SAMPLES and time.perf_counter() > deadline:
            break
    return out, firsts


def _stats(samples: list[float]) -> dict[str, float]:
    return {"p50_s": percentile(samples, 50), "p99_s": percentile(samples, 99)}


async def _redis_geosearch(
    cfg: NearestConfig,
    n: int,
    lats: list[float],
    lngs: list[float],
    keys: list[str],
    queries: list[tuple[float, float]],
) -> dict[str, Any]:
    import redis.asyncio as aioredis
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    client = aioredis.Redis.from_url(cfg.redis_url, socket_connect_timeout=2.0)
    key = f"fieldcloud-bench:{secrets.token_hex(6)}:workers:{n}"
    try:
        try:
            await client.ping()
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            return {"skipped": f"Redis at {cfg.redis_url} does not answer: {exc}"}
        t0 = time.perf_counter()
        step = 5_000
        pipe = client.pipeline(transaction=False)
        for start in range(0, n, step):
            values: list[float | str] = []
            for i in range(start, min(start + step, n)):
                values += (lngs[i], lats[i], keys[i])
            pipe.geoadd(key, values)
            if len(pipe) >= 20:
                await pipe.execute()
        await pipe.execute()
        load_s = time.perf_counter() - t0

        async def search(lat: float, lng: float) -> list[str]:
            hits = await client.geosearch(
                key, longitude=lng, latitude=lat, radius=RADIUS_M, unit="m", sort="ASC", count=K
            )
            return [h.decode() if isinstance(h, bytes) else str(h) for h in hits]

        samples, firsts = await _timed_async(search, queries[: cfg.redis_queries], cfg.budget_s)
        return {**_stats(samples), "load_s": load_s, "queries": len(samples), "firsts": firsts}
    finally:
        await client.delete(key)
        await client.aclose()


async def _redis_h3_port(
    cfg: NearestConfig,
    n: int,
    lats: list[float],
    lngs: list[float],
    keys: list[str],
    queries: list[tuple[float, float]],
) -> dict[str, Any]:
    """The ``LocationIndex`` port of the Redis backend, loaded through its own writer."""
    try:
        import redis.asyncio as aioredis

        from dispatch.stores.redis.index import RedisLocationIndex
        from dispatch.stores.redis.keys import Keys
        from dispatch.stores.redis.writer import RedisWriter
    except ImportError as exc:
        return {"slot": f"the Redis H3 index is not importable: {exc}"}
    client = aioredis.Redis.from_url(
        cfg.redis_url, decode_responses=True, socket_connect_timeout=2.0
    )
    prefix = Keys(f"fieldcloud-bench-{secrets.token_hex(6)}")
    try:
        writer = RedisWriter(client, prefix)
        index = RedisLocationIndex(client, prefix, writer, DEFAULT_RESOLUTION)
    except TypeError as exc:  # the port's constructor changed: the bench needs updating
        await client.aclose()
        return {"slot": f"the Redis H3 index's constructor changed: {exc}"}
    org = "org_bench"
    try:
        try:
            await client.ping()
        except Exception as exc:
            return {"skipped": f"Redis at {cfg.redis_url} does not answer: {exc}"}
        t0 = time.perf_counter()
        step = 2_000
        for start in range(0, n, step):
            await asyncio.gather(
                *(
                    index.upsert(org, keys[i], lats[i], lngs[i])
                    for i in range(start, min(start + step, n))
                )
            )
        load_s = time.perf_counter() - t0

        async def search(lat: float, lng: float) -> list[str]:
            return [h.key for h in await index.nearest(org, lat, lng, K, RADIUS_M)]

        samples, firsts = await _timed_async(search, queries[: cfg.redis_queries], cfg.budget_s)
        return {**_stats(samples), "load_s": load_s, "queries": len(samples), "firsts": firsts}
    finally:
        await writer.aclose()
        batch: list[Any] = []
        async for key in client.scan_iter(match=prefix.pattern(), count=1_000):
            batch.append(key)
            if len(batch) >= 1_000:
                await client.delete(*batch)
                batch = []
        if batch:
            await client.delete(*batch)
        await client.aclose()


async def nearest_agent(ch: Channel, cfg: NearestConfig) -> None:
    """Agent process: measure one size per ``size`` command."""
    while True:
        msg = await ch.recv()
        if msg["cmd"] == "stop":
            ch.send({"stopped": True})
            return
        n = int(msg["n"])
        rng = random.Random(cfg.seed + n)
        lats: list[float] = []
        lngs: list[float] = []
        for _ in range(n):
            lat, lng = city_point(rng)
            lats.append(lat)
            lngs.append(lng)
        keys = [f"wrk_{i:08d}" for i in range(n)]
        queries = [city_point(rng) for _ in range(max(cfg.queries, cfg.redis_queries))]

        t0 = time.perf_counter()
        index: CellIndex[str] = CellIndex()
        for key, lat, lng in zip(keys, lats, lngs, strict=True):
            index.upsert(key, lat, lng)
        build_s = time.perf_counter() - t0

        cell_query = _cell_query(index)
        python_brute = _python_brute(lats, lngs, keys)
        brute = _numpy_brute(lats, lngs, keys)
        brute_kind = "numpy"
        if brute is None:
            brute, brute_kind = python_brute, "plain Python"

        checked = queries[:CHECKED_QUERIES]
        mismatches = sum(cell_query(*q) != brute(*q) for q in checked)
        _timed(cell_query, queries[:WARM_UP], cfg.budget_s)
        cell_samples = _timed(cell_query, queries[: cfg.queries], cfg.budget_s)
        _timed(brute, queries[:3], cfg.budget_s)
        least = MIN_SAMPLES if brute_kind == "numpy" else 5
        brute_samples = _timed(brute, queries[: cfg.brute_queries.get(n, 50)], cfg.budget_s, least)
        cell, scan = _stats(cell_samples), _stats(brute_samples)
        python_samples = _timed(python_brute, queries[:20], cfg.budget_s / 3, 5)
        redis = await _redis_geosearch(cfg, n, lats, lngs, keys, queries)
        firsts = redis.pop("firsts", [])
        redis["agree_with_brute"] = sum(
            hits == brute(*q) for hits, q in zip(firsts, checked, strict=False)
        )
        port = await _redis_h3_port(cfg, n, lats, lngs, keys, queries)
        firsts = port.pop("firsts", [])
        port["agree_with_brute"] = sum(
            hits == brute(*q) for hits, q in zip(firsts, checked, strict=False)
        )
        del index
        ch.send(
            {
                "n": n,
                "build_s": build_s,
                "cell": cell,
                "cell_queries": len(cell_samples),
                "brute": {**scan, "kind": brute_kind, "queries": len(brute_samples)},
                "python_brute": {**_stats(python_samples), "queries": len(python_samples)},
                "cell_brute_mismatches": mismatches,
                "checked": len(checked),
                "redis": redis,
                "redis_h3": port,
            }
        )


async def run(ctx: Context) -> ScenarioResult:
    plan = ctx.plan
    cfg = NearestConfig(
        plan.nearest_queries,
        plan.brute_queries,
        plan.redis_queries,
        plan.redis_url,
        plan.seed,
        plan.nearest_budget_s,
    )
    agent = Agent(nearest_agent, cfg, "nearest")
    results: list[dict[str, Any]] = []
    try:
        for n in plan.nearest_sizes:
            with ctx.progress.phase(f"nearest: {size_label(n)} workers", _size_estimate_s(n)):
                results.append(await agent.ask({"cmd": "size", "n": n}))
    finally:
        await agent.close()
    rows: list[Row] = []
    for res in results:
        rows += _rows_for_size(ctx, res)
    by_n = {int(r["n"]): r for r in results}
    small, large = min(by_n), max(by_n)
    if large > small:
        growth = by_n[large]["cell"]["p50_s"] / by_n[small]["cell"]["p50_s"]
        rows.append(
            Row(
                "nearest",
                f"nearest CellIndex p50 growth {size_label(small)} → {size_label(large)}",
                figure=fmt_ratio(growth),
                baseline=f"{size_label(small)} p50 {fmt_time_s(by_n[small]['cell']['p50_s'])}",
                goal=f"≤ {GOAL_GROWTH:g}x",
                met=ctx.goal_met(growth <= GOAL_GROWTH),
                values={"growth": growth},
            )
        )
    else:
        rows.append(
            Row(
                "nearest",
                "nearest CellIndex p50 growth 10k → 1M",
                goal=f"≤ {GOAL_GROWTH:g}x",
                status="skipped",
                note="one size only in a quick run",
            )
        )
    return ScenarioResult("nearest", rows, {"sizes": results, "k": K, "radius_m": RADIUS_M})


def _rows_for_size(ctx: Context, res: dict[str, Any]) -> list[Row]:
    n = int(res["n"])
    cell, brute, redis = res["cell"], res["brute"], res["redis"]
    if res["cell_brute_mismatches"]:
        raise RuntimeError(
            f"nearest at {n}: CellIndex and brute force disagree on "
            f"{res['cell_brute_mismatches']} of {res['checked']} queries"
        )
    brute_text = f"brute ({brute['kind']}) {fmt_pair_s(brute['p50_s'], brute['p99_s'])}"
    speed50 = brute["p50_s"] / cell["p50_s"]
    speed99 = brute["p99_s"] / cell["p99_s"]
    py50 = res["python_brute"]["p50_s"] / cell["p50_s"]
    goal, met = "", None
    if n == GOAL_SIZE:
        goal = f"p99 ≤ {fmt_time_s(GOAL_P99_S)}, p50 ≥ {GOAL_SPEEDUP:g}x numpy brute"
        met = ctx.goal_met(cell["p99_s"] <= GOAL_P99_S and speed50 >= GOAL_SPEEDUP)
    prefix = f"nearest k={K} ≤2 km, {size_label(n)} workers"
    rows = [
        Row(
            "nearest",
            f"{prefix}: CellIndex p50 / p99",
            figure=fmt_pair_s(cell["p50_s"], cell["p99_s"]),
            baseline=brute_text,
            ratio=f"{fmt_speedup(speed50)} / {fmt_speedup(speed99)} ({py50:.3g}x vs Python scan)",
            goal=goal,
            met=met,
            values={
                "p50_s": cell["p50_s"],
                "p99_s": cell["p99_s"],
                "brute_p50_s": brute["p50_s"],
                "brute_p99_s": brute["p99_s"],
                "speedup_p50": speed50,
                "speedup_p99": speed99,
                "python_brute_p50_s": res["python_brute"]["p50_s"],
                "speedup_p50_vs_python": py50,
            },
        )
    ]
    for name, got in (("Redis GEOSEARCH", redis), ("Redis H3 LocationIndex", res["redis_h3"])):
        if "slot" in got or "skipped" in got:
            status: Status = "slot" if "slot" in got else "skipped"
            rows.append(
                Row("nearest", f"{prefix}: {name}", status=status, note=got.get(status, ""))
            )
            continue
        # GEOSEARCH ranks by Redis's own sphere, so near-ties may differ from
        # haversine; the H3 index must agree exactly.
        exact = name == "Redis H3 LocationIndex"
        needed = res["checked"] if exact else res["checked"] // 2
        if got["agree_with_brute"] < needed:
            raise RuntimeError(f"nearest at {n}: {name} disagrees with brute force: {got}")
        goal, met = "", None
        if exact and n == GOAL_SIZE and "p50_s" in redis:
            goal = f"p99 ≤ {fmt_time_s(GOAL_REDIS_P99_S)}, p50 and p99 ≤ GEOSEARCH's"
            met = ctx.goal_met(
                got["p99_s"] <= GOAL_REDIS_P99_S
                and got["p50_s"] <= redis["p50_s"]
                and got["p99_s"] <= redis["p99_s"]
            )
        rows.append(
            Row(
                "nearest",
                f"{prefix}: {name} p50 / p99",
                figure=fmt_pair_s(got["p50_s"], got["p99_s"]),
                baseline=brute_text,
                ratio=(
                    f"{fmt_speedup(brute['p50_s'] / got['p50_s'])} / "
                    f"{fmt_speedup(brute['p99_s'] / got['p99_s'])}"
                ),
                goal=goal,
                met=met,
                values={
                    "p50_s": got["p50_s"],
                    "p99_s": got["p99_s"],
                    "brute_p50_s": brute["p50_s"],
                    "brute_p99_s": brute["p99_s"],
                },
            )
        )
    return rows


def _size_estimate_s(n: int) -> float:
    return 3.0 + n * 55e-6


def estimate_s(plan: Plan) -> float:
    """Wall time the progress bar expects (the sum of the phase estimates)."""
    return sum(_size_estimate_s(n) for n in plan.nearest_sizes)
