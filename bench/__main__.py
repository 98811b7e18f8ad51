"""``python -m bench [--quick] [--json P] [--scenarios ..] [--mode ..] [--profile D]``.

Runs the selected scenarios (all by default) in the selected modes (memory
and production = PostgreSQL + Redis by default), prints one Markdown table on
stdout, writes every figure to a JSON file, and shows a progress bar on
stderr. Production mode gets a database and a Redis key prefix of its own,
created first and removed last, also after a failure, Ctrl-C or SIGTERM
(:mod:`bench.services`). Exit status: 0 when every selected
scenario ran (goals met or not), 1 when one failed (its row says so; the
server logs are kept and named) or PostgreSQL/Redis do not answer in
production mode (nothing runs then), 2 for bad usage, 130 after Ctrl-C and
143 after SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from . import connections, ingest, nearest, offers, scaleout
from .fleet import Fleet
from .procs import Profiler, raise_nofile
from .runner import (
    MODE_LABELS,
    MODES,
    SCENARIOS,
    Context,
    Plan,
    Progress,
    Row,
    ScenarioResult,
    render_table,
    write_json,
)
from .services import (
    DEFAULT_ADMIN_DSN,
    DEFAULT_REDIS_URL,
    Services,
    ServicesUnavailable,
    check_services,
    cleanup_sync,
    create_services,
)

PRODUCTION_SCENARIOS = ("ingest", "offers", "connections", "scaleout")
"""Scenarios that start fieldcloud, so run in production mode too (nearest does not)."""

CROSS_INSTANCES = 2
"""Instances of the production fleet (offers across instances)."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="fieldcloud benchmarks: each figure beside its baseline, in one table",
    )
    p.add_argument("--quick", action="store_true", help="small and short, for CI (about 25 s)")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument(
        "--scenarios",
        nargs="+",
        choices=SCENARIOS,
        default=list(SCENARIOS),
        metavar="NAME",
        help=f"run only these ({', '.join(SCENARIOS)}; default: all)",
    )
    p.add_argument(
        "--mode",
        nargs="+",
        choices=MODES,
        default=list(MODES),
        metavar="MODE",
        help="server storage modes (memory, production = PostgreSQL + Redis; default: both)",
    )
    p.add_argument(
        "--redis-url",
        default=DEFAULT_REDIS_URL,
        help="Redis for nearest and production mode (a fresh key prefix is used and deleted)",
    )
    p.add_argument(
        "--database-url",
        default=DEFAULT_ADMIN_DSN,
        help="PostgreSQL where the bench may CREATE DATABASE (production mode; a fresh "
        "fieldcloud_bench_* database is created, migrated and dropped)",
    )
    p.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="record the server with py-spy during ingest and offers (slows it down a little)",
    )
    return p


def _failed(name: str, exc: BaseException, mode: str = "") -> ScenarioResult:
    message = f"{type(exc).__name__}: {exc}".splitlines()[0][:160]
    label = f"{name} ({MODE_LABELS[mode]})" if mode else name
    row = Row(name, f"{label}: failed", status="failed", note=message)
    key = f"error-{mode}" if mode else "error"
    return ScenarioResult(name, [row], {key: "".join(traceback.format_exception(exc))})


def _fleet_modes(plan: Plan, selected: Sequence[str]) -> list[str]:
    return list(plan.modes) if {"connections", "offers"} & set(selected) else []


def _estimate(plan: Plan, selected: Sequence[str]) -> float:
    total = 0.0
    if "ingest" in selected:
        total += ingest.estimate_s(plan)
    if "nearest" in selected:
        total += nearest.estimate_s(plan)
    if "connections" in selected:
        total += connections.estimate_s(plan)
    for _ in _fleet_modes(plan, selected):
        total += connections.fleet_estimate_s(plan)
        if "offers" in selected:
            total += offers.estimate_s(plan, connected="connections" in selected)
    if "scaleout" in selected and "production" in plan.modes:
        total += scaleout.estimate_s(plan, reuse_single="ingest" in selected)
    return total


Scenario = Callable[[], Awaitable[ScenarioResult]]


async def _guarded(
    results: list[ScenarioResult], name: str, scenario: Scenario, mode: str = ""
) -> None:
    """Run one scenario; a failure becomes a ``failed`` row and the run goes on."""
    t0 = time.monotonic()
    try:
        result = await scenario()
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        result = _failed(name, exc, mode)
    result.seconds = time.monotonic() - t0
    results.append(result)


async def _run(ctx: Context, selected: Sequence[str]) -> list[ScenarioResult]:
    results: list[ScenarioResult] = []
    if "ingest" in selected:
        await _guarded(results, "ingest", partial(ingest.run, ctx))
    if "nearest" in selected:
        await _guarded(results, "nearest", partial(nearest.run, ctx))
    fleet_modes = _fleet_modes(ctx.plan, selected)
    if fleet_modes:
        bare: dict[str, float] | None = None
        if "connections" in selected:
            try:
                bare = await connections.bare_baseline(ctx)
            except Exception as exc:
                traceback.print_exc(file=sys.stderr)
                results.append(_failed("connections", exc))
        for mode in fleet_modes:
            await _run_fleet(ctx, selected, results, mode, bare)
    if "scaleout" in selected:
        if "production" in ctx.plan.modes:
            await _guarded(results, "scaleout", partial(scaleout.run, ctx))
        else:
            row = Row(
                "scaleout",
                "scale-out: ingest over N instances vs 1",
                goal=f"≥ {scaleout.GOAL_SCALING:g}x",
                status="skipped",
                note="needs --mode production",
            )
            results.append(ScenarioResult("scaleout", [row]))
    return results


async def _run_fleet(
    ctx: Context,
    selected: Sequence[str],
    results: list[ScenarioResult],
    mode: str,
    bare: dict[str, float] | None,
) -> None:
    """Scenarios 4 then 3 share one fleet of phones in ``mode`` (two instances in production)."""
    instances = CROSS_INSTANCES if mode == "production" else 1
    where = f"{instances} instances" if instances > 1 else "fieldcloud"
    try:
        with ctx.progress.phase(
            f"fleet ({MODE_LABELS[mode]}): start {where}, create {ctx.plan.fleet_sockets:,} "
            "workers",
            connections.fleet_estimate_s(ctx.plan),
        ):
            fleet = await Fleet.start(ctx, "fieldcloud", mode, instances)
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        wanted = [n for n in ("connections", "offers") if n in selected]
        if "connections" in wanted and bare is None:
            wanted.remove("connections")  # its bare baseline already failed
        results.extend(_failed(n, exc, mode) for n in wanted)
        return
    try:
        if bare is not None:
            await _guarded(results, "connections", partial(connections.run, ctx, fleet, bare), mode)
        if "offers" in selected:
            await _guarded(results, "offers", partial(offers.run, ctx, fleet), mode)
    finally:
        await fleet.close()


def _merge(results: Sequence[ScenarioResult]) -> list[ScenarioResult]:
    """One result per scenario (the fleet scenarios report once per mode), in table order."""
    merged: dict[str, ScenarioResult] = {}
    for r in results:
        if r.name not in merged:
            merged[r.name] = ScenarioResult(r.name, list(r.rows), dict(r.details), r.seconds)
            continue
        into = merged[r.name]
        into.rows.extend(r.rows)
        into.details.update(r.details)
        into.seconds += r.seconds
    order = {name: i for i, name in enumerate(SCENARIOS)}
    return sorted(merged.values(), key=lambda r: order[r.name])


async def _open_services(plan: Plan) -> Services:
    await check_services(plan.database_admin_url, plan.redis_url)
    return await create_services(plan.database_admin_url, plan.redis_url)


def _close_services(services: Services) -> dict[str, Any]:
    """Drop the run's database and Redis keys; says what happened on stderr."""
    try:
        removed = cleanup_sync(services)
    except Exception as exc:
        print(
            f"bench: could not remove database {services.database} / Redis prefix "
            f"{services.key_prefix}: {type(exc).__name__}: {exc}",
            file=sys.stderr,
        )
        return {"database": services.database, "key_prefix": services.key_prefix, "error": str(exc)}
    print(
        f"bench: dropped database {services.database}, deleted {removed['redis_keys']} "
        f"Redis keys under {services.key_prefix}:",
        file=sys.stderr,
    )
    return {"database": services.database, "key_prefix": services.key_prefix, **removed}


async def _run_stoppable(ctx: Context, selected: Sequence[str]) -> list[ScenarioResult]:
    """:func:`_run`, cancelled by SIGTERM as Ctrl-C cancels it: every ``finally`` runs."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await _run(ctx, selected)
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    raise_nofile()
    modes = tuple(m for m in MODES if m in args.mode)
    plan = dataclasses.replace(
        Plan.for_run(args.quick, modes),
        redis_url=args.redis_url,
        database_admin_url=args.database_url,
    )
    selected = [s for s in SCENARIOS if s in args.scenarios]
    json_path: Path = args.json or Path(tempfile.gettempdir()) / "fieldcloud-bench.json"
    try:
        profiler = Profiler(args.profile)
    except RuntimeError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    services: Services | None = None
    if "production" in modes and set(PRODUCTION_SCENARIOS) & set(selected):
        try:
            services = asyncio.run(_open_services(plan))
            print(
                f"bench: created database {services.database} (migrated); Redis key prefix "
                f"{services.key_prefix}:",
                file=sys.stderr,
            )
        except ServicesUnavailable as exc:
            print(
                f"bench: {exc}\nbench: production mode needs PostgreSQL and Redis "
                "(--database-url, --redis-url); `--mode memory` runs without them",
                file=sys.stderr,
            )
            return 1
    workdir = Path(tempfile.mkdtemp(prefix="fieldcloud-bench-"))
    progress = Progress(_estimate(plan, selected))
    ctx = Context(plan, progress, workdir, profiler, services)
    started, t0 = time.time(), time.monotonic()
    cleanup: dict[str, Any] = {}
    try:
        if sys.platform != "win32":
            import uvloop

            results = uvloop.run(_run_stoppable(ctx, selected))
        else:  # pragma: no cover
            results = asyncio.run(_run(ctx, selected))
    except (KeyboardInterrupt, asyncio.CancelledError) as exc:
        print(f"\nbench: stopped; server logs kept in {workdir}", file=sys.stderr)
        return 130 if isinstance(exc, KeyboardInterrupt) else 143
    finally:
        progress.close()
        if services is not None:
            cleanup = _close_services(services)
    elapsed = time.monotonic() - t0
    results = _merge(results)
    print(render_table([row for r in results for row in r.rows]))
    write_json(json_path, plan, results, started, elapsed, {"services": cleanup})
    print(f"json: {json_path}", file=sys.stderr)
    if args.profile is not None:
        print(f"profiles: {args.profile}", file=sys.stderr)
    failed = [r.name for r in results if r.status == "failed"]
    if failed or "error" in cleanup:
        what = ", ".join(failed) if failed else "cleanup"
        print(f"failed: {what}; server logs kept in {workdir}", file=sys.stderr)
        return 1
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
