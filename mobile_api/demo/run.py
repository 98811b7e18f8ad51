"""``fieldcloud demo``: the real server, a simulated fleet and a feed of work orders.

Everything runs in this process and needs no services (memory stores):

1. the server starts on ``settings.host:settings.port`` (a free port if that
   one is taken), exactly as ``fieldcloud serve`` would run it;
2. one organisation is created with the bootstrap admin token;
3. one technician is enrolled for a person to drive (``fieldcloud phone``;
   the banner prints its token), and ``simulator.Fleet`` enrolls N
   technicians over HTTP and connects each one as a real websocket client
   speaking docs/protocol.md;
4. ``JobFeed`` posts work orders (``POST /v1/jobs``) at a steady rate and
   asks about jobs whose waves ran out, to count the unfilled ones;
   ``HandPhones`` posts one next to each phone a person drives, which the
   simulated fleet leaves to them;
5. ``Console`` prints the summary (current figures, cumulative ones, the
   latencies; ``legend`` says what they mean): in place on a terminal,
   otherwise one line every few seconds.

Ctrl-C (or ``--duration``) stops it cleanly; ``_run_world`` gives the order.
``simulate`` returns the ``SimStats`` counters (tests read them);
``run_demo`` is the CLI's entry point and returns the exit code.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import math
import os
import random
import secrets
import shutil
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

import httpx
import uvicorn

from ..app import FieldcloudApp, create_app
from ..server import build_server
from ..settings import Settings
from .city import Point, random_work_order
from .simulator import Fleet, SimConfig, SimStats

ORG_NAME = "Ville de Lyon - field maintenance"


class DemoError(Exception):
    """The demo could not start (server, organisation or fleet)."""


# -- the server --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Listening:
    """The running server and where clients reach it."""

    server: uvicorn.Server
    task: asyncio.Task[None]
    app: FieldcloudApp
    host: str
    port: int
    fell_back_from: int | None
    """The configured port, when it was taken and a free one was used instead."""

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/v1/ws/worker"


def demo_settings(settings: Settings) -> tuple[Settings, list[str]]:
    """In-process mode and a known admin token, with notes on what was changed."""
    notes: list[str] = []
    if settings.production:
        notes.append("ignoring DATABASE_URL/REDIS_URL: the demo always runs in-process")
    token = settings.admin_token or secrets.token_urlsafe(24)
    changed = dataclasses.replace(settings, database_url=None, redis_url=None, admin_token=token)
    return changed, notes


def bind_listener(host: str, port: int) -> tuple[socket.socket, bool]:
    """A bound socket on ``host:port``, or on a free port when that one is taken."""
    try:
        return _bind(host, port), False
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE or port == 0:
            raise DemoError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return _bind(host, 0), True


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def client_host(host: str) -> str:
    """The address clients dial: a wildcard listen address means this machine."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


@contextlib.asynccontextmanager
async def running_server(settings: Settings) -> AsyncIterator[Listening]:
    """Start the server in this loop; stop it (1012 to open sockets, lifespan down) on exit."""
    sock, fell_back = bind_listener(settings.host, settings.port)
    app = create_app(settings)
    server = build_server(app, settings, log_level=settings.log_level or "warning")
    task = asyncio.create_task(server.serve(sockets=[sock]), name="demo-server")
    try:
        while not server.started:
            if task.done():
                raise DemoError("the server did not start (see the log above)")
            await asyncio.sleep(0.02)
        port = int(sock.getsockname()[1])
        yield Listening(
            server,
            task,
            app,
            client_host(settings.host),
            port,
            settings.port if fell_back else None,
        )
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await task
        sock.close()


async def create_org(base_url: str, admin_token: str) -> str:
    """Create the demo's organisation; returns its API key."""
    headers = {"Authorization": f"Bearer {admin_token}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, trust_env=False) as client:
        response = await client.post("/v1/orgs", json={"name": ORG_NAME})
    if response.status_code != 201:
        raise DemoError(f"creating the organisation failed: {response.status_code} {response.text}")
    key: str = response.json()["api_key"]
    return key


# -- the feed of work orders ------------------------------------------------------------


class JobFeed:
    """Posts work orders at ``SimConfig.jobs_per_s`` and counts the ones left unfilled.

    A job whose wave deadline has passed without an ``assigned`` notice is
    looked up (``GET /v1/jobs/{id}``) to learn whether it escalated or ran out
    of waves.
    """

    def __init__(
        self, client: httpx.AsyncClient, config: SimConfig, stats: SimStats, rng: random.Random
    ) -> None:
        self._client = client
        self._cfg = config
        self._stats = stats
        self._rng = rng
        self._deadlines: dict[str, float] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._post_loop(), name="job-feed"),
            asyncio.create_task(self._watch_loop(), name="job-watch"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _post_loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            next_at += self._rng.expovariate(self._cfg.jobs_per_s)
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            await self._post_one(loop.time())

    async def _post_one(self, now: float) -> None:
        body = random_work_order(self._cfg.city, self._rng)
        try:
            response = await self._client.post("/v1/jobs", json=body)
        except httpx.HTTPError as exc:
            self._stats.record_error(f"POST /v1/jobs: {exc!r}")
            return
        if response.status_code != 201:
            self._stats.record_error(f"POST /v1/jobs: {response.status_code}")
            return
        job = response.json()
        self._stats.record_posted(job["id"], now)
        self._track(job)

    def _track(self, job: dict[str, object]) -> None:
        """Remember when to look at an open job again; count an unfilled one."""
        job_id = str(job["id"])
        deadline = job.get("wave_deadline")
        if job["state"] == "unfilled":
            self._stats.record_unfilled(job_id)
        elif job["state"] != "open":
            self._stats.drop_open(job_id)  # its assigned notice came before the POST answer
        if job["state"] == "open" and isinstance(deadline, str):
            self._deadlines[job_id] = datetime.fromisoformat(deadline).timestamp()
        else:
            self._deadlines.pop(job_id, None)

    async def _watch_loop(self, every_s: float = 1.0, batch: int = 25) -> None:
        while True:
            await asyncio.sleep(every_s)
            for job_id in [j for j in self._deadlines if j not in self._stats.open_jobs]:
                del self._deadlines[job_id]  # assigned meanwhile
            now = time.time()
            due = [j for j, at in self._deadlines.items() if at + 0.5 < now][:batch]
            for job_id in due:
                await self._check(job_id)

    async def _check(self, job_id: str) -> None:
        try:
            response = await self._client.get(f"/v1/jobs/{job_id}")
        except httpx.HTTPError as exc:
            self._stats.record_error(f"GET /v1/jobs: {exc!r}")
            return
        if response.status_code == 200:
            self._track(response.json())
        else:
            self._deadlines.pop(job_id, None)


# -- the console --------------------------------------------------------------------


class Console:
    """The live summary: three lines redrawn in place on a terminal, else one line every 5 s.

    The figures after "now" are current; those after "so far" count since the
    start (``legend`` explains them). ``say`` prints a message above the summary.
    """

    def __init__(
        self,
        out: TextIO,
        fleet: Fleet,
        stats: SimStats,
        *,
        every_s: float | None = None,
        tty: bool | None = None,
    ) -> None:
        self._out = out
        self._fleet = fleet
        self._stats = stats
        self._cfg = fleet.config
        self._tty = out.isatty() if tty is None else tty
        self._every_s = every_s if every_s is not None else (0.5 if self._tty else 5.0)
        self._started = time.monotonic()
        self._samples: deque[tuple[float, int]] = deque(maxlen=64)
        self._task: asyncio.Task[None] | None = None
        self._drawn = 0
        """Lines of the summary block on screen (a terminal only)."""

    def start(self) -> None:
        self._started = time.monotonic()
        self._samples.append((self._started, self._stats.fixes))
        self._task = asyncio.create_task(self._loop(), name="console")

    async def stop(self) -> None:
        """Stop updating and print the final summary."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.show(final=True)

    def say(self, text: str) -> None:
        """Print ``text`` on its own line, above the summary block."""
        if self._tty and self._drawn:
            self._out.write(self._home() + text + "\x1b[K\n")
            self._drawn = 0
            self._draw(self.lines())
        else:
            self._out.write(text + "\n")
        self._out.flush()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._every_s)
            self.show()

    def show(self, *, final: bool = False) -> None:
        """Print the summary now (on a terminal, over the previous one)."""
        lines = self.lines()
        if self._tty:
            self._out.write(self._home())
            self._draw(lines)
            if final:
                self._out.write("\n")
                self._drawn = 0
        else:
            self._out.write(" | ".join(lines) + "\n")
        self._out.flush()

    def _home(self) -> str:
        """The escape sequence back to the start of the summary block."""
        if self._drawn == 0:
            return ""
        up = f"\x1b[{self._drawn - 1}A" if self._drawn > 1 else ""
        return "\r" + up

    def _draw(self, lines: list[str]) -> None:
        width = shutil.get_terminal_size((120, 24)).columns - 1
        self._out.write("\n".join(line[:width] + "\x1b[K" for line in lines))
        self._drawn = len(lines)

    def lines(self) -> list[str]:
        """The summary now: current figures, cumulative ones, and the latencies."""
        now = time.monotonic()
        s, c = self._stats, self._fleet.census()
        elapsed = now - self._started
        rate = self._fix_rate(now)
        current = (
            f"{elapsed:4.0f}s now: {c.connected} online = {c.available} available"
            f" + {c.busy} busy + {c.off_duty} on a break | {s.jobs_open} job"
            f"{'' if s.jobs_open == 1 else 's'} waiting"
            f" | {rate:.0f} loc/s"
        )
        total = (
            f"so far: {s.jobs_posted} jobs posted, {s.jobs_assigned} assigned,"
            f" {s.jobs_completed} done, {s.jobs_unfilled} unfilled | {s.offers} offers,"
            f" {s.accepts} accepted, {s.declines} declined, {s.expired} expired"
        )
        lo, hi = self._cfg.accept_delay_s
        latency = (
            f"median: post->offer {_secs(s.median_offer_s())},"
            f" post->assign {_secs(s.median_assign_s())} (incl. {lo:g}-{hi:g} s simulated"
            " accept delay)"
        )
        return [current, total, latency]

    def _fix_rate(self, now: float, window_s: float = 5.0) -> float:
        """Location updates per second over the last few seconds."""
        self._samples.append((now, self._stats.fixes))
        while len(self._samples) > 2 and now - self._samples[1][0] >= window_s:
            self._samples.popleft()
        t0, n0 = self._samples[0]
        return 0.0 if now - t0 <= 0 else (self._stats.fixes - n0) / (now - t0)


def _secs(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1.0 else f"{value:.1f} s"


def legend(cfg: SimConfig) -> list[str]:
    """What the summary's figures mean (printed once, under the banner)."""
    lo, hi = cfg.accept_delay_s
    return [
        "the summary below: 'now' figures are current, 'so far' ones count since the start.",
        "  online = available + busy + on a break: a technician between shifts keeps the",
        "  phone connected but gets no offers. post->offer is the server's own speed (from",
        "  sending the POST to the first offer at a phone); post->assign adds the simulated",
        f"  human's {lo:g}-{hi:g} s to answer. 'expired': offers unanswered by the deadline.",
        f"time x{cfg.time_scale:g}: driving and on-site work run {cfg.time_scale:g} times faster"
        " than the clock",
        f"  (a 30 min repair takes {30 * 60 / cfg.time_scale:g} s); answering an offer takes real"
        " seconds.",
    ]


def banner(
    out: TextIO,
    listening: Listening,
    admin_token: str,
    api_key: str,
    cfg: SimConfig,
    hand: HandWorker | None = None,
) -> None:
    """Where the server is, the credentials, and how to join as a technician by hand."""
    base = listening.base_url
    where = _spot(cfg)
    lines = [
        f"fieldcloud demo - {cfg.workers} simulated technicians in {cfg.city.name},"
        f" ~{cfg.jobs_per_s * 60:.0f} work orders/min, time x{cfg.time_scale:g}",
        "mode: in-process (memory stores; nothing persists)",
        f"server:      {base}    health: {base}/healthz",
        f"admin token: {admin_token}",
        f"org API key: {api_key}    ({ORG_NAME})",
        "",
        "drive a technician by hand, in another terminal (protocol: docs/protocol.md):",
    ]
    if hand is not None:
        lines += [
            f"  {_program()} phone --url {listening.ws_url} --token {hand.token}",
            f"  then type `available` and `loc {where}`: the demo posts a work order next to",
            "  you, left to you by the simulated fleet; when the offer arrives, type `accept`,",
            "  then `go en_route`, `go on_site`, `go completed`.",
        ]
    lines += [
        "  more technicians of your own (each hand-driven phone gets its work orders):",
        f"  curl -s {base}/v1/workers -H 'Authorization: Bearer {api_key}' \\",
        '       -H \'Content-Type: application/json\' -d \'{"name":"Me","skills":["lighting"]}\'',
        "",
        *legend(cfg),
        "Ctrl-C to stop.",
    ]
    if listening.fell_back_from is not None:
        lines.insert(0, f"port {listening.fell_back_from} is in use; using {listening.port}")
    out.write("\n".join(lines) + "\n")
    out.flush()


def _spot(cfg: SimConfig) -> str:
    """A place to stand for a hand-driven phone, as ``loc`` takes it: the busiest hot spot."""
    busiest = max(cfg.city.hot_spots, key=lambda h: h.weight, default=None)
    at = cfg.city.centre if busiest is None else busiest.at
    return f"{at.lat:.4f} {at.lng:.4f}"


def _program() -> str:
    """How this shell can run ``fieldcloud`` again (``make run`` uses .venv/bin/fieldcloud)."""
    argv0 = sys.argv[0] if sys.argv else ""
    return argv0 if os.path.basename(argv0) == "fieldcloud" else "fieldcloud"


# -- hand-driven phones ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HandWorker:
    """A technician enrolled for a person to drive with ``fieldcloud phone``."""

    id: str
    token: str
    name: str


HAND_NAME = "You (hand-driven)"
HAND_SKILLS = ("lighting", "electrical")


async def enroll_hand_worker(client: httpx.AsyncClient) -> HandWorker:
    """Create the technician the banner hands to a person (``POST /v1/workers``)."""
    body = {"name": HAND_NAME, "kind": "employee", "skills": list(HAND_SKILLS)}
    response = await client.post("/v1/workers", json=body)
    if response.status_code != 201:
        raise DemoError(f"creating the hand-driven worker failed: {response.status_code}")
    created = response.json()
    return HandWorker(created["id"], created["token"], created["name"])


class HandPhones:
    """Work orders for the phones a person drives, left to them by the simulated fleet.

    Every second it looks at who is connected (the server's sessions) besides
    the simulated fleet. A worker of the demo's organisation who is available
    with a fresh position gets a work order posted ``DISTANCE_M`` away, marked
    in ``SimStats.reserved`` so that the simulated technicians decline it; the
    person has the whole offer timeout to type ``accept``. One such job at a
    time per worker; the next comes once the worker is available again.
    """

    DISTANCE_M = 120.0

    def __init__(
        self,
        client: httpx.AsyncClient,
        listening: Listening,
        fleet: Fleet,
        stats: SimStats,
        say: Callable[[str], None],
        rng: random.Random,
        *,
        fix_max_age_s: float,
        every_s: float = 1.0,
    ) -> None:
        self._client = client
        self._listening = listening
        self._fleet_ids = {t.worker_id for t in fleet.technicians}
        self._spot = _spot(fleet.config)
        self._stats = stats
        self._say = say
        self._rng = rng
        self._every_s = every_s
        self._fix_max_age_s = fix_max_age_s
        self._jobs: dict[str, str] = {}
        """Worker id → the open job posted for it."""
        self._hinted: set[str] = set()
        self._foreign: set[str] = set()
        """Connected workers of other organisations (not the demo's business)."""
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="hand-phones")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _connected(self) -> list[str]:
        runtime = getattr(self._listening.app.state, "runtime", None)
        if runtime is None:
            return []
        return [
            wid
            for wid, session in list(runtime.sessions.items())
            if session.open and wid not in self._fleet_ids and wid not in self._foreign
        ]

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._every_s)
            try:
                for worker_id in self._connected():
                    await self._look_after(worker_id)
            except httpx.HTTPError as exc:
                self._stats.record_error(f"hand-driven phones: {exc!r}")

    async def _look_after(self, worker_id: str) -> None:
        job_id = self._jobs.get(worker_id)
        if job_id is not None:
            job = await self._client.get(f"/v1/jobs/{job_id}")
            if job.status_code == 200 and job.json()["state"] == "open":
                return
            del self._jobs[worker_id]
            self._stats.reserved.discard(job_id)
        found = await self._client.get(f"/v1/workers/{worker_id}")
        if found.status_code == 404:
            self._foreign.add(worker_id)
            return
        worker = found.json()
        fix = worker.get("last_fix")
        if worker["status"] != "available" or fix is None or not self._fresh(fix["at"]):
            if worker_id not in self._hinted:
                self._hinted.add(worker_id)
                self._say(
                    f"hand-driven phone connected: {worker['name']} ({worker_id}); type"
                    f" `available` and `loc LAT LNG` (e.g. loc {self._spot}) for a work order"
                )
            return
        await self._post_near(worker, fix)

    def _fresh(self, at: str, margin_s: float = 30.0) -> bool:
        """Whether a fix still counts for matching, with a margin for the offer to go out."""
        age = time.time() - datetime.fromisoformat(at).timestamp()
        return age < self._fix_max_age_s - margin_s

    async def _post_near(self, worker: dict[str, Any], fix: dict[str, Any]) -> None:
        here = Point(fix["lat"], fix["lng"])
        site = here.moved(self.DISTANCE_M, self._rng.uniform(0.0, 2 * math.pi))
        skills = worker["skills"][:1]
        body = {
            "title": f"Street light out, for {worker['name']}",
            "lat": round(site.lat, 6),
            "lng": round(site.lng, 6),
            "skills": skills,
            "description": "posted by the demo for a hand-driven phone",
        }
        response = await self._client.post("/v1/jobs", json=body)
        if response.status_code != 201:
            self._stats.record_error(f"POST /v1/jobs (hand-driven): {response.status_code}")
            return
        job = response.json()
        self._stats.reserved.add(job["id"])
        self._jobs[worker["id"]] = job["id"]
        self._say(
            f"work order for {worker['name']}: {job['id']}, {self.DISTANCE_M:.0f} m away,"
            " left to you by the simulated fleet: type `accept` when its offer arrives"
        )


# -- orchestration ----------------------------------------------------------------------


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event, enabled: bool) -> Iterator[None]:
    """Ctrl-C and SIGTERM set ``stop`` (installed after uvicorn's own handlers)."""
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    if enabled and threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
                installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def simulate(
    settings: Settings,
    config: SimConfig,
    *,
    duration_s: float | None = None,
    out: TextIO | None = None,
    handle_signals: bool = True,
    report_every_s: float | None = None,
) -> SimStats:
    """Run the demo until ``duration_s`` passes, Ctrl-C, or the server stops.

    Returns the counters of what happened (``SimStats``).
    """
    out = sys.stdout if out is None else out
    loop = asyncio.get_running_loop()
    deadline = None if duration_s is None else loop.time() + duration_s
    settings, notes = demo_settings(settings)
    for note in notes:
        out.write(note + "\n")
    stats = SimStats()
    async with running_server(settings) as listening:
        control = RunControl(asyncio.Event(), listening.task, deadline)
        with stop_on_signals(control.stop, handle_signals):
            await _run_world(listening, settings, config, stats, control, out, report_every_s)
    return stats


@dataclass(frozen=True, slots=True)
class RunControl:
    """What ends the run: Ctrl-C (``stop``), the server task ending, or the deadline."""

    stop: asyncio.Event
    server: asyncio.Task[None]
    deadline: float | None

    async def wait(self, work: Awaitable[None] | None = None) -> bool:
        """Wait for ``work`` (or forever) unless the run ends first; True if ``work`` finished."""
        loop = asyncio.get_running_loop()
        timeout = None if self.deadline is None else max(0.0, self.deadline - loop.time())
        stopper = asyncio.create_task(self.stop.wait())
        worker = None if work is None else asyncio.ensure_future(work)
        waiting: set[asyncio.Future[Any]] = {stopper, self.server}
        if worker is not None:
            waiting.add(worker)
        try:
            await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            if worker is not None and not worker.done():
                worker.cancel()
        return worker is not None and worker.done() and not worker.cancelled()


async def _run_world(
    listening: Listening,
    settings: Settings,
    config: SimConfig,
    stats: SimStats,
    control: RunControl,
    out: TextIO,
    report_every_s: float | None,
) -> None:
    """Create the organisation, a hand-driven worker and the fleet, feed work orders,
    print, and wind down.

    The feed starts once most of the fleet is on duty; ``HandPhones`` looks
    after phones driven by a person from the start. Shutdown, in order: no
    more work orders (for hand-driven phones, then the feed); the final summary
    is printed; every simulated phone closes its socket. (The server stops
    last, in ``running_server``.)
    """
    assert settings.admin_token is not None
    api_key = await create_org(listening.base_url, settings.admin_token)
    rng = random.Random(config.seed)
    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(
        base_url=listening.base_url, headers=headers, trust_env=False, timeout=10.0
    ) as client:
        hand = await enroll_hand_worker(client)
        banner(out, listening, settings.admin_token, api_key, config, hand)
        fleet = Fleet(listening.ws_url, config, stats, rng)
        if not await control.wait(fleet.enroll(client)):
            return
        feed = JobFeed(client, config, stats, rng)
        console = Console(out, fleet, stats, every_s=report_every_s)
        hands = HandPhones(
            client,
            listening,
            fleet,
            stats,
            console.say,
            random.Random(rng.random()),
            fix_max_age_s=settings.dispatch.fix_max_age_s,
        )
        fleet.start()
        console.start()
        hands.start()
        try:
            if await control.wait(fleet.ready()):
                feed.start()
                await control.wait()
        finally:
            await hands.stop()
            await feed.stop()
            await console.stop()
            await fleet.stop()


async def run_demo(
    settings: Settings,
    *,
    workers: int = 300,
    duration_s: float | None = None,
    seed: int | None = None,
) -> int:
    """The ``fieldcloud demo`` command; returns the exit code."""
    try:
        config = SimConfig(workers=workers, seed=seed)
    except ValueError as exc:
        print(f"fieldcloud demo: {exc}", file=sys.stderr)
        return 2
    try:
        stats = await simulate(settings, config, duration_s=duration_s)
    except (DemoError, httpx.HTTPError) as exc:
        print(f"fieldcloud demo: {exc}", file=sys.stderr)
        return 1
    if stats.last_error:
        print(f"last error seen: {stats.last_error}")
    print(
        f"stopped: {stats.jobs_posted} work orders posted, {stats.jobs_completed} completed,"
        f" {stats.offers} offers, {stats.fixes} location updates"
    )
    return 0
