"""Failures: an instance killed mid-offer, Redis gone and back, PostgreSQL cut off and back."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dispatch.service import OPEN_JOBS_RECHECK_S
from tests.cluster.cluster import (
    WAIT_S,
    ClusterEnv,
    FaultyInstance,
    Instance,
    Phone,
    cluster_env,
    free_port,
)
from tests.cluster.link import Link

pytestmark = pytest.mark.services

LYON = (45.7640, 4.8357)


async def wait_status(inst: Instance, path: str, status: int) -> None:
    """Poll ``path`` until it answers ``status`` (bounded by WAIT_S)."""
    async with httpx.AsyncClient(base_url=inst.base, timeout=2) as client:
        async with asyncio.timeout(WAIT_S):
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(path)).status_code == status:
                        return
                await asyncio.sleep(0.1)


@pytest.mark.slow
async def test_killing_the_socket_holder_loses_neither_the_job_nor_a_notice(
    tmp_path: Path,
) -> None:
    """kill -9 of the instance holding a phone: the wave escalates on the survivor and the
    phone, reconnected there, receives every notice it missed, in order."""
    async with cluster_env() as env:
        settings = {"wave_size": "1", "offer_timeout_s": "1.5", "radii_m": "1000,5000"}
        a = Instance(env, "a", tmp_path, **settings)
        b = Instance(env, "b", tmp_path, **settings)
        try:
            await asyncio.gather(a.start(), b.start())
            key = await a.create_org()
            _, near_token = await a.create_worker(key, "near", [])
            _, far_token = await b.create_worker(key, "far", [])
            async with Phone.connect(b.ws_url, far_token) as far:
                await far.on_duty(LYON[0] + 0.027, LYON[1])  # ~3 km: wave 2 only
                async with Phone.connect(a.ws_url, near_token) as near:
                    await near.on_duty(LYON[0] + 0.001, LYON[1])  # ~110 m: wave 1
                    job = await b.post_job(key, *LYON)
                    offer = await near.recv_type("offer")
                    assert offer["job"]["id"] == job["id"]
                    a.kill9()
                    with contextlib.suppress(Exception):
                        await near.recv(wait_s=WAIT_S)  # the socket dies with A
                second = await far.recv_type("offer")
                assert second["job"]["id"] == job["id"]
                assert second["wave"] == 2
                async with Phone.connect(b.ws_url, near_token, last_seq=offer["seq"]) as back:
                    missed = await back.recv()
                assert missed["type"] == "offer_closed"
                assert missed["offer_id"] == offer["offer_id"]
                assert missed["reason"] == "expired"
                assert missed["seq"] == offer["seq"] + 1
                async with Phone.connect(b.ws_url, near_token, last_seq=0) as again:
                    replayed = [await again.recv(), await again.recv()]
                assert [f["seq"] for f in replayed] == [offer["seq"], offer["seq"] + 1]
                assert [f["type"] for f in replayed] == ["offer", "offer_closed"]
                await far.send({"type": "accept", "offer_id": second["offer_id"]})
                assigned = await far.recv_type("assigned")
            assert assigned["job_id"] == job["id"]
            stored = await b.get_job(key, job["id"])
            assert stored["state"] == "assigned"
            assert [e["kind"] for e in stored["history"]] == [
                "created",
                "wave",
                "expired",
                "wave",
                "assigned",
            ]
        finally:
            await asyncio.gather(a.stop(), b.stop())


@contextlib.asynccontextmanager
async def offered(
    inst: Instance,
) -> AsyncIterator[tuple[str, Phone, dict[str, Any], dict[str, Any]]]:
    """An organisation (its key), a phone on duty ~110 m from LYON, a job posted at LYON and
    the phone's offer for it; the phone stays connected inside the block."""
    key = await inst.create_org()
    _, token = await inst.create_worker(key, "Ann", [])
    async with Phone.connect(inst.ws_url, token) as phone:
        await phone.on_duty(LYON[0] + 0.001, LYON[1])
        job = await inst.post_job(key, *LYON)
        offer = await phone.recv_type("offer")
        assert offer["job"]["id"] == job["id"]
        yield key, phone, job, offer


async def accept_retrying(phone: Phone, offer_id: str) -> dict[str, Any]:
    """Accept as a phone does after an outage: resend while told ``unavailable``.

    Accept is idempotent, so a resend after a lost answer is answered
    ``assigned`` again (docs/protocol.md).
    """
    async with asyncio.timeout(WAIT_S):
        while True:
            await phone.send({"type": "accept", "offer_id": offer_id})
            while True:
                frame = await phone.recv()
                if frame["type"] == "assigned":
                    return frame
                if frame["type"] == "error":
                    assert frame["code"] == "unavailable", frame
                    break
            await asyncio.sleep(0.2)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[int, list[subprocess.Popen[bytes]]]]:
    """A Redis server of the test's own on a spare port (restartable); stopped afterwards."""
    exe = shutil.which("redis-server")
    assert exe is not None, "redis-server is not installed"
    port = free_port()
    procs: list[subprocess.Popen[bytes]] = []
    yield port, procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def start_redis(port: int, procs: list[subprocess.Popen[bytes]], log: Path) -> None:
    exe = shutil.which("redis-server")
    assert exe is not None
    args = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    with log.open("ab") as out:
        procs.append(subprocess.Popen(args, stdout=out, stderr=out))


@pytest.fixture
async def redis_instance(
    tmp_path: Path, own_redis: tuple[int, list[subprocess.Popen[bytes]]]
) -> AsyncIterator[tuple[Instance, int, list[subprocess.Popen[bytes]]]]:
    port, procs = own_redis
    start_redis(port, procs, tmp_path / "redis.log")
    await asyncio.sleep(0.3)
    async with cluster_env(redis_url=f"redis://127.0.0.1:{port}/0") as env:
        inst = Instance(env, "a", tmp_path, offer_timeout_s="30")
        try:
            await inst.start()
            yield inst, port, procs
        finally:
            await inst.stop()


@pytest.mark.slow
async def test_redis_outage_answers_503_then_recovers_by_itself_without_losing_a_job(
    tmp_path: Path,
    redis_instance: tuple[Instance, int, list[subprocess.Popen[bytes]]],
) -> None:
    """While Redis is down the service answers 503 where nothing was stored, 201 for a job it
    stored, and keeps its sockets; when Redis is back it recovers by itself, and every job —
    also the one posted during the outage — is dispatched."""
    inst, port, procs = redis_instance
    async with offered(inst) as (key, phone, before, first):
        procs[-1].kill()
        procs[-1].wait()
        await wait_status(inst, "/readyz", 503)
        await phone.send({"type": "location", "lat": LYON[0], "lng": LYON[1]})
        error = await phone.recv_type("error")
        assert error["code"] == "unavailable"
        async with inst.client(key) as c:
            during = await c.post(
                "/v1/jobs", json={"title": "During", "lat": LYON[0], "lng": LYON[1]}
            )
        assert during.status_code == 201, "the job is stored: the answer says so"

        start_redis(port, procs, tmp_path / "redis.log")
        await wait_status(inst, "/readyz", 200)
        # Redis came back empty: the phone's next fix puts it on the map again.
        await phone.send({"type": "location", "lat": LYON[0] + 0.001, "lng": LYON[1]})
        assigned = await accept_retrying(phone, first["offer_id"])
        assert assigned["job_id"] == before["id"]

    stored = await inst.get_job(key, before["id"])
    assert stored["state"] == "assigned"
    # Stored during the outage with its first wave due: a ticker sends it
    # once Redis answers again (its retries back off, so allow them time).
    async with asyncio.timeout(WAIT_S):
        while True:  # another process: poll, bounded by the timeout
            kept = await inst.get_job(key, during.json()["id"])
            if kept["wave"] >= 1:
                break
            await asyncio.sleep(0.1)
    assert kept["state"] in ("open", "unfilled")


async def test_a_server_that_cannot_reach_redis_at_start_up_exits_with_a_clear_message(
    tmp_path: Path,
) -> None:
    """Started with a Redis that does not answer, ``serve`` exits 1 naming Redis and its address."""
    async with cluster_env() as env:
        dead = f"redis://127.0.0.1:{free_port()}/0"
        inst = Instance(ClusterEnv(env.database_url, dead, env.key_prefix), "dead", tmp_path)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "mobile_api.cli",
            "serve",
            env=dict(inst.environ()),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(WAIT_S):
            _, err = await proc.communicate()
    assert proc.returncode == 1
    message = err.decode()
    assert "cannot start" in message
    assert "Redis" in message
    assert dead.removesuffix("/0") in message


@pytest.mark.slow
async def test_postgres_outage_answers_503_keeps_sockets_and_recovers_by_itself(
    tmp_path: Path,
) -> None:
    """PostgreSQL gone for one instance (its link cut): job calls answer 503 with a JSON
    body, the phone's socket stays open, its fixes are still taken (Redis) and an accept
    is told ``unavailable``; once the link is back the instance recovers by itself and
    the resent accept wins the job."""
    async with cluster_env() as env, Link("127.0.0.1", 5432) as link:
        through_link = env.database_url.replace(":5432/", f":{link.port}/")
        inst = Instance(ClusterEnv(through_link, env.redis_url, env.key_prefix), "a", tmp_path)
        try:
            await inst.start()
            async with offered(inst) as (key, phone, before, first):
                link.cut()
                await wait_status(inst, "/readyz", 503)
                async with inst.client(key) as c:
                    during = await c.post(
                        "/v1/jobs", json={"title": "During", "lat": LYON[0], "lng": LYON[1]}
                    )
                    read = await c.get(f"/v1/jobs/{before['id']}")
                assert during.status_code == 503, during.text
                assert during.json()["error"]["code"] == "unavailable"
                assert read.status_code == 503, read.text
                # Past the open-jobs cache and in another cell, the fix makes the
                # service look for open jobs in PostgreSQL: the fix still counts.
                await asyncio.sleep(OPEN_JOBS_RECHECK_S + 0.1)
                await phone.send({"type": "location", "lat": LYON[0] + 0.02, "lng": LYON[1]})
                assert [f["type"] for f in await phone.pending()] == []
                await phone.send({"type": "accept", "offer_id": first["offer_id"]})
                error = await phone.recv_type("error")
                assert error["code"] == "unavailable"

                link.mend()
                await wait_status(inst, "/readyz", 200)
                assigned = await accept_retrying(phone, first["offer_id"])
                assert assigned["job_id"] == before["id"]
            stored = await inst.get_job(key, before["id"])
            assert stored["state"] == "assigned"
            assert [e["kind"] for e in stored["history"]] == ["created", "wave", "assigned"]
        finally:
            await inst.stop()


async def test_a_cancel_committed_by_an_instance_killed_before_delivery_still_reaches_the_phone(
    tmp_path: Path,
) -> None:
    """kill -9 of the instance that committed a cancel before it told anyone: the survivor's
    sweeper tells the phone (next seq, in order), and the technician is not left busy —
    the next job nearby is offered to them."""
    async with cluster_env() as env:
        doomed = FaultyInstance(env, "doomed", tmp_path, kill_after="job_cancelled")
        survivor = Instance(env, "survivor", tmp_path, offer_timeout_s="30")
        try:
            await asyncio.gather(doomed.start(), survivor.start())
            key = await survivor.create_org()
            worker_id, token = await survivor.create_worker(key, "Ann", [])
            async with Phone.connect(survivor.ws_url, token) as phone:
                await phone.on_duty(LYON[0] + 0.001, LYON[1])
                job = await survivor.post_job(key, *LYON)
                offer = await phone.recv_type("offer")
                await phone.send({"type": "accept", "offer_id": offer["offer_id"]})
                assigned = await phone.recv_type("assigned")

                async with doomed.client(key) as c:
                    with pytest.raises(httpx.TransportError):
                        await c.post(f"/v1/jobs/{job['id']}/cancel", json={"reason": "dup"})
                assert doomed.proc is not None
                async with asyncio.timeout(WAIT_S):
                    assert await doomed.proc.wait() == -9
                stored = await survivor.get_job(key, job["id"])
                assert stored["state"] == "cancelled", "committed before the kill"

                cancelled = await phone.recv()
                assert cancelled["type"] == "job_cancelled"
                assert cancelled["job_id"] == job["id"]
                assert cancelled["seq"] == assigned["seq"] + 1
                async with survivor.client(key) as c:
                    seen = (await c.get(f"/v1/workers/{worker_id}")).json()
                assert seen["status"] == "available"
                second = await survivor.post_job(key, *LYON)
                again = await phone.recv_type("offer")
                assert again["job"]["id"] == second["id"]
        finally:
            await asyncio.gather(doomed.stop(), survivor.stop())


async def test_an_accept_committed_by_an_instance_killed_before_delivery_is_still_announced(
    tmp_path: Path,
) -> None:
    """kill -9 of the instance that committed an accept before answering it: the winner,
    reconnected to the survivor without resending, is told ``assigned`` (next seq), the
    other holder ``taken``, and the winner gets no new offers."""
    async with cluster_env() as env:
        doomed = FaultyInstance(env, "doomed", tmp_path, kill_after="assigned")
        survivor = Instance(env, "survivor", tmp_path, offer_timeout_s="30")
        try:
            await asyncio.gather(doomed.start(), survivor.start())
            key = await survivor.create_org()
            _, ann_token = await survivor.create_worker(key, "Ann", [])
            _, bob_token = await survivor.create_worker(key, "Bob", [])
            async with Phone.connect(survivor.ws_url, bob_token) as bob:
                await bob.on_duty(LYON[0] + 0.002, LYON[1])
                async with Phone.connect(doomed.ws_url, ann_token) as ann:
                    await ann.on_duty(LYON[0] + 0.001, LYON[1])
                    job = await survivor.post_job(key, *LYON)
                    offer = await ann.recv_type("offer")
                    await bob.recv_type("offer")
                    await ann.send({"type": "accept", "offer_id": offer["offer_id"]})
                    assert doomed.proc is not None
                    async with asyncio.timeout(WAIT_S):
                        assert await doomed.proc.wait() == -9
                async with Phone.connect(survivor.ws_url, ann_token, offer["seq"]) as back:
                    assigned = await back.recv()
                    assert assigned["type"] == "assigned"
                    assert assigned["offer_id"] == offer["offer_id"]
                    assert assigned["seq"] == offer["seq"] + 1
                    closed = await bob.recv_type("offer_closed")
                    assert closed["reason"] == "taken"
                    second = await survivor.post_job(key, *LYON)
                    assert (await bob.recv_type("offer"))["job"]["id"] == second["id"]
                    assert [f["type"] for f in await back.pending()] == []
            stored = await survivor.get_job(key, job["id"])
            assert stored["state"] == "assigned"
        finally:
            await asyncio.gather(doomed.stop(), survivor.stop())
