"""``python -m mobile_api.bench [--quick] [--json PATH] [--scenarios ...] [--profile DIR]``.

Runs the selected scenarios (all by default), prints one Markdown table on
stdout, writes every figure to a JSON file, and shows a progress bar on
stderr. Exit status: 0 when every selected scenario ran (goals met or not),
1 when one failed (its row says so; the server logs are kept and named),
2 for bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path

from . import connections, ingest, nearest, offers, scaleout
from .fleet import Fleet
from .procs import Profiler, raise_nofile
from .runner import (
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


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m mobile_api.bench",
        description="fieldcloud benchmarks: each figure beside its baseline, in one table",
    )
    p.add_argument("--quick", action="store_true", help="small and short, for CI (about 20 s)")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument(
        "--scenarios",
        nargs="+",
        choices=SCENARIOS,
        default=list(SCENARIOS),
        metavar="NAME",
        help=f"run only these ({', '.join(SCENARIOS)}; default: all)",
    )
    p.add_argument("--mode", choices=MODES, default="memory", help="server storage mode")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/0", help="for nearest")
    p.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="record the server with py-spy during ingest and offers (slows it down a little)",
    )
    return p


def _failed(name: str, exc: BaseException) -> ScenarioResult:
    message = f"{type(exc).__name__}: {exc}".splitlines()[0][:160]
    row = Row(name, f"{name}: failed", status="failed", note=message)
    return ScenarioResult(name, [row], {"error": "".join(traceback.format_exception(exc))})


def _estimate(plan: Plan, selected: Sequence[str]) -> float:
    total = 0.0
    if "ingest" in selected:
        total += ingest.estimate_s(plan)
    if "nearest" in selected:
        total += nearest.estimate_s(plan)
    if "connections" in selected:
        total += connections.estimate_s(plan)
    if "connections" in selected or "offers" in selected:
        total += connections.fleet_estimate_s(plan)
    if "offers" in selected:
        total += offers.estimate_s(plan, connected="connections" in selected)
    return total


Scenario = Callable[[], Awaitable[ScenarioResult]]


async def _guarded(results: list[ScenarioResult], name: str, scenario: Scenario) -> None:
    """Run one scenario; a failure becomes a ``failed`` row and the run goes on."""
    t0 = time.monotonic()
    try:
        result = await scenario()
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        result = _failed(name, exc)
    result.seconds = time.monotonic() - t0
    results.append(result)


async def _run(ctx: Context, selected: Sequence[str]) -> list[ScenarioResult]:
    results: list[ScenarioResult] = []
    if "ingest" in selected:
        await _guarded(results, "ingest", partial(ingest.run, ctx))
    if "nearest" in selected:
        await _guarded(results, "nearest", partial(nearest.run, ctx))
    if "connections" in selected or "offers" in selected:
        await _run_fleet(ctx, selected, results)
    if "scaleout" in selected:
        await _guarded(results, "scaleout", partial(scaleout.run, ctx))
    return results


async def _run_fleet(ctx: Context, selected: Sequence[str], results: list[ScenarioResult]) -> None:
    """Scenarios 4 then 3 share one fieldcloud server and its fleet of phones."""
    bare: dict[str, float] | None = None
    if "connections" in selected:
        try:
            bare = await connections.bare_baseline(ctx)
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            results.append(_failed("connections", exc))
    try:
        with ctx.progress.phase(
            f"fleet: start fieldcloud, create {ctx.plan.fleet_sockets:,} workers",
            connections.fleet_estimate_s(ctx.plan),
        ):
            fleet = await Fleet.start(ctx, "fieldcloud")
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        done = {r.name for r in results}
        missing = [n for n in ("connections", "offers") if n in selected and n not in done]
        results.extend(_failed(n, exc) for n in missing)
        return
    try:
        if bare is not None:
            await _guarded(results, "connections", partial(connections.run, ctx, fleet, bare))
        if "offers" in selected:
            await _guarded(results, "offers", partial(offers.run, ctx, fleet))
    finally:
        await fleet.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    raise_nofile()
    plan = Plan.for_run(args.quick, args.mode)
    if args.redis_url != plan.redis_url:
        plan = dataclasses.replace(plan, redis_url=args.redis_url)
    selected = [s for s in SCENARIOS if s in args.scenarios]
    json_path: Path = args.json or Path(tempfile.gettempdir()) / "fieldcloud-bench.json"
    try:
        profiler = Profiler(args.profile)
    except RuntimeError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="fieldcloud-bench-"))
    progress = Progress(_estimate(plan, selected))
    ctx = Context(plan, progress, workdir, profiler)
    started, t0 = time.time(), time.monotonic()
    try:
        if sys.platform != "win32":
            import uvloop

            results = uvloop.run(_run(ctx, selected))
        else:  # pragma: no cover
            results = asyncio.run(_run(ctx, selected))
    finally:
        progress.close()
    elapsed = time.monotonic() - t0
    order = {name: i for i, name in enumerate(SCENARIOS)}
    results.sort(key=lambda r: order[r.name])
    print(render_table([row for r in results for row in r.rows]))
    write_json(json_path, plan, results, started, elapsed)
    print(f"json: {json_path}", file=sys.stderr)
    if args.profile is not None:
        print(f"profiles: {args.profile}", file=sys.stderr)
    failed = [r.name for r in results if r.status == "failed"]
    if failed:
        print(f"failed: {', '.join(failed)}; server logs kept in {workdir}", file=sys.stderr)
        return 1
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
