"""Two real server processes on one PostgreSQL and one Redis act as one system."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from tests.cluster.cluster import Instance, Phone, cluster_env

pytestmark = [pytest.mark.services, pytest.mark.slow]

LYON = (45.7640, 4.8357)


def near(i: int, step: float = 0.001) -> tuple[float, float]:
    """A point ``i`` steps north of the job site (about 111 m each)."""
    return LYON[0] + step * (i + 1), LYON[1]


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[Instance, Instance]]:
    async with cluster_env() as env:
        a = Instance(env, "a", tmp_path, wave_size="40", offer_timeout_s="30")
        b = Instance(env, "b", tmp_path, wave_size="40", offer_timeout_s="30")
        try:
            await asyncio.gather(a.start(), b.start())
            yield a, b
        finally:
            await asyncio.gather(a.stop(), b.stop())


async def test_a_phone_on_one_instance_gets_the_offer_for_a_job_posted_on_the_other(
    pair: tuple[Instance, Instance],
) -> None:
    """A technician connected to A receives, within a second, the offer for a job posted to B."""
    a, b = pair
    key = await a.create_org()
    _, token = await a.create_worker(key, "Ann", ["electrical"])
    async with Phone.connect(a.ws_url, token) as phone:
        await phone.on_duty(*near(0))
        started = time.monotonic()
        job = await b.post_job(key, *LYON, skills=["electrical"])
        offer = await phone.recv_type("offer", wait_s=1.0)
        elapsed = time.monotonic() - started
    assert offer["job"]["id"] == job["id"]
    assert elapsed < 1.0


async def test_forty_accepts_split_across_instances_have_exactly_one_winner(
    pair: tuple[Instance, Instance],
) -> None:
    """Forty technicians on two instances accept one job at once: one wins, 39 are told taken."""
    a, b = pair
    key = await a.create_org()
    async with AsyncExitStack() as stack:
        phones: list[Phone] = []
        for i in range(40):
            inst = a if i % 2 == 0 else b
            _, token = await inst.create_worker(key, f"tech-{i}", [])
            phone = await stack.enter_async_context(Phone.connect(inst.ws_url, token))
            await phone.on_duty(*near(i, 0.0003))
            phones.append(phone)
        job = await b.post_job(key, *LYON)
        offers = await asyncio.gather(*(p.recv_type("offer") for p in phones))
        assert {o["job"]["id"] for o in offers} == {job["id"]}
        await asyncio.gather(
            *(
                p.send({"type": "accept", "offer_id": o["offer_id"]})
                for p, o in zip(phones, offers, strict=True)
            )
        )

        async def outcome(phone: Phone) -> str:
            while True:
                frame = await phone.recv()
                if frame["type"] == "assigned":
                    return "won"
                if frame["type"] == "offer_closed":
                    assert frame["reason"] == "taken"
                    return "taken"
                if frame["type"] == "error":
                    assert frame["code"] == "offer_closed"
                    assert frame["reason"] == "taken"

        results = await asyncio.gather(*(outcome(p) for p in phones))
    assert results.count("won") == 1
    assert results.count("taken") == 39
    winner = phones[results.index("won")].welcome["worker_id"]
    stored = await a.get_job(key, job["id"])
    assert stored["state"] == "assigned"
    assert stored["worker_id"] == winner


async def test_connecting_on_another_instance_closes_the_older_socket(tmp_path: Path) -> None:
    """When a worker connects to B while an older socket is open on A, A closes it with 4001."""
    async with cluster_env() as env:
        a = Instance(env, "a", tmp_path, presence_refresh_s="0.2")
        b = Instance(env, "b", tmp_path, presence_refresh_s="0.2")
        try:
            await asyncio.gather(a.start(), b.start())
            key = await a.create_org()
            _, token = await a.create_worker(key, "Ann", [])
            async with Phone.connect(a.ws_url, token) as old:
                await old.send({"type": "ping"})
                await old.recv_type("pong")
                async with Phone.connect(b.ws_url, token) as new:
                    with pytest.raises(ConnectionClosed) as closed:
                        await old.recv()
                    assert closed.value.rcvd is not None
                    assert closed.value.rcvd.code == 4001
                    await new.send({"type": "ping"})
                    assert (await new.recv_type("pong"))["type"] == "pong"
        finally:
            await asyncio.gather(a.stop(), b.stop())


async def test_a_worker_connected_to_one_instance_is_connected_as_seen_from_the_other(
    pair: tuple[Instance, Instance],
) -> None:
    """GET /v1/workers/{id} on B says connected while the phone is on A, and not once it left."""
    a, b = pair
    key = await a.create_org()
    worker_id, token = await a.create_worker(key, "Ann", [])

    async def connected_on_b(want: bool) -> None:
        async with b.client(key) as c, asyncio.timeout(20.0):
            while True:
                r = await c.get(f"/v1/workers/{worker_id}")
                assert r.status_code == 200, r.text
                if r.json()["connected"] is want:
                    return
                await asyncio.sleep(0.05)

    await connected_on_b(False)
    async with Phone.connect(a.ws_url, token):
        await connected_on_b(True)  # once A's presence claim is in Redis
    await connected_on_b(False)
