"""SIGTERM under load: the stopping instance loses nothing it committed and exits 0."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from mobile_api.server import GRACE_S
from mobile_api.shutdown import LOOPS_GRACE_S
from tests.cluster.cluster import WAIT_S, Instance, cluster_env

pytestmark = [pytest.mark.services, pytest.mark.slow]

LYON = (45.7640, 4.8357)
PHONES = 6
STOP_BOUND_S = GRACE_S + LOOPS_GRACE_S + 5.0
"""A stopping instance's exit, at the latest: both graces and a margin (a bound, not a goal)."""


class Technician:
    """A phone that takes every offer and completes every job at once.

    It connects to ``first``; when that socket closes it reconnects to
    ``then`` with the last ``seq`` it saw, and resends the completion of any
    job whose completion it never saw answered (a resend for a job completed
    already is answered with an error, which it ignores). Every notice it receives is
    kept by ``seq``, and the close code of each socket that ended.
    """

    def __init__(
        self, token: str, first: str, then: str, lat: float, lng: float, assigned: asyncio.Event
    ) -> None:
        self.token = token
        self.on_assigned = assigned
        """Set at each assignment (the test clears it while it waits)."""
        self.urls = (first, then)
        self.position = (lat, lng)
        self.notices: dict[int, dict[str, Any]] = {}
        self.close_codes: list[int | None] = []
        self.unfinished: set[str] = set()
        self.ready = asyncio.Event()
        self.assigned = 0
        self.worker_id = ""

    async def run(self) -> None:
        url = self.urls[0]
        while True:
            query = f"?last_seq={max(self.notices)}" if self.notices else ""
            try:
                async with connect(
                    url + query, additional_headers={"Authorization": f"Bearer {self.token}"}
                ) as ws:
                    with contextlib.suppress(ConnectionClosed):
                        await self._serve(ws)
                self.close_codes.append(ws.close_code)
            except (OSError, InvalidStatus):  # the survivor is busy or the link flaps: again
                await asyncio.sleep(0.1)
            url = self.urls[1]

    async def _serve(self, ws: ClientConnection) -> None:
        welcome = json.loads(await ws.recv())
        assert welcome["type"] == "welcome", welcome
        self.worker_id = welcome["worker_id"]
        if not self.ready.is_set():
            await ws.send(json.dumps({"type": "status", "status": "available"}))
        lat, lng = self.position
        await ws.send(json.dumps({"type": "location", "lat": lat, "lng": lng}))
        for job_id in self.unfinished:
            await self._complete(ws, job_id)
        async for raw in ws:
            frame = json.loads(raw)
            kind = frame["type"]
            if "seq" in frame:
                self.notices[frame["seq"]] = frame
            if kind == "status":
                self.ready.set()
            elif kind == "offer":
                await ws.send(json.dumps({"type": "accept", "offer_id": frame["offer_id"]}))
            elif kind == "assigned":
                self.assigned += 1
                self.on_assigned.set()
                self.unfinished.add(frame["job_id"])
                await self._complete(ws, frame["job_id"])
            elif kind == "progress" and frame["state"] == "completed":
                self.unfinished.discard(frame["job_id"])

    async def _complete(self, ws: ClientConnection, job_id: str) -> None:
        """On site, then completed (resent after a reconnect: an error if it was done)."""
        for state in ("on_site", "completed"):
            await ws.send(json.dumps({"type": "progress", "job_id": job_id, "state": state}))


def position(i: int) -> tuple[float, float]:
    """Where phone ``i`` stands: 110 m north of the previous one."""
    return LYON[0] + 0.001 * (i + 1), LYON[1]


async def post_jobs(instances: list[Instance], key: str, stop: asyncio.Event) -> list[str]:
    """Post a job every 50 ms beside each phone in turn, to each live instance in turn;
    the ids of those stored."""
    posted: list[str] = []
    clients = [inst.client(key) for inst in instances]
    try:
        n = 0
        while not stop.is_set():
            n += 1
            inst = n % len(instances)
            proc = instances[inst].proc
            if proc is None or proc.returncode is not None:
                inst = len(instances) - 1  # the survivor
            with contextlib.suppress(httpx.TransportError):
                lat, lng = position(n % PHONES)
                r = await clients[inst].post(
                    "/v1/jobs", json={"title": f"order {n}", "lat": lat, "lng": lng}
                )
                if r.status_code == 201:
                    posted.append(r.json()["id"])
            await asyncio.sleep(0.05)
    finally:
        for client in clients:
            await client.aclose()
    return posted


async def settled(db: asyncpg.Connection, jobs: list[str]) -> None:
    """Wait until the outbox is empty, no job is open or assigned, and no worker busy."""
    async with asyncio.timeout(WAIT_S):
        while True:
            outbox = await db.fetchval("SELECT count(*) FROM outbox")
            unsettled = await db.fetchval(
                "SELECT count(*) FROM jobs WHERE id = ANY($1::text[])"
                " AND state NOT IN ('completed', 'unfilled')",
                jobs,
            )
            busy = await db.fetchval("SELECT count(*) FROM workers WHERE availability = 'busy'")
            if outbox == 0 and unsettled == 0 and busy == 0:
                return
            await asyncio.sleep(0.2)


async def test_sigterm_under_load_loses_no_notice_and_leaves_no_worker_busy(
    tmp_path: Path,
) -> None:
    """SIGTERM to an instance holding every phone while jobs are posted and accepted: it
    exits 0 within its graces, its sockets close with 1012, and the phones, reconnected to
    the survivor with ``last_seq``, have every notice of every offer committed, in a log
    with no gap, and end with no worker busy and no effect left in the outbox."""
    async with cluster_env() as env:
        settings = {
            "wave_size": "2",
            "offer_timeout_s": "1",
            "radii_m": "1000,3000",
            "log_size": "4096",
        }
        a = Instance(env, "a", tmp_path, **settings)
        b = Instance(env, "b", tmp_path, **settings)
        techs: list[Technician] = []
        assigned = asyncio.Event()
        tasks: list[asyncio.Task[None]] = []
        db = await asyncpg.connect(env.database_url)
        try:
            await asyncio.gather(a.start(), b.start())
            key = await b.create_org()
            for i in range(PHONES):
                _, token = await b.create_worker(key, f"tech {i}", [])
                techs.append(Technician(token, a.ws_url, b.ws_url, *position(i), assigned))
            tasks = [asyncio.create_task(t.run()) for t in techs]
            async with asyncio.timeout(WAIT_S):
                await asyncio.gather(*(t.ready.wait() for t in techs))
            stop_posting = asyncio.Event()
            poster = asyncio.create_task(post_jobs([a, b], key, stop_posting))
            async with asyncio.timeout(WAIT_S):  # load: every phone is working on A
                while min(t.assigned for t in techs) < 2:
                    assigned.clear()
                    await assigned.wait()

            assert a.proc is not None
            sent = time.monotonic()
            a.proc.terminate()
            async with asyncio.timeout(STOP_BOUND_S):
                code = await a.proc.wait()
            stopped_after = time.monotonic() - sent
            assert code == 0, a.log_path.read_text()
            assert stopped_after < STOP_BOUND_S
            at_stop = [t.assigned for t in techs]
            async with asyncio.timeout(WAIT_S):  # load goes on: every phone works on B
                while any(t.assigned <= n for t, n in zip(techs, at_stop, strict=True)):
                    assigned.clear()
                    await assigned.wait()
            stop_posting.set()
            jobs = await poster
            await settled(db, jobs)

            for tech in techs:
                assert tech.close_codes[:1] == [1012]
            offers = await db.fetch("SELECT id, worker_id, state FROM offers")
            by_worker: dict[str, list[asyncpg.Record]] = {}
            for row in offers:
                by_worker.setdefault(row["worker_id"], []).append(row)
            for tech in techs:
                seqs = sorted(tech.notices)
                assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "a gap in the notices"
                received = {(f["type"], f.get("offer_id")) for f in tech.notices.values()}
                for row in by_worker[tech.worker_id]:
                    assert ("offer", row["id"]) in received
                    closing = "assigned" if row["state"] == "accepted" else "offer_closed"
                    assert (closing, row["id"]) in received, row["state"]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            tasks = []
            for tech in techs:  # and the log holds nothing more than what the phone got
                async with connect(
                    f"{b.ws_url}?last_seq={max(tech.notices)}",
                    additional_headers={"Authorization": f"Bearer {tech.token}"},
                ) as ws:
                    assert json.loads(await ws.recv())["type"] == "welcome"
                    await ws.send(json.dumps({"type": "ping"}))
                    assert json.loads(await ws.recv())["type"] == "pong"
            assert "Cancel" not in a.log_path.read_text()  # no handler cut off at the grace
            async with httpx.AsyncClient(base_url=b.base, timeout=5) as client:
                scraped = (await client.get("/metrics")).text
            assert "\nfieldcloud_outbox_backlog 0.0\n" in scraped
            accepted = 'fieldcloud_offers_total{outcome="accepted"} '
            assert float(scraped.split(accepted)[1].split()[0]) >= PHONES  # B assigned jobs too
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await db.close()
            await asyncio.gather(a.stop(), b.stop())
