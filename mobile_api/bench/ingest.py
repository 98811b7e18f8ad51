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
(:mod:`mobile_api.bench.bare`, same uvicorn configuration): its rate is the
ceiling of the stack, and the figure is reported as a share of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from dataclasses import dataclass
from typing import Literal

import msgspec

from .procs import Agent, Channel, ServerProcess, ask_all, close_all, cpu_seconds, raise_nofile
from .runner import Context, Plan, Row, ScenarioResult, city_point, fmt_rate, fmt_ratio
from .setup import create_org, create_workers
from .wire import PING_FRAME, Phone, open_phone, text_frame

GOAL_RATE = 35_000.0
GOAL_SHARE = 0.6
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


async def _measure(ctx: Context, kind: Literal["fieldcloud", "bare"]) -> dict[str, float | str]:
    plan = ctx.plan
    label = "fieldcloud" if kind == "fieldcloud" else "bare ws ceiling"
    setup_est = 1.5 + plan.ingest_phones / 400  # as in estimate_s
    with ctx.progress.phase(f"ingest: start {label}", setup_est):
        server = await ServerProcess.start(kind, plan.mode, ctx.workdir, f"ingest-{kind}")
    agents: list[Agent] = []
    try:
        with ctx.progress.phase(f"ingest: connect {plan.ingest_phones} phones ({label})", 1.5):
            tokens: list[str | None]
            if kind == "fieldcloud":
                api_key = await create_org(server, "ingest")
                tokens = list(await create_workers(server.port, api_key, plan.ingest_phones))
            else:
                tokens = [None] * plan.ingest_phones
            for i in range(plan.ingest_procs):
                share = tuple(tokens[i :: plan.ingest_procs])
                cfg = IngestConfig(
                    server.port,
                    share,
                    kind == "fieldcloud",
                    plan.ingest_batch,
                    plan.ingest_window,
                    plan.seed + i,
                )
                agents.append(Agent(ingest_agent, cfg, f"ingest-{kind}-{i}"))
            await ask_all(agents, {"cmd": "connect"})
        run_s = plan.ingest_warmup_s + plan.ingest_duration_s
        with ctx.progress.phase(f"ingest: {label} for {plan.ingest_duration_s:g} s", run_s + 0.5):
            go_ns = time.time_ns() + 300_000_000
            begin_ns = go_ns + int(plan.ingest_warmup_s * 1e9)
            end_ns = begin_ns + int(plan.ingest_duration_s * 1e9)
            pids = [server.pid] + [a.pid for a in agents if a.pid is not None]
            watch = asyncio.create_task(_cpu_during(ctx, pids, begin_ns, end_ns, kind))
            replies = await ask_all(
                agents, {"cmd": "run", "go_ns": go_ns, "begin_ns": begin_ns, "end_ns": end_ns}
            )
            cpu = await watch
    finally:
        await close_all(agents)
        await server.stop()
    errors = sum(int(r["errors"]) for r in replies)
    if errors:
        first = next(r["first_error"] for r in replies if r["first_error"])
        raise RuntimeError(f"ingest against {kind}: {errors} error frames, e.g. {first}")
    acked = sum(int(r["acked"]) for r in replies)
    rate = acked / plan.ingest_duration_s
    return {
        "updates_per_s": rate,
        "acked": float(acked),
        "server_cpu_share": cpu[0],
        "agents_cpu_share": sum(cpu[1:]),
        "updates_per_server_cpu_s": rate / cpu[0] if cpu[0] > 0 else 0.0,
    }


async def _cpu_during(
    ctx: Context, pids: list[int], begin_ns: int, end_ns: int, kind: str
) -> list[float]:
    """CPU share (1.0 = one core) of each pid over the measured window; profiles it too."""
    await asyncio.sleep(max(0.0, (begin_ns - time.time_ns()) / 1e9))
    before = [cpu_seconds(p) for p in pids]
    t0 = time.monotonic()
    spy = ctx.profiler.start(pids[0], f"ingest-{kind}")
    await asyncio.sleep(max(0.0, (end_ns - time.time_ns()) / 1e9))
    after = [cpu_seconds(p) for p in pids]
    elapsed = time.monotonic() - t0
    await ctx.profiler.stop(spy, f"ingest-{kind}")
    return [(a - b) / elapsed for a, b in zip(after, before, strict=True)]


async def run(ctx: Context) -> ScenarioResult:
    plan = ctx.plan
    bare = await _measure(ctx, "bare")
    ours = await _measure(ctx, "fieldcloud")
    rate, ceiling = float(ours["updates_per_s"]), float(bare["updates_per_s"])
    share = rate / ceiling
    row = Row(
        "ingest",
        f"location ingest ({plan.mode}), {plan.ingest_phones} ws / {plan.ingest_procs} procs, "
        f"{plan.ingest_duration_s:g} s",
        figure=fmt_rate(rate),
        baseline=f"bare ws {fmt_rate(ceiling)}",
        ratio=fmt_ratio(share),
        goal=f"≥ {GOAL_RATE:,.0f}/s and ≥ {GOAL_SHARE}x bare",
        met=ctx.goal_met(rate >= GOAL_RATE and share >= GOAL_SHARE),
        values={"updates_per_s": rate, "bare_updates_per_s": ceiling, "ratio": share},
    )
    return ScenarioResult("ingest", [row], {"fieldcloud": ours, "bare": bare})


def estimate_s(plan: Plan) -> float:
    """Wall time the progress bar expects (the sum of the phase estimates)."""
    setup = 1.5 + plan.ingest_phones / 400
    return 2 * (setup + 1.5 + plan.ingest_warmup_s + plan.ingest_duration_s + 0.5)
