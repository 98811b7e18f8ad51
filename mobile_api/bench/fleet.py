"""A fleet of technician sockets held by agent processes, for scenarios 3 and 4.

:class:`Fleet` starts a server (``fieldcloud`` in the plan's mode, or the bare
ceiling), creates an organisation and ``N`` workers through the HTTP API
(fieldcloud only; the agents create their share in parallel), and spreads the
phones over ``fleet_procs`` agent processes. The steps are separate commands
so that a scenario can measure between them:

1. ``create`` -- the workers exist (the server holds their records);
2. ``connect`` -- every phone has its socket and has answered one ping;
3. ``available`` -- every phone is available with one fix in the city;
4. ``record`` / ``collect`` -- offer frames are timestamped as they arrive
   (``time.time_ns()``, the host clock the poster also reads), and a steady
   trickle of application pings measures the round trip of the same sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from .procs import Agent, Channel, ServerProcess, ask_all, close_all, raise_nofile
from .runner import Context, city_point
from .setup import create_org, create_workers
from .wire import Phone, open_phone

AVAILABLE = b'{"type":"status","status":"available"}'
CONNECT_CONCURRENCY = 128
PING_EVERY_S = 0.01
"""Per agent, while recording: one application ping on a random phone this often."""


@dataclass(frozen=True, slots=True)
class FleetConfig:
    port: int
    api_key: str | None
    count: int
    name: str
    seed: int


class _Log:
    def __init__(self) -> None:
        self.offers: list[tuple[str, int]] = []
        self.errors = 0
        self.first_error = ""
        self.recording = False


class FleetPhone(Phone):
    """Records offers; resolves ``status_reply`` on the status answer."""

    def __init__(self, port: int, token: str | None, log: _Log) -> None:
        super().__init__(port, token)
        self.log = log
        self.status_reply: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_text(self, payload: bytes, now_ns: int) -> None:
        if payload.startswith(b'{"type":"offer"'):
            if self.log.recording:
                job = msgspec.json.decode(payload)["job"]["id"]
                self.log.offers.append((job, now_ns))
        elif payload.startswith(b'{"type":"status"'):
            if not self.status_reply.done():
                self.status_reply.set_result(None)
        elif payload.startswith(b'{"type":"error"'):
            self.log.errors += 1
            if not self.log.first_error:
                self.log.first_error = payload[:300].decode(errors="replace")


async def fleet_agent(ch: Channel, cfg: FleetConfig) -> None:
    """Agent process holding ``cfg.count`` phones; see the module docstring for commands."""
    raise_nofile()
    rng = random.Random(cfg.seed)
    log = _Log()
    tokens: list[str | None] = [None] * cfg.count
    phones: list[FleetPhone] = []
    rtts: list[int] = []
    sampler: asyncio.Task[None] | None = None
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def connect(token: str | None) -> FleetPhone:
        async with gate:
            phone = FleetPhone(cfg.port, token, log)
            await open_phone(phone, cfg.port, timeout_s=60.0)
            await asyncio.wait_for(phone.ping(), 60.0)
            return phone

    async def sample() -> None:
        while True:
            await asyncio.sleep(PING_EVERY_S)
            rtt = await rng.choice(phones).ping()
            rtts.append(rtt)

    while True:
        msg = await ch.recv()
        cmd = msg["cmd"]
        t0 = time.perf_counter()
        if cmd == "create":
            assert cfg.api_key is not None
            made = await create_workers(cfg.port, cfg.api_key, cfg.count, cfg.name, 4)
            tokens = list(made)
            ch.send({"created": len(tokens), "seconds": time.perf_counter() - t0})
        elif cmd == "connect":
            phones = list(await asyncio.gather(*(connect(t) for t in tokens)))
            ch.send({"connected": len(phones), "seconds": time.perf_counter() - t0})
        elif cmd == "available":
            for start in range(0, len(phones), 500):
                chunk = phones[start : start + 500]
                pongs = []
                for phone in chunk:
                    lat, lng = city_point(rng)
                    fix = {"type": "location", "lat": lat, "lng": lng, "accuracy_m": 8.0}
                    phone.send_text(AVAILABLE)
                    phone.send_text(msgspec.json.encode(fix))
                    pongs.append(phone.ping())
                await asyncio.wait_for(asyncio.gather(*pongs), 60.0)
                await asyncio.wait_for(asyncio.gather(*(p.status_reply for p in chunk)), 60.0)
            ch.send({"available": len(phones), "seconds": time.perf_counter() - t0})
        elif cmd == "record":
            log.offers.clear()
            rtts.clear()
            log.recording = True
            sampler = asyncio.create_task(sample())
            ch.send({"recording": True})
        elif cmd == "collect":
            log.recording = False
            if sampler is not None:
                sampler.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampler
            ch.send(
                {
                    "offers": log.offers,
                    "rtts_ns": rtts,
                    "errors": log.errors,
                    "first_error": log.first_error,
                }
            )
        elif cmd == "stop":
            for phone in phones:
                phone.close()
            await asyncio.sleep(0.05)
            ch.send({"stopped": True})
            return


class Fleet:
    """A server and the agents holding its phones; ``await Fleet.start(...)``."""

    def __init__(self, ctx: Context, server: ServerProcess, api_key: str | None) -> None:
        self.ctx = ctx
        self.server = server
        self.api_key = api_key
        self.agents: list[Agent] = []
        self.connected = False
        self.details: dict[str, Any] = {}

    @property
    def size(self) -> int:
        return self.ctx.plan.fleet_sockets

    @classmethod
    async def start(cls, ctx: Context, kind: Literal["fieldcloud", "bare"]) -> Fleet:
        plan = ctx.plan
        server = await ServerProcess.start(kind, plan.mode, ctx.workdir, f"fleet-{kind}")
        fleet = cls(ctx, server, None)
        try:
            if kind == "fieldcloud":
                fleet.api_key = await create_org(server, "fleet")
            for i in range(plan.fleet_procs):
                share = plan.fleet_sockets // plan.fleet_procs
                if i < plan.fleet_sockets % plan.fleet_procs:
                    share += 1
                cfg = FleetConfig(
                    server.port, fleet.api_key, share, f"tech{i}", plan.seed + 100 + i
                )
                fleet.agents.append(Agent(fleet_agent, cfg, f"fleet-{kind}-{i}"))
            if fleet.api_key is not None:
                replies = await ask_all(fleet.agents, {"cmd": "create"})
                fleet.details["create_s"] = max(float(r["seconds"]) for r in replies)
        except BaseException:
            await fleet.close()
            raise
        return fleet

    async def connect(self) -> float:
        """Connect every phone (each answers one ping); returns the seconds it took."""
        replies = await ask_all(self.agents, {"cmd": "connect"})
        self.connected = True
        seconds = max(float(r["seconds"]) for r in replies)
        self.details["connect_s"] = seconds
        return seconds

    async def ask(self, cmd: str) -> list[dict[str, Any]]:
        return await ask_all(self.agents, {"cmd": cmd})

    async def close(self) -> None:
        await close_all(self.agents)
        await self.server.stop()


def create_estimate_s(sockets: int) -> float:
    return 1.5 + sockets / 2_500


def connect_estimate_s(sockets: int) -> float:
    return 0.5 + sockets / 1_500
