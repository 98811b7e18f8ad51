"""A simulated fleet of technicians, each one a real phone on the websocket.

Used by ``fieldcloud demo`` (``demo``). The world is a real city's extent
(``LYON``): depots where employees start their shift, and hot spots where
work orders cluster. Every ``Technician`` speaks the documented protocol
(docs/protocol.md) over its own ``websockets`` connection:

* it goes on duty (a ``location`` then ``status: available``) and off duty
  again over time, and streams its position every few seconds while moving
  (a random-walk patrol, or heading to its job) and less often while parked;
* it answers an ``offer`` after a human-like delay: accept with probability
  ``SimConfig.accept_probability`` (less for far-away jobs), else decline;
* when ``assigned`` it reports ``en_route``, drives there, ``on_site``, works
  for a while and ``completed`` (the server makes it available again);
* after a dropped connection it reconnects with ``last_seq``.

Simulated time runs ``SimConfig.time_scale`` times faster than the wall clock
for driving and working; reaction times (accept delays) are real seconds.
Everything a technician observes is counted in one shared ``SimStats``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from .city import (
    LYON,
    City,
    Point,
    Profile,
    random_profile,
)

Notice = dict[str, Any]
"""One decoded JSON frame from the server."""


@dataclass(frozen=True, slots=True)
class SimConfig:
    """The knobs of the simulation; the defaults suit ``make run`` on 2 cores."""

    workers: int = 300
    jobs_per_s: float = 1.0
    """Mean rate of the work-order feed (Poisson arrivals)."""
    seed: int | None = None
    city: City = LYON
    accept_probability: float = 0.6
    accept_delay_s: tuple[float, float] = (1.5, 6.0)
    decline_delay_s: tuple[float, float] = (1.0, 4.0)
    prep_s: tuple[float, float] = (0.5, 2.0)
    """Real seconds between ``assigned`` and ``en_route``."""
    time_scale: float = 60.0
    """Simulated seconds per real second, for driving and working."""
    drive_speed_mps: float = 8.5
    patrol_speed_mps: float = 2.0
    work_minutes: tuple[float, float] = (10.0, 45.0)
    moving_fix_s: float = 3.0
    parked_fix_s: float = 20.0
    patrol_fraction: float = 0.5
    """Share of available technicians who drive around rather than wait parked."""
    on_duty_fraction: float = 0.85
    """Share of technicians who start their shift at once."""
    shift_mean_s: float = 180.0
    break_mean_s: float = 40.0
    ramp_s: float = 3.0
    """Connections are spread over this many seconds at start-up."""

    def __post_init__(self) -> None:
        if self.workers < 1 or self.jobs_per_s <= 0 or self.time_scale <= 0:
            raise ValueError("workers, jobs_per_s and time_scale must be positive")
        if not 0.0 <= self.accept_probability <= 1.0:
            raise ValueError("accept_probability must be between 0 and 1")


@dataclass(slots=True)
class SimStats:
    """Counters of what the fleet and the feed observed; gauges live on ``Fleet``.

    Every counter is cumulative (since the demo started); ``jobs_open`` is the
    only current figure here.
    """

    jobs_posted: int = 0
    jobs_assigned: int = 0
    jobs_completed: int = 0
    jobs_unfilled: int = 0
    offers: int = 0
    accepts: int = 0
    declines: int = 0
    expired: int = 0
    """Offers that closed because their wave's deadline passed unanswered."""
    lost_races: int = 0
    """Accepts that came too late: someone else took the job first."""
    fixes: int = 0
    errors: int = 0
    """Error frames and failed HTTP calls, other than lost races."""
    disconnects: int = 0
    last_error: str = ""
    open_jobs: dict[str, float] = field(default_factory=dict)
    """Job id → loop time it was posted, for jobs not yet assigned or unfilled."""
    assign_delays_s: list[float] = field(default_factory=list)
    offer_delays_s: list[float] = field(default_factory=list)
    """Seconds from sending ``POST /v1/jobs`` to the job's first offer at a phone."""
    reserved: set[str] = field(default_factory=set)
    """Jobs posted for a hand-driven phone: the simulated technicians decline them."""
    _awaiting_offer: set[str] = field(default_factory=set)
    _early_offers: dict[str, float] = field(default_factory=dict)
    """First offers that arrived before the ``POST`` answer named their job."""

    @property
    def jobs_open(self) -> int:
        return len(self.open_jobs)

    def record_posted(self, job_id: str, posted_at: float) -> None:
        self.jobs_posted += 1
        self.open_jobs[job_id] = posted_at
        early = self._early_offers.pop(job_id, None)
        if early is None:
            self._awaiting_offer.add(job_id)
        else:
            self.offer_delays_s.append(early - posted_at)

    def record_offer(self, job_id: str, now: float) -> None:
        """A phone received an offer for ``job_id``."""
        self.offers += 1
        if job_id in self._awaiting_offer:
            self._awaiting_offer.discard(job_id)
            self.offer_delays_s.append(now - self.open_jobs.get(job_id, now))
        elif job_id not in self.open_jobs and job_id not in self.reserved:
            self._early_offers.setdefault(job_id, now)

    def record_assigned(self, job_id: str, now: float) -> None:
        self.jobs_assigned += 1
        posted_at = self.open_jobs.pop(job_id, None)
        if posted_at is not None:
            self.assign_delays_s.append(now - posted_at)

    def record_unfilled(self, job_id: str) -> None:
        self._awaiting_offer.discard(job_id)
        if self.open_jobs.pop(job_id, None) is not None:
            self.jobs_unfilled += 1

    def drop_open(self, job_id: str) -> None:
        """Stop counting a job as open (it was assigned before it was recorded)."""
        self.open_jobs.pop(job_id, None)
        self._awaiting_offer.discard(job_id)

    def record_error(self, what: str) -> None:
        self.errors += 1
        self.last_error = what

    def median_assign_s(self) -> float | None:
        """Median seconds from posting a job to its ``assigned`` notice."""
        return statistics.median(self.assign_delays_s) if self.assign_delays_s else None

    def median_offer_s(self) -> float | None:
        """Median seconds from posting a job to its first offer at a phone."""
        return statistics.median(self.offer_delays_s) if self.offer_delays_s else None


# -- one technician -----------------------------------------------------------------


class Phase(StrEnum):
    """What a technician is doing, as the phone sees it."""

    OFF_DUTY = "off_duty"
    AVAILABLE = "available"
    ASSIGNED = "assigned"
    EN_ROUTE = "en_route"
    ON_SITE = "on_site"


BUSY = frozenset({Phase.ASSIGNED, Phase.EN_ROUTE, Phase.ON_SITE})


class Signal(Enum):
    """Inbox items that are not server frames."""

    STOP = "stop"
    DROPPED = "dropped"


@dataclass(frozen=True, slots=True)
class Decision:
    """What the human will answer to an offer, and when."""

    at: float
    accept: bool
    job_id: str


@dataclass(frozen=True, slots=True)
class Trip:
    """A drive from ``start`` to ``target`` between two loop times."""

    start: Point
    target: Point
    depart_at: float
    arrive_at: float

    def position(self, now: float) -> Point:
        span = self.arrive_at - self.depart_at
        return self.start.toward(self.target, 1.0 if span <= 0 else (now - self.depart_at) / span)


class Technician:
    """One simulated phone: a websocket client with a human behind it.

    A reader task puts every frame into an inbox; one behaviour loop takes
    frames and timers in order, so the state needs no locks.
    """

    def __init__(
        self,
        worker_id: str,
        token: str,
        profile: Profile,
        ws_url: str,
        config: SimConfig,
        stats: SimStats,
        rng: random.Random,
    ) -> None:
        self.worker_id = worker_id
        self.profile = profile
        self.phase = Phase.OFF_DUTY
        self.connected = False
        self.position = profile.home
        self._token = token
        self._ws_url = ws_url
        self._cfg = config
        self._stats = stats
        self._rng = rng
        self._inbox: asyncio.Queue[Notice | Signal] = asyncio.Queue()
        self._stop = asyncio.Event()
        self._last_seq: int | None = None
        self._heading = rng.uniform(0.0, 2 * math.pi)
        self._patrolling = False
        self._moved_at = 0.0
        self._decisions: dict[str, Decision] = {}
        self._sites: dict[str, Point] = {}
        self._accepting: str | None = None
        self._job_id: str | None = None
        self._trip: Trip | None = None
        self._off_after_job = False
        self._fix_at: float | None = None
        self._shift_at: float | None = None
        self._step_at: float | None = None

    # -- connection ---------------------------------------------------------

    def stop(self) -> None:
        """Ask the phone to close its socket and end ``run``."""
        self._stop.set()
        self._inbox.put_nowait(Signal.STOP)

    async def run(self) -> None:
        """Connect, live, and reconnect after a drop, until ``stop``."""
        await self._pause(self._rng.uniform(0.0, self._cfg.ramp_s))
        while not self._stop.is_set():
            try:
                await self._session()
            except (ConnectionClosed, InvalidHandshake, InvalidURI, OSError, TimeoutError) as exc:
                self._stats.disconnects += 1
                self._stats.last_error = f"{self.profile.name}: {exc!r}"
            await self._pause(self._rng.uniform(1.0, 3.0))

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once on ``stop``."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    def _url(self) -> str:
        return (
            self._ws_url if self._last_seq is None else f"{self._ws_url}?last_seq={self._last_seq}"
        )

    async def _session(self) -> None:
        headers = {"Authorization": f"Bearer {self._token}"}
        async with connect(
            self._url(),
            additional_headers=headers,
            compression=None,
            proxy=None,
            open_timeout=10,
            close_timeout=3,
        ) as ws:
            self._on_welcome(json.loads(await ws.recv()))
            self.connected = True
            reader = asyncio.create_task(self._read(ws), name=f"phone-{self.worker_id}")
            try:
                if await self._live(ws) is Signal.DROPPED:
                    self._stats.disconnects += 1
            finally:
                self.connected = False
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader

    async def _read(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                self._inbox.put_nowait(json.loads(raw))
        self._inbox.put_nowait(Signal.DROPPED)

    def _on_welcome(self, welcome: Notice) -> None:
        if welcome.get("type") != "welcome":
            raise InvalidHandshake(f"expected a welcome frame, got {welcome!r}")
        if self._shift_at is None and self.phase is Phase.OFF_DUTY:
            now = asyncio.get_running_loop().time()
            first_shift = self._rng.random() < self._cfg.on_duty_fraction
            delay = self._rng.uniform(0.2, 2.0) if first_shift else self._break()
            self._shift_at = now + delay
            self._moved_at = now

    async def _send(self, ws: ClientConnection, frame: Mapping[str, Any]) -> None:
        await ws.send(json.dumps(frame))

    # -- the behaviour loop ----------------------------------------------------

    async def _live(self, ws: ClientConnection) -> Signal:
        loop = asyncio.get_running_loop()
        while True:
            item = await self._next(loop)
            if isinstance(item, Signal):
                return item
            now = loop.time()
            if item is not None:
                await self._on_notice(ws, item, now)
            await self._run_due(ws, now)

    async def _next(self, loop: asyncio.AbstractEventLoop) -> Notice | Signal | None:
        """The next inbox item, or None when a timer is due first."""
        if not self._inbox.empty():
            return self._inbox.get_nowait()
        delay = self._next_wake() - loop.time()
        if delay <= 0:
            return None
        try:
            async with asyncio.timeout(delay):
                return await self._inbox.get()
        except TimeoutError:
            return None

    def _next_wake(self) -> float:
        timers = [t for t in (self._fix_at, self._shift_at, self._step_at) if t is not None]
        timers.extend(d.at for d in self._decisions.values())
        return min(timers, default=asyncio.get_running_loop().time() + 60.0)

    async def _run_due(self, ws: ClientConnection, now: float) -> None:
        if self._step_at is not None and self._step_at <= now:
            await self._step(ws, now)
        for offer_id in [k for k, d in self._decisions.items() if d.at <= now]:
            await self._decide(ws, offer_id, now)
        if self._fix_at is not None and self._fix_at <= now:
            await self._send_fix(ws, now)
        if self._shift_at is not None and self._shift_at <= now:
            await self._toggle_duty(ws, now)

    # -- what the server says ----------------------------------------------------

    async def _on_notice(self, ws: ClientConnection, msg: Notice, now: float) -> None:
        if isinstance(msg.get("seq"), int):
            self._last_seq = max(self._last_seq or 0, msg["seq"])
        kind = msg.get("type")
        if kind == "offer":
            self._on_offer(msg, now)
        elif kind == "assigned":
            self._on_assigned(msg, now)
        elif kind == "offer_closed":
            self._forget_offer(msg["offer_id"], msg["job_id"], msg.get("reason"))
        elif kind == "job_cancelled":
            self._on_job_cancelled(msg["job_id"], now)
        elif kind == "error":
            self._on_error(msg)

    def _on_offer(self, msg: Notice, now: float) -> None:
        job = msg["job"]
        self._stats.record_offer(job["id"], now)
        self._sites[job["id"]] = Point(job["lat"], job["lng"])
        if self.phase is not Phase.AVAILABLE:
            return  # the server withdraws it; a busy human ignores it
        p = self._cfg.accept_probability * (1.0 if msg["distance_m"] < 4_000 else 0.6)
        accept = self._rng.random() < p and job["id"] not in self._stats.reserved
        lo, hi = self._cfg.accept_delay_s if accept else self._cfg.decline_delay_s
        at = now + self._rng.uniform(lo, hi)
        self._decisions[msg["offer_id"]] = Decision(at, accept, job["id"])

    def _forget_offer(self, offer_id: str, job_id: str, reason: str | None = None) -> None:
        if reason == "expired":
            self._stats.expired += 1
        self._decisions.pop(offer_id, None)
        if job_id != self._job_id:
            self._sites.pop(job_id, None)

    def _on_assigned(self, msg: Notice, now: float) -> None:
        self._stats.record_assigned(msg["job_id"], now)
        self._accepting = None
        self._decisions.clear()  # the server withdrew the others
        self._job_id = msg["job_id"]
        self.phase = Phase.ASSIGNED
        self._step_at = now + self._rng.uniform(*self._cfg.prep_s)

    def _on_job_cancelled(self, job_id: str, now: float) -> None:
        if job_id == self._job_id:
            self._end_job(now)

    def _on_error(self, msg: Notice) -> None:
        if msg.get("code") == "offer_closed":
            self._stats.lost_races += 1
        else:
            self._stats.record_error(f"{msg.get('code')}: {msg.get('message')}")
        if msg.get("offer_id", self._accepting) == self._accepting:
            self._accepting = None

    # -- what the human does -------------------------------------------------------

    async def _decide(self, ws: ClientConnection, offer_id: str, now: float) -> None:
        decision = self._decisions.pop(offer_id)
        if self.phase is not Phase.AVAILABLE:
            return
        # A job posted for a hand-driven phone is left to it (the POST answer
        # naming it may have come after the offer).
        accept = decision.accept and decision.job_id not in self._stats.reserved
        if self._accepting is not None:  # wait for the answer to the last accept
            self._decisions[offer_id] = Decision(now + 0.5, accept, decision.job_id)
        elif accept:
            self._accepting = offer_id
            self._stats.accepts += 1
            await self._send(ws, {"type": "accept", "offer_id": offer_id})
        else:
            self._stats.declines += 1
            await self._send(ws, {"type": "decline", "offer_id": offer_id})

    async def _step(self, ws: ClientConnection, now: float) -> None:
        """Move the assigned job on: en_route, then on_site, then completed."""
        assert self._job_id is not None
        job_id = self._job_id
        if self.phase is Phase.ASSIGNED:
            await self._send(ws, {"type": "progress", "job_id": job_id, "state": "en_route"})
            self._start_trip(job_id, now)
        elif self.phase is Phase.EN_ROUTE:
            self._trip = None
            self.phase = Phase.ON_SITE
            await self._send_fix(ws, now)
            await self._send(ws, {"type": "progress", "job_id": job_id, "state": "on_site"})
            work_s = self._rng.uniform(*self._cfg.work_minutes) * 60.0 / self._cfg.time_scale
            self._step_at = now + work_s
        else:
            await self._send(ws, {"type": "progress", "job_id": job_id, "state": "completed"})
            self._stats.jobs_completed += 1
            self._end_job(now)
            if self._off_after_job:
                await self._go_off_duty(ws, now)

    def _start_trip(self, job_id: str, now: float) -> None:
        here = self._advance(now)
        target = self._sites.get(job_id) or self._cfg.city.clamp(
            here.moved(1_000.0, self._rng.uniform(0, 2 * math.pi))
        )
        speed = self._cfg.drive_speed_mps * self._cfg.time_scale
        arrive = now + max(0.5, here.distance_m(target) / speed)
        self._trip = Trip(here, target, now, arrive)
        self.phase = Phase.EN_ROUTE
        self._step_at = arrive
        self._fix_at = now

    def _end_job(self, now: float) -> None:
        """Back to available (the server releases the worker when a job ends)."""
        if self._job_id is not None:
            self._sites.pop(self._job_id, None)
        self._job_id = None
        self._trip = None
        self._step_at = None
        self.phase = Phase.AVAILABLE
        self._fix_at = now + self._fix_interval()

    async def _toggle_duty(self, ws: ClientConnection, now: float) -> None:
        self._shift_at = None
        if self.phase is Phase.OFF_DUTY:
            await self._go_on_duty(ws, now)
        elif self.phase is Phase.AVAILABLE:
            await self._go_off_duty(ws, now)
        else:
            self._off_after_job = True

    async def _go_on_duty(self, ws: ClientConnection, now: float) -> None:
        self._patrolling = self._rng.random() < self._cfg.patrol_fraction
        self._moved_at = now
        self.phase = Phase.AVAILABLE  # before the fix, which picks the next report's interval
        # Status first: the server drops the fixes of an off-duty technician.
        await self._send(ws, {"type": "status", "status": "available"})
        await self._send_fix(ws, now)
        self._shift_at = now + self._rng.expovariate(1.0 / self._cfg.shift_mean_s)

    async def _go_off_duty(self, ws: ClientConnection, now: float) -> None:
        await self._send(ws, {"type": "status", "status": "off_duty"})
        self.phase = Phase.OFF_DUTY
        self._off_after_job = False
        self._decisions.clear()
        self._accepting = None
        self._fix_at = None
        self._shift_at = now + self._break()

    def _break(self) -> float:
        return self._rng.expovariate(1.0 / self._cfg.break_mean_s)

    # -- moving --------------------------------------------------------------------

    async def _send_fix(self, ws: ClientConnection, now: float) -> None:
        here = self._advance(now)
        frame = {
            "type": "location",
            "lat": round(here.lat, 6),
            "lng": round(here.lng, 6),
            "accuracy_m": round(self._rng.uniform(4.0, 25.0), 1),
        }
        await self._send(ws, frame)
        self._stats.fixes += 1
        self._fix_at = now + self._fix_interval()

    def _advance(self, now: float) -> Point:
        """Where the technician is now: driving, patrolling or standing still."""
        dt, self._moved_at = max(0.0, now - self._moved_at), now
        if self._trip is not None:
            self.position = self._trip.position(now)
        elif self.phase is Phase.AVAILABLE and self._patrolling:
            self.position = self._patrol(dt)
        return self.position

    def _patrol(self, dt: float) -> Point:
        """A random walk that turns back at the city limits."""
        self._heading += self._rng.gauss(0.0, 0.5)
        metres = self._cfg.patrol_speed_mps * self._cfg.time_scale * dt
        nxt = self.position.moved(metres, self._heading)
        if not self._cfg.city.contains(nxt):
            self._heading += math.pi
            nxt = self._cfg.city.clamp(nxt)
        return nxt

    def _fix_interval(self) -> float:
        moving = self.phase is Phase.EN_ROUTE or (
            self.phase is Phase.AVAILABLE and self._patrolling
        )
        base = self._cfg.moving_fix_s if moving else self._cfg.parked_fix_s
        return base * self._rng.uniform(0.8, 1.2)


# -- the fleet -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Census:
    """How many technicians are connected, and in which state."""

    connected: int
    available: int
    busy: int
    off_duty: int


class Fleet:
    """All the technicians: enrolled over HTTP, then each on its own websocket."""

    def __init__(self, ws_url: str, config: SimConfig, stats: SimStats, rng: random.Random) -> None:
        self.ws_url = ws_url
        self.config = config
        self.stats = stats
        self.technicians: list[Technician] = []
        self._rng = rng
        self._tasks: list[asyncio.Task[None]] = []

    async def enroll(self, org_client: httpx.AsyncClient, concurrency: int = 16) -> None:
        """Create every worker (``POST /v1/workers``) with the organisation's key."""
        profiles = [random_profile(self.config.city, self._rng) for _ in range(self.config.workers)]
        seeds = [self._rng.getrandbits(64) for _ in profiles]
        gate = asyncio.Semaphore(concurrency)

        async def one(profile: Profile, seed: int) -> Technician:
            async with gate:
                body = {"name": profile.name, "kind": profile.kind, "skills": list(profile.skills)}
                response = await org_client.post("/v1/workers", json=body)
            response.raise_for_status()
            created = response.json()
            rng = random.Random(seed)
            return Technician(
                created["id"], created["token"], profile, self.ws_url, self.config, self.stats, rng
            )

        self.technicians = list(await asyncio.gather(*map(one, profiles, seeds)))

    def start(self) -> None:
        """Every technician connects (spread over ``SimConfig.ramp_s``) and lives."""
        self._tasks = [asyncio.create_task(t.run(), name="technician") for t in self.technicians]

    async def ready(self, timeout_s: float | None = None) -> None:
        """Wait until most of the fleet is on duty (by default, at most the ramp plus 4 s)."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + (self.config.ramp_s + 4.0 if timeout_s is None else timeout_s)
        enough = 0.8 * self.config.on_duty_fraction * len(self.technicians)
        while loop.time() < give_up:
            if self.census().available >= enough:
                return
            await asyncio.sleep(0.1)

    def census(self) -> Census:
        online = [t for t in self.technicians if t.connected]
        return Census(
            connected=len(online),
            available=sum(t.phase is Phase.AVAILABLE for t in online),
            busy=sum(t.phase in BUSY for t in online),
            off_duty=sum(t.phase is Phase.OFF_DUTY for t in online),
        )

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Every phone closes its socket (1000); stragglers are cancelled."""
        for technician in self.technicians:
            technician.stop()
        if not self._tasks:
            return
        _, pending = await asyncio.wait(self._tasks, timeout=timeout_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self._tasks = []
