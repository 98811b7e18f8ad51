"""Scenario 1: location ingest, updates per second through real websockets.

``N`` technician sockets, spread over a few agent processes, each send
location frames as fast as the server takes them: batches of ``batch``
location frames followed by an application ``ping``, at most ``window``
batches unacknowledged per socket. Frames are handled in order on a socket,
so the ``pong`` acknowledges its batch; an update counts when its pong
arrives inside the measured window (after a warm-up). Each phone walks
about 15 m per fix around its own spot in the city, so some fixes change
H3 cell, as a driving technician's do.

The same agents run first against the bare websocket server
(:mod:`bench.bare`, same uvicorn configuration): its rate is the
ceiling of the stack, and the figure of each mode (memory, PostgreSQL + Redis)
is reported as a share of that one ceiling. Over the measured window the CPU
share of every process is recorded (servers, agents, and in production mode
the local ``redis-server`` and ``postgres`` processes) with the machine's busy
cores, so a figure bounded by the machine can be told from one bounded by
the server. :func:`measure` also drives several instances at once, for the
scale-out scenario.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from .procs import (
    Agent,
    Channel,
    ask_all,
    close_all,
    cpu_seconds_of,
    machine_busy_seconds,
    raise_nofile,
)
from .runner import (
    MODE_LABELS,
    Context,
    Plan,
    Row,
    ScenarioResult,
    city_point,
    fmt_rate,
    fmt_ratio,
)
from .services import service_pids
from .setup import create_org, create_workers
from .wire import PING_FRAME, Phone, open_phone, text_frame

GOAL_RATE = 35_000.0
GOAL_SHARE = 0.6
GOAL_RATE_PRODUCTION = 20_000.0
STEP_M = 15.0
AVAILABLE = b'{"type":"status","status":"available"}'


@dataclass(frozen=True, slots=True)
class IngestConfig:
    """One agent's share: a token per phone (``None`` against the bare server)."""

    port: int
    tokens: tuple[str | None, ...]
    go_available: bool
    batch: int
    window: int
    seed: int


class _Tally:
    def __init__(self, batch: int) -> None:
        self.batch = batch
        self.begin_ns = 0
        self.end_ns = 0
        self.acked = 0
        self.sent = 0
        self.errors = 0
        self.first_error = ""
        self.outstanding = 0
        self.drained = asyncio.Event()


class IngestPhone(Phone):
    """Keeps ``window`` batches in flight; every pong sends the next batch."""

    def __init__(self, port: int, token: str | None, blob: bytes, tally: _Tally) -> None:
        super().__init__(port, token)
        self.blob = blob
        self.tally = tally
        self.status_reply: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def send_batch(self) -> None:
        self.write_raw(self.blob)
        self.expect_pong()
        self.tally.outstanding += 1

    def on_pong(self, now_ns: int) -> None:
        tally = self.tally
        tally.outstanding -= 1
        if tally.begin_ns <= now_ns < tally.end_ns:
            tally.acked += tally.batch
        if now_ns < tally.end_ns:
            self.send_batch()
            tally.sent += tally.batch
        elif tally.outstanding == 0:
            tally.drained.set()

    def on_text(self, payload: bytes, now_ns: int) -> None:
        if payload.startswith(b'{"type":"status"'):
            if not self.status_reply.done():
                self.status_reply.set_result(None)
        elif payload.startswith(b'{"type":"error"'):
            self.tally.errors += 1
            if not self.tally.first_error:
                self.tally.first_error = payload[:300].decode(errors="replace")


def location_batch(rng: random.Random, batch: int) -> bytes:
    """``batch`` location frames of a walk around a random spot, then a ping."""
    lat, lng = city_point(rng)
    heading = rng.uniform(0, 2 * math.pi)
    ts = round(time.time(), 3)
    frames = []
    for _ in range(batch):
        heading += rng.uniform(-0.5, 0.5)
        lat += STEP_M * math.cos(heading) / 111_320.0
        lng += STEP_M * math.sin(heading) / (111_320.0 * math.cos(math.radians(lat)))
        fix = {
            "type": "location",
            "lat": round(lat, 6),
            "lng": round(lng, 6),
            "accuracy_m": round(rng.uniform(3.0, 20.0), 1),
            "ts": ts,
        }
        frames.append(text_frame(msgspec.json.encode(fix)))
    frames.append(PING_FRAME)
    return b"".join(frames)


async def ingest_agent(ch: Channel, cfg: IngestConfig) -> None:
    """Agent process: connect on ``connect``, pump on ``run``, leave on ``stop``."""
    raise_nofile()
    rng = random.Random(cfg.seed)
    tally = _Tally(cfg.batch)
    phones: list[IngestPhone] = []
    gate = asyncio.Semaphore(64)

    async def connect(token: str | None) -> IngestPhone:
        async with gate:
            phone = IngestPhone(cfg.port, token, location_batch(rng, cfg.batch), tally)
            await open_phone(phone, cfg.port)
            if cfg.go_available:
                phone.send_text(AVAILABLE)
                await asyncio.wait_for(phone.status_reply, 30.0)
            return phone

    while True:
        msg = await ch.recv()
        cmd = msg["cmd"]
        if cmd == "connect":
            phones = list(await asyncio.gather(*(connect(t) for t in cfg.tokens)))
            ch.send({"connected": len(phones)})
        elif cmd == "run":
            tally.begin_ns, tally.end_ns = msg["begin_ns"], msg["end_ns"]
            await asyncio.sleep(max(0.0, (msg["go_ns"] - time.time_ns()) / 1e9))
            for phone in phones:
                for _ in range(cfg.window):
                    phone.send_batch()
            await asyncio.sleep(max(0.0, (tally.end_ns - time.time_ns()) / 1e9))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(tally.drained.wait(), 5.0)
            ch.send(
                {
                    "acked": tally.acked,
                    "sent": tally.sent,
                    "errors": tally.errors,
                    "first_error": tally.first_error,
                    "unacked_batches": tally.outstanding,
                }
            )
        elif cmd == "stop":
            for phone in phones:
                phone.close()
            await asyncio.sleep(0.05)
            ch.send({"stopped": True})
            return


async def measure(
    ctx: Context,
    kind: Literal["fieldcloud", "bare"],
    mode: str = "memory",
    instances: int = 1,
    name: str = "",
) -> dict[str, Any]:
    """Ingest against ``instances`` servers (agent ``i`` drives server ``i % instances``).

    Returns the rate, the CPU share of every process over the window (servers,
    agents, and local Redis / PostgreSQL in production mode), the machine's
    busy cores, and what else kept it busy (``other_cpu_share``: the bench
    itself, py-spy, the kernel's softirqs charged to no process, and anything
    else running on the machine).
    """
    plan = ctx.plan
    name = name or ("bare" if kind == "bare" else mode)
    label = "bare ws ceiling" if kind == "bare" else f"fieldcloud {MODE_LABELS[mode]}"
    if instances > 1:
        label += f" x{instances}"
    with ctx.progress.phase(f"ingest: start {label}", setup_estimate_s(plan, instances)):
        if kind == "bare":
            servers = [await ctx.start_server("bare", mode, f"ingest-{name}")]
        else:
            servers = await ctx.start_servers(mode, instances, f"ingest-{name}")
    agents: list[Agent] = []
    try:
        with ctx.progress.phase(f"ingest: connect {plan.ingest_phones} phones ({label})", 1.5):
            tokens: list[str | None]
            if kind == "fieldcloud":
                api_key = await create_org(servers[0], f"ingest-{name}")
                counts = _split(plan, len(servers))
                made = await asyncio.gather(
                    *(
                        create_workers(s.port, api_key, count, f"tech-{i}")
                        for i, (s, count) in enumerate(zip(servers, counts, strict=True))
                    )
                )
                tokens = [t for part in made for t in part]
            else:
                tokens = [None] * plan.ingest_phones
            for i in range(plan.ingest_procs):
                share = tuple(tokens[i :: plan.ingest_procs])
                cfg = IngestConfig(
                    servers[i % len(servers)].port,
                    share,
                    kind == "fieldcloud",
                    plan.ingest_batch,
                    plan.ingest_window,
                    plan.seed + i,
                )
                agents.append(Agent(ingest_agent, cfg, f"ingest-{name}-{i}"))
            await ask_all(agents, {"cmd": "connect"})
        run_s = plan.ingest_warmup_s + plan.ingest_duration_s
        with ctx.progress.phase(f"ingest: {label} for {plan.ingest_duration_s:g} s", run_s + 0.5):
            go_ns = time.time_ns() + 150_000_000
            begin_ns = go_ns + int(plan.ingest_warmup_s * 1e9)
            end_ns = begin_ns + int(plan.ingest_duration_s * 1e9)
            groups: dict[str, list[int]] = {
                "servers": [s.pid for s in servers],
                "agents": [a.pid for a in agents if a.pid is not None],
            }
            if kind == "fieldcloud" and mode == "production":
                groups.update(service_pids())
            watch = asyncio.create_task(
                _cpu_during(ctx, groups, begin_ns, end_ns, f"ingest-{name}")
            )
            replies = await ask_all(
                agents, {"cmd": "run", "go_ns": go_ns, "begin_ns": begin_ns, "end_ns": end_ns}
            )
            cpu = await watch
    finally:
        await close_all(agents)
        await asyncio.gather(*(s.stop() for s in servers))
    errors = sum(int(r["errors"]) for r in replies)
    if errors:
        first = next(r["first_error"] for r in replies if r["first_error"])
        raise RuntimeError(f"ingest against {label}: {errors} error frames, e.g. {first}")
    acked = sum(int(r["acked"]) for r in replies)
    rate = acked / plan.ingest_duration_s
    per_server: list[float] = cpu["servers"]
    server_cpu = sum(per_server)
    known = sum(sum(shares) for group, shares in cpu.items() if group != "machine")
    return {
        "updates_per_s": rate,
        "acked": float(acked),
        "instances": instances,
        "server_cpu_share": server_cpu,
        "servers_cpu_share": per_server,
        "agents_cpu_share": sum(cpu["agents"]),
        "redis_cpu_share": sum(cpu.get("redis", [])),
        "postgres_cpu_share": sum(cpu.get("postgres", [])),
        "machine_busy_cores": cpu["machine"][0],
        "other_cpu_share": max(0.0, cpu["machine"][0] - known),
        "updates_per_server_cpu_s": rate / server_cpu if server_cpu > 0 else 0.0,
    }


def _split(plan: Plan, parts: int) -> list[int]:
    """How many of the plan's phones each of ``parts`` servers gets (agents alternate)."""
    counts = [0] * parts
    for i in range(plan.ingest_procs):
        counts[i % parts] += len(range(i, plan.ingest_phones, plan.ingest_procs))
    return counts


async def _cpu_during(
    ctx: Context, groups: dict[str, list[int]], begin_ns: int, end_ns: int, name: str
) -> dict[str, list[float]]:
    """CPU share (1.0 = one core) of each pid of each group over the window; profiles servers.

    Processes that start during the window count from zero; ones that end are
    left out. ``machine`` is the busy cores of the whole machine (``/proc/stat``).
    """
    await asyncio.sleep(max(0.0, (begin_ns - time.time_ns()) / 1e9))
    pids = [pid for group in groups.values() for pid in group]
    before = cpu_seconds_of(pids)
    busy0, _ = machine_busy_seconds()
    t0 = time.monotonic()
    servers = groups["servers"]
    spies = [
        ctx.profiler.start(pid, name if len(servers) == 1 else f"{name}-{chr(65 + i)}")
        for i, pid in enumerate(servers)
    ]
    await asyncio.sleep(max(0.0, (end_ns - time.time_ns()) / 1e9))
    after = cpu_seconds_of(pids)
    busy1, _ = machine_busy_seconds()
    elapsed = time.monotonic() - t0
    for i, spy in enumerate(spies):
        await ctx.profiler.stop(spy, name if len(servers) == 1 else f"{name}-{chr(65 + i)}")
    shares = {
        group: [(after[p] - before.get(p, 0.0)) / elapsed for p in members if p in after]
        for group, members in groups.items()
    }
    shares["machine"] = [(busy1 - busy0) / elapsed]
    return shares


def _row(ctx: Context, mode: str, ours: dict[str, Any], ceiling: float) -> Row:
    plan = ctx.plan
    rate = float(ours["updates_per_s"])
    share = rate / ceiling
    if mode == "memory":
        goal = f"≥ {GOAL_RATE:,.0f}/s and ≥ {GOAL_SHARE}x bare"
        met = rate >= GOAL_RATE and share >= GOAL_SHARE
    else:
        goal = f"≥ {GOAL_RATE_PRODUCTION:,.0f}/s per process"
        met = rate >= GOAL_RATE_PRODUCTION
    return Row(
        "ingest",
        f"location ingest ({MODE_LABELS[mode]}), {plan.ingest_phones} ws / "
        f"{plan.ingest_procs} procs, {plan.ingest_duration_s:g} s",
        figure=fmt_rate(rate),
        baseline=f"bare ws {fmt_rate(ceiling)}",
        ratio=fmt_ratio(share),
        goal=goal,
        met=ctx.goal_met(met),
        values={"updates_per_s": rate, "bare_updates_per_s": ceiling, "ratio": share},
    )


async def run(ctx: Context) -> ScenarioResult:
    """The bare ceiling once, then fieldcloud in each selected mode beside it."""
    bare = await measure(ctx, "bare")
    ceiling = float(bare["updates_per_s"])
    ctx.measured["ingest-bare"] = bare
    rows: list[Row] = []
    details: dict[str, Any] = {"bare": bare}
    for mode in ctx.plan.modes:
        ours = await measure(ctx, "fieldcloud", mode)
        ctx.measured[f"ingest-{mode}"] = ours
        details[mode] = ours
        rows.append(_row(ctx, mode, ours, ceiling))
    return ScenarioResult("ingest", rows, details)


def setup_estimate_s(plan: Plan, instances: int = 1) -> float:
    return 1.5 + instances * 0.5 + plan.ingest_phones / 400


def measure_estimate_s(plan: Plan, instances: int = 1) -> float:
    """Wall time of one :func:`measure` (the sum of its phase estimates)."""
    run_s = plan.ingest_warmup_s + plan.ingest_duration_s + 0.5
    return setup_estimate_s(plan, instances) + 1.5 + run_s


def estimate_s(plan: Plan) -> float:
    """Wall time the progress bar expects (the sum of the phase estimates)."""
    return (1 + len(plan.modes)) * measure_estimate_s(plan)
