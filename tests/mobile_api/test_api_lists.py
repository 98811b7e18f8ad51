"""The dispatcher's lists over HTTP: items, filters, cursors, candidates and bad queries."""

from __future__ import annotations

import time

import pytest

from tests.mobile_api.live import PARIS, LiveServer, Org, offset
from tests.mobile_api.test_e2e_console import SKILL, ok, refused


@pytest.fixture
async def org(server: LiveServer) -> Org:
    return await server.create_org("Plant")


async def test_worker_items_have_the_maps_shape_and_filters_hold(
    server: LiveServer, org: Org
) -> None:
    """A worker item is the map's (id, name, kind, status, lat, lng, fix_at); status, kind,
    skill and bounding box filter it."""
    here = offset(PARIS, 100.0, 0.0)
    located = await server.on_duty(org, "located", [SKILL], here)
    idle = await server.create_worker(org, "idle", ["plumbing"])
    items = ok(await server.http.get("/v1/workers", headers=org.headers))["items"]
    item = next(i for i in items if i["id"] == located.worker_id)
    assert {"id", "name", "kind", "status", "lat", "lng", "fix_at"} <= set(item)
    assert (item["name"], item["status"], item["lat"], item["lng"]) == (
        "located",
        "available",
        *here,
    )
    assert item["fix_at"].endswith("Z")

    async def ids(query: str) -> set[str]:
        r = await server.http.get(f"/v1/workers?{query}", headers=org.headers)
        return {i["id"] for i in ok(r)["items"]}

    assert await ids("status=off_duty") == {idle.id}
    assert await ids("status=off_duty,available") == {idle.id, located.worker_id}
    assert await ids("kind=freelancer") == set()
    assert await ids("skill=Plumbing") == {idle.id}
    west, south = offset(PARIS, 1_000.0, 225.0)[::-1]
    north, east = offset(PARIS, 1_000.0, 45.0)
    assert await ids(f"bbox={west},{south},{east},{north}") == {located.worker_id}
    assert await ids(f"updated_since={time.time() + 3600:.0f}") == set()
    assert await ids("updated_since=2000-01-01T00:00:00Z") == {located.worker_id}


async def test_a_walk_by_cursor_lists_every_job_once(server: LiveServer, org: Org) -> None:
    """Following ``next_cursor`` with a small limit lists every job exactly once, and a job
    posted during the walk never makes it repeat one."""
    posted = [(await server.post_job(org, *PARIS))["id"] for _ in range(7)]
    seen: list[str] = []
    url = "/v1/jobs?limit=3"
    while True:
        page = ok(await server.http.get(url, headers=org.headers))
        seen.extend(i["id"] for i in page["items"])
        await server.post_job(org, *PARIS)
        if page["next_cursor"] is None:
            break
        url = f"/v1/jobs?limit=3&cursor={page['next_cursor']}"
    assert len(seen) == len(set(seen))
    assert set(posted) <= set(seen)


async def test_job_items_and_the_job_show_the_offers_out(server: LiveServer, org: Org) -> None:
    """A job item lists its pending offers (worker, state, expires_at); the job's own view
    lists every offer with its wave and distance."""
    phone = await server.on_duty(org, "near", [SKILL], offset(PARIS, 150.0, 0.0))
    job = await server.post_job(org, *PARIS, skills=[SKILL])
    offer = await phone.recv_type("offer")
    items = ok(await server.http.get("/v1/jobs?state=open", headers=org.headers))["items"]
    item = next(i for i in items if i["id"] == job["id"])
    assert {"id", "title", "state", "lat", "lng", "worker_id", "offers"} <= set(item)
    assert item["offers"] == [
        {"worker_id": phone.worker_id, "state": "pending", "expires_at": offer["expires_at"]}
    ]
    detail = await server.get_job(org, job["id"])
    assert [(o["id"], o["worker_id"], o["state"], o["wave"]) for o in detail["offers"]] == [
        (offer["offer_id"], phone.worker_id, "pending", 1)
    ]
    assert detail["offers"][0]["expires_at"] == offer["expires_at"]
    assert ok(await server.http.get("/v1/jobs?state=cancelled", headers=org.headers))["items"] == []


async def test_candidates_are_ranked_or_say_why_they_are_left_out(
    server: LiveServer, org: Org
) -> None:
    """Nearby workers come nearest first: the eligible ranked 1, 2, …, every other with the
    first reason of the matching rules; an off-duty technician has no position to be near."""
    radius = server.settings.dispatch.radii_m[0]
    first = await server.on_duty(org, "first", [SKILL], offset(PARIS, 100.0, 0.0))
    decliner = await server.on_duty(org, "decliner", [SKILL], offset(PARIS, 200.0, 0.0))
    await server.on_duty(org, "unskilled", ["plumbing"], offset(PARIS, 300.0, 0.0))
    await server.on_duty(org, "resting", [SKILL], offset(PARIS, 400.0, 0.0), available=False)
    stale = await server.on_duty(org, "stale", [SKILL], offset(PARIS, 9_000.0, 0.0))
    await stale.send(
        {
            "type": "location",
            "lat": offset(PARIS, 500.0, 0.0)[0],
            "lng": PARIS[1],
            "ts": time.time() - 3600,
        }
    )
    assert await stale.pending() == []
    await server.on_duty(org, "beyond", [SKILL], offset(PARIS, radius + 500.0, 0.0))
    job = await server.post_job(org, *PARIS, skills=[SKILL])
    offer = await decliner.recv_type("offer")
    await decliner.request({"type": "decline", "offer_id": offer["offer_id"]}, "declined")
    await first.recv_type("offer")

    r = await server.http.get(f"/v1/jobs/{job['id']}/candidates", headers=org.headers)
    got = [(c["name"], c["rank"], c["reason"]) for c in ok(r)["items"]]
    assert got == [
        ("first", None, "already_offered"),
        ("decliner", None, "declined"),
        ("unskilled", None, "missing_skills"),
        ("stale", None, "stale_fix"),
        ("beyond", None, "out_of_radius"),
    ]


async def test_eligible_candidates_are_ranked_by_distance(server: LiveServer, org: Org) -> None:
    """Workers the next wave would reach are ranked 1, 2, … nearest first; ``limit`` and
    ``radius_m`` bound the list."""
    job = await server.post_job(org, *PARIS, skills=[SKILL])  # nobody around: unfilled
    assert (await server.get_job(org, job["id"]))["state"] == "unfilled"
    for name, distance in (("second", 700.0), ("first", 300.0), ("third", 900.0)):
        await server.on_duty(org, name, [SKILL], offset(PARIS, distance, 45.0))
    await server.on_duty(org, "far", [SKILL], offset(PARIS, 5_000.0, 45.0))
    r = await server.http.get(
        f"/v1/jobs/{job['id']}/candidates?radius_m=1000&limit=2", headers=org.headers
    )
    items = ok(r)["items"]
    assert [(c["name"], c["rank"], c["reason"]) for c in items] == [
        ("first", 1, None),
        ("second", 2, None),
    ]
    assert 299.0 < items[0]["distance_m"] < 301.0
    r = await server.http.get(f"/v1/jobs/{job['id']}/candidates?radius_m=0", headers=org.headers)
    refused(r, 400, "invalid_query")


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=501",
        "limit=many",
        "status=asleep",
        "bbox=1,2,3",
        "bbox=10,50,20,40",
        "cursor=***",
        "updated_since=yesterday",
        "updated_since=2026-01-01T00:00:00",
        "colour=red",
        "limit=1&limit=2",
    ],
)
async def test_a_bad_query_is_refused_with_400(server: LiveServer, org: Org, query: str) -> None:
    """A malformed, out-of-range or unknown list parameter answers 400 ``invalid_query``."""
    r = await server.http.get(f"/v1/workers?{query}", headers=org.headers)
    refused(r, 400, "invalid_query")
