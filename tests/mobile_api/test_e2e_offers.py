"""End to end over real sockets: who gets an offer, and who wins the accept race."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from dispatch.config import DispatchConfig
from tests.mobile_api.live import (
    PARIS,
    Frame,
    LiveServer,
    Org,
    Phone,
    StartServer,
    haversine_m,
    offset,
    pending_all,
    types_of,
)

SKILL = "electrical"


@dataclass(frozen=True)
class Tech:
    """A technician of the scenario and what the test knows about them."""

    name: str
    position: tuple[float, float]
    skills: tuple[str, ...]
    available: bool


def k_nearest_eligible(
    techs: list[tuple[Tech, Phone]], job_at: tuple[float, float], k: int, radius_m: float
) -> list[str]:
    """The brute-force answer: worker ids of the k nearest available, skilled techs in reach."""
    eligible = [
        (haversine_m(*job_at, *tech.position), phone.worker_id)
        for tech, phone in techs
        if tech.available and SKILL in tech.skills
    ]
    in_reach = sorted(e for e in eligible if e[0] <= radius_m)
    return [worker_id for _, worker_id in in_reach[:k]]


def scenario(job_at: tuple[float, float]) -> list[Tech]:
    """50 technicians around ``job_at`` at distinct distances (90 m … 1903 m)."""
    techs = []
    for i in range(50):
        position = offset(job_at, 90.0 + 37.0 * i, (i * 137.5) % 360.0)
        lacks_skill = i % 4 == 1
        off_duty = i == 0 or i % 6 == 2
        skills = ("plumbing",) if lacks_skill else (SKILL, "plumbing") if i % 2 else (SKILL,)
        techs.append(Tech(f"tech-{i:02d}", position, skills, not off_duty))
    return techs


async def test_offers_reach_exactly_the_k_nearest_eligible_and_the_first_accept_wins(
    start_server: StartServer,
) -> None:
    """Exactly the k nearest eligible technicians get an offer, nobody else hears anything,
    one accept assigns the job and closes the others' offers as taken."""
    k = 5
    live = await start_server(DispatchConfig(wave_size=k, offer_timeout_s=600.0))
    org = await live.create_org("Plant")
    rival = await live.create_org("Rival")
    job_at = PARIS
    techs = scenario(job_at)
    phones = await asyncio.gather(
        *(live.on_duty(org, t.name, t.skills, t.position, available=t.available) for t in techs)
    )
    pairs = list(zip(techs, phones, strict=True))
    # A worker of another organisation, closest of all and fully qualified.
    foreign = await live.on_duty(rival, "foreign", (SKILL,), offset(job_at, 10.0, 0.0))
    everyone = [*phones, foreign]

    expected = k_nearest_eligible(pairs, job_at, k, live.settings.dispatch.radii_m[0])
    assert len(expected) == k
    # The nearest technicians overall are not all eligible: the filter matters.
    nearest_overall = sorted(pairs, key=lambda p: haversine_m(*job_at, *p[0].position))
    assert {p.worker_id for _, p in nearest_overall[:k]} != set(expected)

    job = await live.post_job(org, *job_at, skills=[SKILL])
    assert job["state"] == "open"
    assert job["wave"] == 1

    received = dict(zip([p.worker_id for p in everyone], await pending_all(everyone), strict=True))
    offered = {wid for wid, frames in received.items() if frames}
    assert offered == set(expected)
    offers: dict[str, Frame] = {}
    for tech, phone in pairs:
        frames = received[phone.worker_id]
        if phone.worker_id not in expected:
            continue
        assert types_of(frames) == ["offer"]
        offer = frames[0]
        assert offer["job"]["id"] == job["id"]
        assert offer["job"]["skills"] == [SKILL]
        assert offer["wave"] == 1
        assert isinstance(offer["seq"], int)
        assert abs(offer["distance_m"] - haversine_m(*job_at, *tech.position)) < 1.0
        offers[phone.worker_id] = offer

    by_id = {p.worker_id: p for p in phones}
    winner = by_id[expected[2]]
    reply = await winner.request(
        {"type": "accept", "offer_id": offers[winner.worker_id]["offer_id"]}, "assigned"
    )
    assert reply["job_id"] == job["id"]
    assert reply["offer_id"] == offers[winner.worker_id]["offer_id"]

    received = dict(zip([p.worker_id for p in everyone], await pending_all(everyone), strict=True))
    for worker_id, frames in received.items():
        if worker_id in expected and worker_id != winner.worker_id:
            assert frames == [
                {
                    "type": "offer_closed",
                    "offer_id": offers[worker_id]["offer_id"],
                    "job_id": job["id"],
                    "reason": "taken",
                    "seq": offers[worker_id]["seq"] + 1,
                }
            ]
        else:
            assert frames == [], worker_id

    view = await live.get_job(org, job["id"])
    assert view["state"] == "assigned"
    assert view["worker_id"] == winner.worker_id
    kinds = [e["kind"] for e in view["history"]]
    assert kinds == ["created", "wave", "assigned"]
    assert view["history"][1]["data"]["offered"] == expected
    assert view["history"][2]["data"]["worker_id"] == winner.worker_id
    assert [e["seq"] for e in view["history"]] == [1, 2, 3]
    assert (await live.get_worker(org, winner.worker_id))["status"] == "busy"


async def offered_crowd(live: LiveServer, n: int) -> tuple[Org, Frame, list[Phone], list[Frame]]:
    """``n`` available technicians around Paris, each holding an offer for one new job."""
    org = await live.create_org()
    phones = await asyncio.gather(
        *(
            live.on_duty(org, f"t{i}", (SKILL,), offset(PARIS, 100.0 + 20.0 * i, 18.0 * i))
            for i in range(n)
        )
    )
    job = await live.post_job(org, *PARIS, skills=[SKILL])
    offers = [await p.recv_type("offer") for p in phones]
    assert all(o["job"]["id"] == job["id"] for o in offers)
    return org, job, list(phones), offers


async def test_of_twenty_simultaneous_accepts_exactly_one_wins(start_server: StartServer) -> None:
    """Twenty holders accepting at once yield one assignment; the 19 others are told taken."""
    live = await start_server(DispatchConfig(wave_size=20, offer_timeout_s=600.0))
    org, job, phones, offers = await offered_crowd(live, 20)

    await asyncio.gather(
        *(
            p.send({"type": "accept", "offer_id": o["offer_id"]})
            for p, o in zip(phones, offers, strict=True)
        )
    )
    results = await pending_all(phones)

    winners = [i for i, frames in enumerate(results) if "assigned" in types_of(frames)]
    assert len(winners) == 1
    w = winners[0]
    assert results[w] == [
        {
            "type": "assigned",
            "offer_id": offers[w]["offer_id"],
            "job_id": job["id"],
            "seq": offers[w]["seq"] + 1,
        }
    ]
    for i, frames in enumerate(results):
        if i == w:
            continue
        errors = [f for f in frames if f["type"] == "error"]
        closed = [f for f in frames if f["type"] == "offer_closed"]
        assert sorted(types_of(frames)) == ["error", "offer_closed"], frames
        assert errors[0]["code"] == "offer_closed"
        assert errors[0]["reason"] == "taken"
        assert errors[0]["offer_id"] == offers[i]["offer_id"]
        assert closed[0]["reason"] == "taken"
        assert closed[0]["offer_id"] == offers[i]["offer_id"]

    view = await live.get_job(org, job["id"])
    assert view["state"] == "assigned"
    assert view["worker_id"] == phones[w].worker_id
    assert [e["kind"] for e in view["history"]].count("assigned") == 1


async def test_a_repeated_accept_is_answered_assigned_again(start_server: StartServer) -> None:
    """The same accept sent twice assigns once and answers ``assigned`` both times."""
    live = await start_server(DispatchConfig(wave_size=2, offer_timeout_s=600.0))
    org, job, phones, offers = await offered_crowd(live, 2)
    accept = {"type": "accept", "offer_id": offers[0]["offer_id"]}
    await phones[0].send(accept)
    await phones[0].send(accept)
    frames = await phones[0].pending()
    assert types_of(frames) == ["assigned", "assigned"]
    assert {f["job_id"] for f in frames} == {job["id"]}
    # The loser trying again is told the offer was taken.
    await phones[1].send({"type": "accept", "offer_id": offers[1]["offer_id"]})
    frames = await phones[1].pending()
    assert sorted(types_of(frames)) == ["error", "offer_closed"]
    assert all(f["reason"] == "taken" for f in frames)
    view = await live.get_job(org, job["id"])
    assert view["worker_id"] == phones[0].worker_id
