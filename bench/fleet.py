"""A fleet of technician sockets held by agent processes, for scenarios 3 and 4.

:class:`Fleet` starts a server (``fieldcloud`` in a mode, or the bare ceiling)
or, in production mode, several instances sharing the run's database and
Redis prefix; creates an organisation per instance and ``N`` workers through
the HTTP API (fieldcloud only; the agents create their share in parallel), and
spreads the phones over ``fleet_procs`` agent processes. The steps are separate commands
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
import collections
import contextlib
import random
import time
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from .procs import Agent, Channel, ServerProcess, ask_all, close_all, raise_nofile
from .runner import Context, city_point
from .setup import create_org, create_workers
from .wire import HandshakeFailed, Phone, open_phone

AVAILABLE = b'{"type":"status","status":"available"}'
UNAVAILABLE = b'{"type":"error","code":"unavailable"'
CONNECT_CONCURRENCY = {"memory": 128, "bare": 128, "production": 32}
AVAILABLE_CHUNK = {"memory": 500, "bare": 500, "production": 50}
"""Handshakes, and status changes, in flight per agent. Gentler in production
mode: each handshake and each status change there makes direct Redis calls
(the worker's last fix, the replay, the presence claim), and with 128 / 500
in flight an instance ran out of Redis client connections (redis-py's pool:
100, ``MaxConnectionsError`` at once) and refused phones -- a server
limitation the bench reports, not what the offers scenario measures."""
HANDSHAKE_ATTEMPTS = 6
"""A phone refused with 503, closed by the server before its first pong, or whose
``available`` is answered with an error, tries again after a backoff (0.1 s,
doubling), as a real phone would. In production mode an instance does all
three to some phones while thousands connect or go available at once (its
Redis client pool runs out of connections: ``MaxConnectionsError``); they are
counted (``handshakes_refused_503``, ``closed_before_first_pong``,
``status_refused``)."""
PING_EVERY_S = 0.01
"""Per agent, while recording: one application ping on a random phone this often."""


@dataclass(frozen=True, slots=True)
class FleetConfig:
    port: int
    api_key: str | None
    count: int
    name: str
    seed: int
    mode: str


class _Log:
    def __init__(self) -> None:
        self.refused = 0
        self.closed = 0
        self.status_refused = 0
        self.unavailable = 0
        self.first_unavailable = ""
        self.closed_by_server: collections.Counter[str] = collections.Counter()
        self.offers: list[tuple[str, int]] = []
        self.errors = 0
        self.first_error = ""
        self.recording = False


class FleetPhone(Phone):
    """Records offers; resolves ``status_reply`` on the status answer."""

    def __init__(self, port: int, token: str | None, log: _Log) -> None:
        super().__init__(port, token)
        self.token = token
        self.log = log
        self.status_reply: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._refuse_status(ConnectionError(self.close_reason))

    def _refuse_status(self, exc: Exception) -> None:
        """Fail a pending status change (not logged if nobody was waiting for it)."""
        if not self.status_reply.done():
            self.status_reply.set_exception(exc)
            self.status_reply.exception()  # marks it retrieved

    def on_text(self, payload: bytes, now_ns: int) -> None:
        if payload.startswith(b'{"type":"offer"'):
            if self.log.recording:
                job = msgspec.json.decode(payload)["job"]["id"]
                self.log.offers.append((job, now_ns))
        elif payload.startswith(b'{"type":"status"'):
            if not self.status_reply.done():
                self.status_reply.set_result(None)
        elif payload.startswith(b'{"type":"error"'):
            text = payload[:300].decode(errors="replace")
            if not self.status_reply.done():  # the status change was refused: tried again
                self._refuse_status(RuntimeError(f"status refused: {text}"))
                return
            if payload.startswith(UNAVAILABLE):  # a backing service did not answer: counted
                self.log.unavailable += 1
                self.log.first_unavailable = self.log.first_unavailable or text
                return
            self.log.errors += 1
            if not self.log.first_error:
                self.log.first_error = text


# One command loop and the closures it drives, over shared per-agent state; mccabe
# counts the closures into it. Split, the state would travel through every call.
async def fleet_agent(ch: Channel, cfg: FleetConfig) -> None:  # noqa: C901
    """Agent process holding ``cfg.count`` phones; see the module docstring for commands."""
    raise_nofile()
    rng = random.Random(cfg.seed)
    log = _Log()
    tokens: list[str | None] = [None] * cfg.count
    phones: list[FleetPhone] = []
    rtts: list[int] = []
    sampler: asyncio.Task[None] | None = None
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY[cfg.mode])
    chunk_size = AVAILABLE_CHUNK[cfg.mode]
    loop = asyncio.get_running_loop()

    async def connect(token: str | None) -> FleetPhone:
        for attempt in range(HANDSHAKE_ATTEMPTS):
            last = attempt == HANDSHAKE_ATTEMPTS - 1
            async with gate:
                phone = FleetPhone(cfg.port, token, log)
                try:
                    await open_phone(phone, cfg.port, timeout_s=60.0)
                except HandshakeFailed as exc:
                    if exc.status != 503 or last:
                        raise
                    log.refused += 1
                else:
                    try:
                        await asyncio.wait_for(phone.ping(), 60.0)
                        return phone
                    except ConnectionError:  # closed by the server: "reconnect with last_seq"
                        if last:
                            raise
                        log.closed += 1
                if phone.transport is not None:
                    phone.transport.close()
            await asyncio.sleep(0.1 * 2**attempt * rng.uniform(0.5, 1.5))
        raise AssertionError("unreachable")

    async def revive() -> None:
        """Reconnect the phones the server closed, as real phones would; count why."""
        gone = [i for i, phone in enumerate(phones) if phone.closed.done()]
        for i in gone:
            log.closed_by_server[phones[i].close_reason] += 1
        fresh = await asyncio.gather(*(connect(phones[i].token) for i in gone))
        for i, phone in zip(gone, fresh, strict=True):
            phones[i] = phone

    async def go_available(chunk: list[int], last: bool) -> list[int]:
        """Phones ``chunk`` go available with a fix; returns those to try again."""
        sent: list[int] = []
        pongs = []
        for i in chunk:
            phone = phones[i]
            if phone.closed.done():
                if last:
                    raise RuntimeError(f"phone closed by the server: {phone.close_reason}")
                continue
            lat, lng = city_point(rng)
            fix = {"type": "location", "lat": lat, "lng": lng, "accuracy_m": 8.0}
            phone.send_text(AVAILABLE)
            phone.send_text(msgspec.json.encode(fix))
            pongs.append(phone.ping())
            sent.append(i)
        await asyncio.wait_for(asyncio.gather(*pongs, return_exceptions=True), 60.0)
        answers = await asyncio.wait_for(
            asyncio.gather(*(phones[i].status_reply for i in sent), return_exceptions=True),
            60.0,
        )
        retry = [i for i in chunk if i not in set(sent)]
        for i, answer in zip(sent, answers, strict=True):
            if isinstance(answer, BaseException) or phones[i].closed.done():
                if last:
                    raise RuntimeError(f"phone {i} did not go available: {answer!r}")
                phones[i].status_reply = loop.create_future()
                retry.append(i)
        return retry

    async def sample() -> None:
        while True:
            await asyncio.sleep(PING_EVERY_S)
            phone = rng.choice(phones)
            if not phone.closed.done():
                with contextlib.suppress(ConnectionError):
                    rtts.append(await phone.ping())

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
            ch.send(
                {
                    "connected": len(phones),
                    "seconds": time.perf_counter() - t0,
                    "refused_503": log.refused,
                    "closed_at_start": log.closed,
                }
            )
        elif cmd == "available":
            pending = list(range(len(phones)))
            for attempt in range(HANDSHAKE_ATTEMPTS):
                await revive()
                retry: list[int] = []
                for start in range(0, len(pending), chunk_size):
                    chunk = pending[start : start + chunk_size]
                    retry += await go_available(chunk, last=attempt == HANDSHAKE_ATTEMPTS - 1)
                if not retry:
                    break
                log.status_refused += len(retry)
                pending = retry
                await asyncio.sleep(0.1 * 2**attempt)
            ch.send(
                {
                    "available": len(phones),
                    "seconds": time.perf_counter() - t0,
                    "status_refused": log.status_refused,
                    "closed_by_server": dict(log.closed_by_server),
                }
            )
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
                    "unavailable": log.unavailable,
                    "first_unavailable": log.first_unavailable,
                    "closed_while_recording": dict(
                        collections.Counter(p.close_reason for p in phones if p.closed.done())
                    ),
                }
            )
        elif cmd == "stop":
            for phone in phones:
                phone.close()
            await asyncio.sleep(0.05)
            ch.send({"stopped": True})
            return


class Fleet:
    """Servers and the agents holding their phones; ``await Fleet.start(...)``.

    With one instance, every phone is on it and in one organisation. With
    ``instances`` = N > 1 (production mode), instance ``i`` gets organisation
    ``i`` and the agents ``j`` with ``j % N == i``; :attr:`targets` then pairs
    each organisation with *another* instance to post its jobs to, so every
    offer crosses instances (phones on A get jobs posted to B, and vice versa).
    """

    def __init__(self, ctx: Context, mode: str, servers: list[ServerProcess]) -> None:
        self.ctx = ctx
        self.mode = mode
        self.servers = servers
        self.api_keys: list[str] = []
        self.agents: list[Agent] = []
        self.connected = False
        self.details: dict[str, Any] = {}

    @property
    def server(self) -> ServerProcess:
        """The first (or only) instance."""
        return self.servers[0]

    @property
    def api_key(self) -> str | None:
        return self.api_keys[0] if self.api_keys else None

    @property
    def size(self) -> int:
        return self.ctx.plan.fleet_sockets

    @property
    def targets(self) -> list[tuple[str, ServerProcess]]:
        """``(api key, instance to post to)`` per organisation: the next instance over."""
        n = len(self.servers)
        return [(key, self.servers[(i + 1) % n]) for i, key in enumerate(self.api_keys)]

    def rss_kib(self) -> int:
        """Resident memory of every instance together."""
        return sum(s.rss_kib() for s in self.servers)

    @classmethod
    async def start(
        cls,
        ctx: Context,
        kind: Literal["fieldcloud", "bare"],
        mode: str = "memory",
        instances: int = 1,
    ) -> Fleet:
        plan = ctx.plan
        name = "fleet-bare" if kind == "bare" else f"fleet-{mode}"
        if kind == "bare":
            servers = [await ctx.start_server("bare", mode, name)]
        else:
            servers = await ctx.start_servers(mode, instances, name)
        fleet = cls(ctx, mode, servers)
        try:
            if kind == "fieldcloud":
                for i, server in enumerate(servers):
                    fleet.api_keys.append(await create_org(server, f"{name}-{i}"))
            procs = max(plan.fleet_procs, len(servers))
            for i in range(procs):
                share = plan.fleet_sockets // procs
                if i < plan.fleet_sockets % procs:
                    share += 1
                home = i % len(servers)
                key = fleet.api_keys[home] if fleet.api_keys else None
                cfg = FleetConfig(
                    servers[home].port, key, share, f"tech{i}", plan.seed + 100 + i, mode
                )
                fleet.agents.append(Agent(fleet_agent, cfg, f"{name}-{i}"))
            if fleet.api_keys:
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
        self.details["handshakes_refused_503"] = sum(int(r["refused_503"]) for r in replies)
        self.details["closed_before_first_pong"] = sum(int(r["closed_at_start"]) for r in replies)
        return seconds

    async def ask(self, cmd: str) -> list[dict[str, Any]]:
        return await ask_all(self.agents, {"cmd": cmd})

    async def close(self) -> None:
        await close_all(self.agents)
        await asyncio.gather(*(s.stop() for s in self.servers))


def create_estimate_s(sockets: int) -> float:
    return 1.5 + sockets / 2_500


def connect_estimate_s(sockets: int) -> float:
    return 0.5 + sockets / 1_500
