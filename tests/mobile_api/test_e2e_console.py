"""End to end over real sockets: a dispatcher assigns, re-offers, cancels and sets status."""

from __future__ import annotations

import httpx

from tests.mobile_api.live import (
    PARIS,
    DispatcherCred,
    Frame,
    LiveServer,
    Org,
    offset,
    types_of,
)

SKILL = "electrical"


def ok(r: httpx.Response, status: int = 200) -> Frame:
    assert r.status_code == status, r.text
    body: Frame = r.json()
    return body


def refused(r: httpx.Response, status: int, code: str) -> Frame:
    assert r.status_code == status, r.text
    error: Frame = r.json()["error"]
    assert error["code"] == code, error
    return error


async def setup(live: LiveServer) -> tuple[Org, DispatcherCred]:
    org = await live.create_org("Plant")
    return org, await live.create_dispatcher(org, "Dee")


async def open_job(live: LiveServer, org: Org) -> Frame:
    """A job at PARIS kept open by an offer to a technician of its own, 500 m away."""
    keeper = await live.on_duty(org, "keeper", [SKILL], offset(PARIS, 500.0, 270.0))
    job = await live.post_job(org, *PARIS, skills=[SKILL])
    assert (await keeper.recv_type("offer"))["job"]["id"] == job["id"]
    return job


async def test_direct_assignment_reaches_the_phone_as_assigned(server: LiveServer) -> None:
    """A dispatcher assigns a worker outside the wave: their phone hears ``assigned``, the
    offered worker's offer closes as taken, and the event log names the dispatcher."""
    org, dee = await setup(server)
    near = await server.on_duty(org, "near", [SKILL], offset(PARIS, 300.0, 0.0))
    chosen = await server.on_duty(org, "chosen", [SKILL], offset(PARIS, 3_000.0, 90.0))
    job = await server.post_job(org, *PARIS, skills=[SKILL])
    offer = await near.recv_type("offer")
    await chosen.assert_quiet()

    r = await server.http.post(
        f"/v1/jobs/{job['id']}/assign", json={"worker_id": chosen.worker_id}, headers=dee.headers
    )
    assert ok(r)["state"] == "assigned"
    assigned = await chosen.recv_type("assigned")
    assert assigned["job_id"] == job["id"]
    closed = await near.recv_type("offer_closed")
    assert (closed["offer_id"], closed["reason"]) == (offer["offer_id"], "taken")

    detail = await server.get_job(org, job["id"])
    assert (detail["state"], detail["worker_id"]) == ("assigned", chosen.worker_id)
    last = detail["history"][-1]
    assert last["kind"] == "assigned"
    assert last["data"]["by"] == {"role": "dispatcher", "id": dee.id}
    assert "override" not in last["data"]
    assert {(o["worker_id"], o["state"]) for o in detail["offers"]} == {
        (near.worker_id, "taken"),
        (chosen.worker_id, "accepted"),
    }
    assert (await server.get_worker(org, chosen.worker_id))["status"] == "busy"
    # The chosen worker's phone can work the job like any other it won.
    reply = await chosen.request(
        {"type": "progress", "job_id": job["id"], "state": "en_route"}, "progress"
    )
    assert reply["state"] == "en_route"


async def test_an_ineligible_worker_is_refused_with_the_reason(server: LiveServer) -> None:
    """Assigning a worker the rules leave out answers 409 with the first reason; nothing moves."""
    org, dee = await setup(server)
    unskilled = await server.on_duty(org, "unskilled", ["plumbing"], offset(PARIS, 200.0, 0.0))
    resting = await server.on_duty(org, "resting", [SKILL], PARIS, available=False)
    job = await open_job(server, org)
    for phone, reason in ((unskilled, "missing_skills"), (resting, "off_duty")):
        r = await server.http.post(
            f"/v1/jobs/{job['id']}/assign", json={"worker_id": phone.worker_id}, headers=dee.headers
        )
        assert refused(r, 409, "not_eligible")["reason"] == reason
        await phone.assert_quiet()
    assert (await server.get_job(org, job["id"]))["state"] == "open"


async def test_an_override_assigns_anyway_and_is_logged_with_who_did_it(
    server: LiveServer,
) -> None:
    """With ``override`` the left-out worker is assigned, and the event records the reason
    overridden and who overrode it."""
    org, dee = await setup(server)
    unskilled = await server.on_duty(org, "unskilled", ["plumbing"], offset(PARIS, 200.0, 0.0))
    job = await open_job(server, org)
    r = await server.http.post(
        f"/v1/jobs/{job['id']}/assign",
        json={"worker_id": unskilled.worker_id, "override": True},
        headers=dee.headers,
    )
    assert ok(r)["worker_id"] == unskilled.worker_id
    assert (await unskilled.recv_type("assigned"))["job_id"] == job["id"]
    last = (await server.get_job(org, job["id"]))["history"][-1]
    assert last["kind"] == "assigned"
    assert last["data"]["override"] == "missing_skills"
    assert last["data"]["by"] == {"role": "dispatcher", "id": dee.id}


async def test_a_busy_worker_needs_an_override(server: LiveServer) -> None:
    """A worker already on a job is refused as busy; the organisation key may override it."""
    org, dee = await setup(server)
    worker = await server.on_duty(org, "worker", [SKILL], offset(PARIS, 100.0, 0.0))
    first = await server.post_job(org, *PARIS, skills=[SKILL])
    await worker.request(
        {"type": "accept", "offer_id": (await worker.recv_type("offer"))["offer_id"]}, "assigned"
    )
    second = await open_job(server, org)
    url = f"/v1/jobs/{second['id']}/assign"
    r = await server.http.post(url, json={"worker_id": worker.worker_id}, headers=dee.headers)
    assert refused(r, 409, "not_eligible")["reason"] == "busy"
    r = await server.http.post(
        url, json={"worker_id": worker.worker_id, "override": True}, headers=org.headers
    )
    assert ok(r)["state"] == "assigned"
    data = (await server.get_job(org, second["id"]))["history"][-1]["data"]
    assert (data["override"], data["by"]) == ("busy", {"role": "org", "id": org.id})
    assert first["id"] != second["id"]


async def test_reoffer_sends_a_new_wave_over_a_wider_radius(server: LiveServer) -> None:
    """Re-offering sends a new wave at once to a worker beyond the first radius; the offers
    out stay open, and the wave event names who asked."""
    org, dee = await setup(server)
    first_radius = server.settings.dispatch.radii_m[0]
    near = await server.on_duty(org, "near", [SKILL], offset(PARIS, 300.0, 0.0))
    far = await server.on_duty(org, "far", [SKILL], offset(PARIS, first_radius + 1_000.0, 0.0))
    job = await server.post_job(org, *PARIS, skills=[SKILL])
    await near.recv_type("offer")
    await far.assert_quiet()

    r = await server.http.post(f"/v1/jobs/{job['id']}/reoffer", headers=dee.headers)
    assert ok(r)["wave"] == 2
    offer = await far.recv_type("offer")
    assert (offer["job"]["id"], offer["wave"]) == (job["id"], 2)
    await near.assert_quiet()
    detail = await server.get_job(org, job["id"])
    wave = [e for e in detail["history"] if e["kind"] == "wave"][-1]
    assert wave["data"]["wave"] == 2
    assert wave["data"]["offered"] == [far.worker_id]
    assert wave["data"]["by"] == {"role": "dispatcher", "id": dee.id}
    assert {o["state"] for o in detail["offers"]} == {"pending"}
    r = await server.http.post(
        f"/v1/jobs/{job['id']}/reoffer", json={"radius_m": 0}, headers=dee.headers
    )
    assert refused(r, 422, "invalid_body")


async def test_a_dispatcher_cancels_and_sets_a_workers_status(server: LiveServer) -> None:
    """A dispatcher's cancel is logged as theirs; setting a worker off duty withdraws the
    worker's offers, as if the phone had said it."""
    org, dee = await setup(server)
    worker = await server.on_duty(org, "worker", [SKILL], offset(PARIS, 100.0, 0.0))
    job = await server.post_job(org, *PARIS, skills=[SKILL])
    other = await server.post_job(org, *offset(PARIS, 20.0, 0.0), skills=[SKILL])
    await worker.recv_type("offer")
    await worker.recv_type("offer")

    r = await server.http.post(
        f"/v1/jobs/{job['id']}/cancel", json={"reason": "duplicate"}, headers=dee.headers
    )
    assert ok(r)["state"] == "cancelled"
    last = (await server.get_job(org, job["id"]))["history"][-1]
    assert last["data"] == {"reason": "duplicate", "by": {"role": "dispatcher", "id": dee.id}}
    assert (await worker.recv_type("offer_closed"))["reason"] == "cancelled"

    r = await server.http.post(
        f"/v1/workers/{worker.worker_id}/status", json={"status": "off_duty"}, headers=dee.headers
    )
    assert ok(r)["status"] == "off_duty"
    closed = await worker.recv_type("offer_closed")
    assert (closed["job_id"], closed["reason"]) == (other["id"], "withdrawn")
    assert (await server.get_worker(org, worker.worker_id))["status"] == "off_duty"


async def test_dispatcher_tokens_are_listed_without_secrets_and_revoked_for_good(
    server: LiveServer,
) -> None:
    """A dispatcher's token works until revoked, then answers 401; lists never show it."""
    org, dee = await setup(server)
    assert dee.token.startswith("fcd_")
    assert ok(await server.http.get("/v1/jobs", headers=dee.headers))["items"] == []
    listed = ok(await server.http.get("/v1/dispatchers", headers=org.headers))["items"]
    assert [(d["id"], d["name"], d["revoked_at"]) for d in listed] == [(dee.id, "Dee", None)]
    assert dee.token not in str(listed)

    rival = await server.create_org("Rival")
    r = await server.http.delete(f"/v1/dispatchers/{dee.id}", headers=rival.headers)
    refused(r, 404, "not_found")
    revoked = ok(await server.http.delete(f"/v1/dispatchers/{dee.id}", headers=org.headers))
    assert revoked["revoked_at"] is not None
    refused(await server.http.get("/v1/jobs", headers=dee.headers), 401, "unauthenticated")
    again = ok(await server.http.delete(f"/v1/dispatchers/{dee.id}", headers=org.headers))
    assert again["revoked_at"] == revoked["revoked_at"]
    r = await server.http.post("/v1/dispatchers", json={"name": ""}, headers=org.headers)
    refused(r, 422, "invalid_body")


async def test_lists_and_actions_never_reach_another_organisation(server: LiveServer) -> None:
    """Another organisation's dispatcher sees none of our workers or jobs, and every action on
    them answers 404 and changes nothing; our job cannot go to their worker."""
    org, dee = await setup(server)
    rival = await server.create_org("Rival")
    spy = await server.create_dispatcher(rival, "Spy")
    ours = await server.on_duty(org, "ours", [SKILL], offset(PARIS, 100.0, 0.0))
    theirs = await server.on_duty(rival, "theirs", [SKILL], offset(PARIS, 50.0, 0.0))
    job = await server.post_job(org, *PARIS, skills=[SKILL])
    await ours.recv_type("offer")

    for path in ("/v1/workers", "/v1/jobs"):
        mine = ok(await server.http.get(path, headers=dee.headers))["items"]
        seen = ok(await server.http.get(path, headers=spy.headers))["items"]
        assert mine
        assert all(item["id"] != m["id"] for item in seen for m in mine)
    assert [
        w["id"] for w in ok(await server.http.get("/v1/workers", headers=spy.headers))["items"]
    ] == [theirs.worker_id]
    jid, wid = job["id"], ours.worker_id
    calls = [
        ("GET", f"/v1/jobs/{jid}", None),
        ("GET", f"/v1/jobs/{jid}/candidates", None),
        ("POST", f"/v1/jobs/{jid}/assign", {"worker_id": theirs.worker_id, "override": True}),
        ("POST", f"/v1/jobs/{jid}/reoffer", {}),
        ("POST", f"/v1/jobs/{jid}/cancel", {}),
        ("GET", f"/v1/workers/{wid}", None),
        ("POST", f"/v1/workers/{wid}/status", {"status": "off_duty"}),
    ]
    for method, url, body in calls:
        r = await server.http.request(method, url, json=body, headers=spy.headers)
        refused(r, 404, "not_found")
    r = await server.http.post(
        f"/v1/jobs/{jid}/assign",
        json={"worker_id": theirs.worker_id, "override": True},
        headers=dee.headers,
    )
    refused(r, 404, "not_found")
    detail = await server.get_job(org, jid)
    assert (detail["state"], detail["worker_id"]) == ("open", None)
    assert (await server.get_worker(org, wid))["status"] == "available"
    assert types_of(await theirs.pending()) == []


async def test_an_unfilled_job_is_reoffered_to_whoever_came_since(server: LiveServer) -> None:
    """A job nobody could take is unfilled; once a technician is around, a re-offer opens it
    again and their phone gets the offer, and the log says who reopened it."""
    org, dee = await setup(server)
    job = await server.post_job(org, *PARIS, skills=[SKILL])
    assert (await server.get_job(org, job["id"]))["state"] == "unfilled"
    phone = await server.on_duty(org, "later", [SKILL], offset(PARIS, 400.0, 0.0))
    await phone.assert_quiet()  # an unfilled job is offered to nobody by itself

    r = await server.http.post(
        f"/v1/jobs/{job['id']}/reoffer", json={"radius_m": 1_000}, headers=dee.headers
    )
    assert ok(r)["state"] == "open"
    offer = await phone.recv_type("offer")
    assert offer["job"]["id"] == job["id"]
    history = (await server.get_job(org, job["id"]))["history"]
    reopened = next(e for e in history if e["kind"] == "reopened")
    assert reopened["data"] == {"by": {"role": "dispatcher", "id": dee.id}}
    await phone.request({"type": "accept", "offer_id": offer["offer_id"]}, "assigned")
    r = await server.http.post(f"/v1/jobs/{job['id']}/reoffer", headers=dee.headers)
    refused(r, 409, "illegal_transition")
