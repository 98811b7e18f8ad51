"""The edge tests' live server and phones: a real uvicorn server on a loopback port.

``running_server(...)`` starts ``create_app`` under ``build_server`` on a free
127.0.0.1 port (a socket bound to port 0 handed to ``server.serve``) and
yields a ``LiveServer`` with the base URLs and helpers for the HTTP API and
for phones; the fixtures ``start_server`` and ``server`` (``conftest.py``)
open them for a test. ``DEFAULT_POLICY`` has long offer deadlines, so
nothing expires unless a test asks for it; a test about deadlines hands the
server a ``ManualClock`` and moves it past them instead of waiting.

Phones are real ``websockets`` clients. ``Phone.pending()`` is the quiet
check: it sends an application ``ping`` and returns every frame that arrives
before the ``pong`` — the frames that were already on their way. No sleeps.

Everything a test opens (phones, the HTTP client, servers) is closed at
teardown, phones first, so no warning (turned into errors) is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from dispatch.config import DispatchConfig
from dispatch.service import Clock
from mobile_api.app import FieldcloudApp, create_app
from mobile_api.runtime import Runtime
from mobile_api.server import build_server
from mobile_api.settings import Settings

ADMIN_TOKEN = "test-admin-token"
WAIT_S = 10.0
"""Upper bound of every wait: only there so that a broken server cannot hang a test."""

PARIS = (48.8566, 2.3522)
EARTH_RADIUS_M = 6_371_008.8

Frame = dict[str, Any]


def haversine_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance in metres (the tests' own oracle, independent of ``geo``)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(min(1.0, a)))


def offset(
    origin: tuple[float, float], distance_m: float, bearing_deg: float
) -> tuple[float, float]:
    """The point ``distance_m`` from ``origin`` towards ``bearing_deg`` (small distances)."""
    lat, lng = origin
    b = math.radians(bearing_deg)
    dlat = distance_m * math.cos(b) / EARTH_RADIUS_M
    dlng = distance_m * math.sin(b) / (EARTH_RADIUS_M * math.cos(math.radians(lat)))
    return lat + math.degrees(dlat), lng + math.degrees(dlng)


@dataclass(frozen=True)
class Org:
    """An organisation and the headers that authenticate as it."""

    id: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@dataclass(frozen=True)
class WorkerCred:
    """A worker created over HTTP: its id and device token."""

    id: str
    token: str
    name: str


@dataclass(frozen=True)
class DispatcherCred:
    """A dispatcher created over HTTP: id, token, and the headers that authenticate as them."""

    id: str
    token: str
    name: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class Phone:
    """A technician's phone: one websocket and a buffer of frames read ahead."""

    def __init__(self, ws: ClientConnection, welcome: Frame) -> None:
        self.ws = ws
        self.welcome = welcome
        self.worker_id: str = welcome["worker_id"]
        self._buffer: deque[Frame] = deque()

    async def send(self, message: Frame) -> None:
        """Send one JSON text frame."""
        await self.ws.send(json.dumps(message))

    async def send_raw(self, data: str | bytes) -> None:
        """Send a text (``str``) or binary (``bytes``) frame as is."""
        await self.ws.send(data)

    async def _read(self) -> Frame:
        raw = await self.ws.recv()
        assert isinstance(raw, str), f"server sent a binary frame: {raw!r}"
        frame = json.loads(raw)
        assert isinstance(frame, dict)
        return frame

    # The timeout is only a guard against hanging, never an assertion about speed.
    async def recv(self, timeout: float = WAIT_S) -> Frame:  # noqa: ASYNC109
        """The next frame (read ahead ones first)."""
        if self._buffer:
            return self._buffer.popleft()
        async with asyncio.timeout(timeout):
            return await self._read()

    async def recv_type(self, kind: str, timeout: float = WAIT_S) -> Frame:  # noqa: ASYNC109
        """The first frame of type ``kind``; frames of other types stay buffered, in order."""
        for frame in self._buffer:
            if frame["type"] == kind:
                self._buffer.remove(frame)
                return frame
        async with asyncio.timeout(timeout):
            while True:
                frame = await self._read()
                if frame["type"] == kind:
                    return frame
                self._buffer.append(frame)

    async def pending(self) -> list[Frame]:
        """Every frame that was on its way to this phone (buffered ones included).

        Sends an application ``ping`` and reads up to the ``pong``, twice. The server
        answers a ping from its read loop while notices go through a writer task; a
        notice queued before the first ping was handled is written before the second
        pong (the writer runs before the second ping can even arrive), so the frames
        returned are exactly those pending when this was called.
        """
        frames = list(self._buffer)
        self._buffer.clear()
        async with asyncio.timeout(WAIT_S):
            for _ in range(2):
                await self.send({"type": "ping"})
                while True:
                    frame = await self._read()
                    if frame["type"] == "pong":
                        break
                    frames.append(frame)
        return frames

    async def assert_quiet(self) -> None:
        """Assert that nothing at all is waiting for this phone."""
        frames = await self.pending()
        assert frames == [], f"{self.worker_id} got unexpected frames: {frames}"

    async def close_code(self) -> int:
        """Read until the server closes the socket; the close code it sent."""
        try:
            async with asyncio.timeout(WAIT_S):
                while True:
                    await self.ws.recv()
        except ConnectionClosed as exc:
            if exc.rcvd is None:
                raise AssertionError("the server closed without a close frame") from exc
            return exc.rcvd.code

    async def request(self, message: Frame, kind: str) -> Frame:
        """Send ``message`` and return the first frame of type ``kind`` that follows."""
        await self.send(message)
        return await self.recv_type(kind)

    async def close(self) -> None:
        await self.ws.close()


@dataclass
class LiveServer:
    """A running server: URLs, an HTTP client, and helpers for orgs, workers, jobs, phones."""

    settings: Settings
    base_url: str
    ws_url: str
    http: httpx.AsyncClient
    app: FieldcloudApp
    phones: list[Phone] = field(default_factory=list)

    @property
    def runtime(self) -> Runtime:
        """The server's live objects (sessions, presence), for checks from inside."""
        runtime: Runtime = self.app.state.runtime
        return runtime

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    async def create_org(self, name: str = "Plant") -> Org:
        r = await self.http.post("/v1/orgs", json={"name": name}, headers=self.admin_headers)
        assert r.status_code == 201, r.text
        body = r.json()
        return Org(body["id"], body["api_key"])

    async def create_worker(
        self, org: Org, name: str = "Tech", skills: Iterable[str] = ()
    ) -> WorkerCred:
        r = await self.http.post(
            "/v1/workers", json={"name": name, "skills": list(skills)}, headers=org.headers
        )
        assert r.status_code == 201, r.text
        body = r.json()
        return WorkerCred(body["id"], body["token"], name)

    async def create_dispatcher(self, org: Org, name: str = "Dee") -> DispatcherCred:
        r = await self.http.post("/v1/dispatchers", json={"name": name}, headers=org.headers)
        assert r.status_code == 201, r.text
        body = r.json()
        return DispatcherCred(body["id"], body["token"], name)

    async def post_job(
        self,
        org: Org,
        lat: float,
        lng: float,
        skills: Iterable[str] = (),
        title: str = "Fix lamp",
    ) -> Frame:
        r = await self.http.post(
            "/v1/jobs",
            json={"title": title, "lat": lat, "lng": lng, "skills": list(skills)},
            headers=org.headers,
        )
        assert r.status_code == 201, r.text
        body: Frame = r.json()
        return body

    async def get_job(self, org: Org, job_id: str) -> Frame:
        r = await self.http.get(f"/v1/jobs/{job_id}", headers=org.headers)
        assert r.status_code == 200, r.text
        body: Frame = r.json()
        return body

    async def get_worker(self, org: Org, worker_id: str) -> Frame:
        r = await self.http.get(f"/v1/workers/{worker_id}", headers=org.headers)
        assert r.status_code == 200, r.text
        body: Frame = r.json()
        return body

    async def cancel_job(self, org: Org, job_id: str, reason: str = "") -> Frame:
        r = await self.http.post(
            f"/v1/jobs/{job_id}/cancel", json={"reason": reason}, headers=org.headers
        )
        assert r.status_code == 200, r.text
        body: Frame = r.json()
        return body

    def ws_connect(self, token: str | None, last_seq: int | str | None = None) -> connect:
        """A ``websockets`` connect call for the worker endpoint (not yet awaited)."""
        url = self.ws_url + "/v1/ws/worker"
        if last_seq is not None:
            url += f"?last_seq={last_seq}"
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        return connect(url, additional_headers=headers, open_timeout=WAIT_S, close_timeout=WAIT_S)

    async def connect_worker(self, token: str, last_seq: int | str | None = None) -> Phone:
        """Open a phone socket and read its ``welcome``; closed at teardown."""
        ws = await self.ws_connect(token, last_seq)
        try:
            async with asyncio.timeout(WAIT_S):
                raw = await ws.recv()
        except BaseException:
            await ws.close()
            raise
        welcome = json.loads(raw)
        assert welcome["type"] == "welcome", welcome
        phone = Phone(ws, welcome)
        self.phones.append(phone)
        return phone

    async def on_duty(
        self,
        org: Org,
        name: str,
        skills: Iterable[str],
        position: tuple[float, float],
        *,
        available: bool = True,
    ) -> Phone:
        """A connected worker who reported ``position`` (and went available if asked)."""
        cred = await self.create_worker(org, name, skills)
        phone = await self.connect_worker(cred.token)
        if available:
            reply = await phone.request({"type": "status", "status": "available"}, "status")
            assert reply["status"] == "available"
        await phone.send({"type": "location", "lat": position[0], "lng": position[1]})
        # The ping is answered after the location was handled: the fix is in.
        assert await phone.pending() == []
        return phone

    async def close_phones(self) -> None:
        phones, self.phones = self.phones, []
        await asyncio.gather(*(p.close() for p in phones))


class ServerErrors(logging.Handler):
    """Collects what the server logs at ERROR and above while it runs."""

    LOGGERS = ("uvicorn.error", "fieldcloud")
    NOISE = frozenset({"ASGI callable returned without completing handshake."})
    """uvicorn's websockets-sansio logs this after every refused upgrade (it checks for an
    accepted handshake, not for the denial response it sent): not the app's error."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message not in self.NOISE:
            self.messages.append(self.format(record))

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        for name in self.LOGGERS:
            logging.getLogger(name).addHandler(self)
        try:
            yield
        finally:
            for name in self.LOGGERS:
                logging.getLogger(name).removeHandler(self)


StartServer = Callable[..., Awaitable[LiveServer]]


class ManualClock:
    """The service's clock, moved only by the test: deadlines pass when it says so.

    It starts at the real time (fixes without a ``ts`` are stamped with it, so
    they are fresh). The server's ticker still runs every ``tick_s`` of real
    time and finds a deadline due once the clock has been moved past it.
    """

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` on."""
        self.now += seconds


DEFAULT_POLICY = DispatchConfig(wave_size=5, offer_timeout_s=600.0)
"""Offers that never expire within a test unless the test shortens the deadline."""


@contextlib.asynccontextmanager
async def running_server(
    dispatch: DispatchConfig = DEFAULT_POLICY,
    *,
    tick_s: float = 0.05,
    max_frame_bytes: int = 16_384,
    access_log: bool = False,
    log_level: str = "warning",
    clock: Clock = time.time,
    extra: dict[str, Any] | None = None,
) -> AsyncIterator[LiveServer]:
    """Serve ``create_app`` on a free loopback port until the block exits.

    ``extra`` adds ``Settings`` fields (a geocoder's, say)."""
    settings = Settings(
        **(extra or {}),
        admin_token=ADMIN_TOKEN,
        port=0,
        dispatch=dispatch,
        tick_s=tick_s,
        max_frame_bytes=max_frame_bytes,
        access_log=access_log,
    )
    app = create_app(settings, clock=clock)
    server: uvicorn.Server = build_server(app, settings, log_level=log_level)
    errors = ServerErrors()
    with errors.watching(), socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        task = asyncio.create_task(server.serve(sockets=[sock]), name="uvicorn")
        try:
            async with asyncio.timeout(WAIT_S):
                while not server.started:
                    if task.done():
                        task.result()
                        raise AssertionError("uvicorn stopped before it started")
                    await asyncio.sleep(0.01)
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(
                base_url=base,
                timeout=WAIT_S,
                # A fresh connection per request: on this loopback a reused one pays a
                # 40 ms delayed-ACK stall per request, which only slows the suite down.
                limits=httpx.Limits(max_keepalive_connections=0),
            ) as http:
                live = LiveServer(settings, base, f"ws://127.0.0.1:{port}", http, app)
                try:
                    yield live
                finally:
                    await live.close_phones()
        finally:
            server.should_exit = True
            async with asyncio.timeout(WAIT_S):
                await task
    # Exceptions the server swallowed (a 500, a 1011, a failing ticker) fail the test.
    assert errors.messages == [], f"the server logged errors: {errors.messages}"


async def pending_all(phones: Sequence[Phone]) -> list[list[Frame]]:
    """``Phone.pending()`` of every phone, concurrently."""
    return list(await asyncio.gather(*(p.pending() for p in phones)))


def types_of(frames: Iterable[Frame]) -> list[str]:
    return [f["type"] for f in frames]
