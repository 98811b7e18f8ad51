"""A person driving a phone by hand in the demo gets a work order of their own and wins it."""

from __future__ import annotations

import asyncio
import io
import json
import re
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from mobile_api.demo.city import City, Place, Point
from mobile_api.demo.run import simulate
from mobile_api.demo.simulator import SimConfig
from mobile_api.settings import Settings
from tests.mobile_api.live import WAIT_S

SQUARE = Point(45.7640, 4.8357)
TINY = City(
    name="Place Bellecour",
    south=SQUARE.lat - 0.004,
    west=SQUARE.lng - 0.006,
    north=SQUARE.lat + 0.004,
    east=SQUARE.lng + 0.006,
    depots=(Place("Depot", SQUARE),),
    hot_spots=(Place("Square", SQUARE, 1.0, 200.0), Place("Square", SQUARE, 1.0, 200.0)),
)
"""A town under a kilometre across: every simulated technician is within the first wave's reach."""


class Watched(io.StringIO):
    """Demo output that wakes a waiter when a pattern shows up."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Event()

    def write(self, text: str) -> int:
        n = super().write(text)
        self.changed.set()
        return n

    async def wait_for(self, pattern: str) -> re.Match[str]:
        async with asyncio.timeout(WAIT_S):
            while (found := re.search(pattern, self.getvalue())) is None:
                self.changed.clear()
                await self.changed.wait()
        return found


async def recv_until(ws: ClientConnection, check: Any) -> dict[str, Any]:
    """The first frame for which ``check(frame)`` holds."""
    async with asyncio.timeout(WAIT_S):
        while True:
            frame: dict[str, Any] = json.loads(await ws.recv())
            if check(frame):
                return frame


async def test_the_fleet_leaves_the_hand_driven_phone_its_work_order() -> None:
    """Eager simulated technicians all around decline the job posted for the hand-driven phone,
    which accepts it last and gets it."""
    config = SimConfig(
        workers=12,
        jobs_per_s=0.05,
        seed=11,
        city=TINY,
        accept_probability=1.0,
        accept_delay_s=(0.05, 0.1),
        decline_delay_s=(0.05, 0.1),
        on_duty_fraction=1.0,
        shift_mean_s=3600.0,
        ramp_s=0.2,
    )
    out = Watched()
    demo = asyncio.create_task(
        simulate(
            Settings(admin_token="demo-test-admin", port=0),
            config,
            duration_s=WAIT_S * 2,
            out=out,
            handle_signals=False,
            report_every_s=1.0,
        )
    )
    try:
        banner = await out.wait_for(r"--url (\S+) --token (fcw_\S+)")
        url, token = banner.groups()
        key = (await out.wait_for(r"org API key: (fck_\S+)")).group(1)
        base = url.replace("ws://", "http://").removesuffix("/v1/ws/worker")
        async with (
            connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as ws,
            httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}) as http,
        ):
            me = (await recv_until(ws, lambda f: f["type"] == "welcome"))["worker_id"]
            await ws.send(json.dumps({"type": "status", "status": "available"}))
            await ws.send(json.dumps({"type": "location", "lat": SQUARE.lat, "lng": SQUARE.lng}))
            offer = await recv_until(
                ws, lambda f: f["type"] == "offer" and "for You" in f["job"]["title"]
            )
            job_id = offer["job"]["id"]
            said = await out.wait_for(rf"work order for (.*): {job_id}")  # and for whom
            assert said.group(1) == "You (hand-driven)"

            # Everyone else offered this job in wave 1 answers (declines) before we do.
            async with asyncio.timeout(WAIT_S):
                while True:
                    job = (await http.get(f"/v1/jobs/{job_id}")).json()
                    offered = next(e for e in job["history"] if e["kind"] == "wave")["data"]
                    others = [w for w in offered["offered"] if w != me]
                    declined = [e for e in job["history"] if e["kind"] == "declined"]
                    if len(declined) == len(others):
                        break
                    await asyncio.sleep(0.05)
            assert len(others) >= 1, "no simulated technician was offered the job"

            await ws.send(json.dumps({"type": "accept", "offer_id": offer["offer_id"]}))
            won = await recv_until(ws, lambda f: f["type"] in ("assigned", "error"))
            assert won == {**won, "type": "assigned", "job_id": job_id}
            job = (await http.get(f"/v1/jobs/{job_id}")).json()
            assert (job["state"], job["worker_id"]) == ("assigned", me)
    finally:
        demo.cancel()
        await asyncio.gather(demo, return_exceptions=True)
