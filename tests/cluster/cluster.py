"""Real server processes sharing one PostgreSQL database and one Redis.

``ClusterEnv`` creates a fresh database (migrated) and a Redis key prefix and
removes both afterwards. ``Instance`` runs ``fieldcloud serve`` as its own
process on a free loopback port against that environment; ``Phone`` is a
websocket client speaking the technician protocol.

Rules for callers: use ``cluster_env()`` as an async context manager and stop
(or kill) every instance before it exits; PostgreSQL and Redis must answer,
otherwise the tests fail (they never skip).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import ClientConnection, connect

from dispatch.stores.postgres.migrations import migrate
from dispatch.stores.redis.keys import Keys
from tests.services import PG_ADMIN_DSN, REDIS_URL, with_database

ADMIN = "cluster-admin-token"
WAIT_S = 20.0
"""Upper bound for anything to happen; only there so a broken run cannot hang."""


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class ClusterEnv:
    """The shared services of one test: a database and a key prefix."""

    database_url: str
    redis_url: str
    key_prefix: str


@contextlib.asynccontextmanager
async def cluster_env(redis_url: str = REDIS_URL) -> AsyncIterator[ClusterEnv]:
    """A migrated database and a Redis prefix, both removed afterwards."""
    name = f"fieldcloud_test_{secrets.token_hex(4)}"
    try:
        admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL does not answer at {PG_ADMIN_DSN}: {exc!r}", pytrace=False)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = with_database(name)
    env = ClusterEnv(dsn, redis_url, name)
    try:
        await migrate(dsn)
        yield env
    finally:
        admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
        await delete_prefix(redis_url, name)


async def delete_prefix(redis_url: str, prefix: str) -> None:
    """Remove every key under ``prefix`` (the Redis may be gone: then nothing to do)."""
    client = aioredis.Redis.from_url(redis_url, socket_connect_timeout=2)
    try:
        keys = [k async for k in client.scan_iter(match=Keys(prefix).pattern(), count=1000)]
        if keys:
            await client.delete(*keys)
    except (OSError, aioredis.ConnectionError):
        pass
    finally:
        await client.aclose()


class Instance:
    """One ``fieldcloud serve`` process."""

    entry: Sequence[str] = ("mobile_api.cli", "serve")
    """The module (and its arguments) run with ``python -m``."""

    def __init__(self, env: ClusterEnv, name: str, log_dir: Path, **settings: str) -> None:
        self.env = env
        self.extra_env: dict[str, str] = {}
        self.name = name
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/v1/ws/worker"
        self.log_path = log_dir / f"{name}.log"
        self.settings = settings
        self.proc: asyncio.subprocess.Process | None = None

    def environ(self) -> Mapping[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("FIELDCLOUD_")}
        base.pop("DATABASE_URL", None)
        base.pop("REDIS_URL", None)
        return {
            **base,
            "DATABASE_URL": self.env.database_url,
            "REDIS_URL": self.env.redis_url,
            "FIELDCLOUD_KEY_PREFIX": self.env.key_prefix,
            "FIELDCLOUD_ADMIN_TOKEN": ADMIN,
            "PORT": str(self.port),
            **{f"FIELDCLOUD_{k.upper()}": v for k, v in self.settings.items()},
            **self.extra_env,
        }

    async def start(self) -> None:
        """Start the process and wait until it answers ``/readyz``."""
        with self.log_path.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                *self.entry,
                env=dict(self.environ()),
                stdout=log,
                stderr=log,
            )
        async with httpx.AsyncClient(base_url=self.base, timeout=2) as client:
            async with asyncio.timeout(WAIT_S):
                while True:
                    if self.proc.returncode is not None:
                        raise RuntimeError(f"{self.name} exited: {self.log_path.read_text()}")
                    with contextlib.suppress(httpx.TransportError):
                        if (await client.get("/readyz")).status_code == 200:
                            return
                    await asyncio.sleep(0.1)

    def kill9(self) -> None:
        """``kill -9``: no shutdown, no cleanup."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        """Stop gracefully (SIGTERM) and wait; a killed process is just reaped."""
        if self.proc is None:
            return
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(WAIT_S):
            await self.proc.wait()
        self.proc = None

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token or ADMIN}"}
        return httpx.AsyncClient(base_url=self.base, headers=headers, timeout=10)

    async def create_org(self, name: str = "City") -> str:
        async with self.client() as c:
            r = await c.post("/v1/orgs", json={"name": name})
        assert r.status_code == 201, r.text
        key: str = r.json()["api_key"]
        return key

    async def create_worker(self, key: str, name: str, skills: list[str]) -> tuple[str, str]:
        async with self.client(key) as c:
            r = await c.post("/v1/workers", json={"name": name, "skills": skills})
        assert r.status_code == 201, r.text
        body = r.json()
        return body["id"], body["token"]

    async def post_job(self, key: str, lat: float, lng: float, **fields: Any) -> dict[str, Any]:
        async with self.client(key) as c:
            r = await c.post(
                "/v1/jobs", json={"title": "Work order", "lat": lat, "lng": lng, **fields}
            )
        assert r.status_code == 201, r.text
        job: dict[str, Any] = r.json()
        return job

    async def get_job(self, key: str, job_id: str) -> dict[str, Any]:
        async with self.client(key) as c:
            r = await c.get(f"/v1/jobs/{job_id}")
        assert r.status_code == 200, r.text
        job: dict[str, Any] = r.json()
        return job


class FaultyInstance(Instance):
    """``tests.cluster.faulty_serve``: dies by SIGKILL right after committing a notice of
    type ``kill_after``, before delivering anything of that transaction."""

    entry = ("tests.cluster.faulty_serve",)

    def __init__(
        self, env: ClusterEnv, name: str, log_dir: Path, kill_after: str, **settings: str
    ) -> None:
        super().__init__(env, name, log_dir, **settings)
        self.extra_env["FAULT_KILL_AFTER"] = kill_after


class Phone:
    """A technician's websocket, reading frames in order."""

    def __init__(self, ws: ClientConnection, welcome: dict[str, Any]) -> None:
        self.ws = ws
        self.welcome = welcome
        self.last_seq = 0

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(
        cls, url: str, token: str, last_seq: int | None = None
    ) -> AsyncIterator[Phone]:
        query = "" if last_seq is None else f"?last_seq={last_seq}"
        async with connect(
            url + query, additional_headers={"Authorization": f"Bearer {token}"}
        ) as ws:
            welcome = json.loads(await ws.recv())
            assert welcome["type"] == "welcome"
            yield cls(ws, welcome)

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(frame))

    async def recv(self, wait_s: float = WAIT_S) -> dict[str, Any]:
        async with asyncio.timeout(wait_s):
            frame: dict[str, Any] = json.loads(await self.ws.recv())
        if "seq" in frame:
            self.last_seq = frame["seq"]
        return frame

    async def recv_type(self, kind: str, wait_s: float = WAIT_S) -> dict[str, Any]:
        """The next frame of type ``kind``, skipping others."""
        async with asyncio.timeout(wait_s):
            while True:
                frame = await self.recv()
                if frame["type"] == kind:
                    return frame

    async def pending(self) -> list[dict[str, Any]]:
        """Every frame that arrives before the ``pong`` to a ``ping`` sent now.

        Frames are handled in order per socket, so these are the answers to
        everything sent before, and the notices already on their way.
        """
        await self.send({"type": "ping"})
        frames = []
        while (frame := await self.recv())["type"] != "pong":
            frames.append(frame)
        return frames

    async def on_duty(self, lat: float, lng: float) -> None:
        """Go available at a position, and wait until the server has both."""
        await self.send({"type": "status", "status": "available"})
        await self.recv_type("status")
        await self.send({"type": "location", "lat": lat, "lng": lng})
        await self.send({"type": "ping"})
        await self.recv_type("pong")
