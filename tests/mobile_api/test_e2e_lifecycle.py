"""End to end: declining, working a job to completion, and cancelling jobs."""

from __future__ import annotations

import asyncio

from dispatch.config import DispatchConfig
from tests.mobile_api.live import PARIS, StartServer, offset, pending_all, types_of

SKILL = "electrical"


async def test_a_declined_job_moves_on_and_the_assignee_works_it_to_completion(
    start_server: StartServer,
) -> None:
    """A decliner is never re-offered the job; the next worker accepts, reports en_route,
    on_site and completed, and is then available for new work."""
    live = await start_server(DispatchConfig(wave_size=1, offer_timeout_s=600.0))
    org = await live.create_org()
    near_at, next_at = offset(PARIS, 200.0, 0.0), offset(PARIS, 700.0, 180.0)
    near = await live.on_duty(org, "near", (SKILL,), near_at)
    nxt = await live.on_duty(org, "next", (SKILL,), next_at)

    job = await live.post_job(org, *PARIS, skills=[SKILL])
    offer = await near.recv_type("offer")
    await nxt.assert_quiet()  # wave 1 holds only the nearest

    reply = await near.request({"type": "decline", "offer_id": offer["offer_id"]}, "declined")
    assert reply["offer_id"] == offer["offer_id"]
    second = await nxt.recv_type("offer")
    assert second["job"]["id"] == job["id"]
    assert second["wave"] == 2
    # Declining again, or accepting what was declined, is refused.
    error = await near.request({"type": "decline", "offer_id": offer["offer_id"]}, "error")
    assert (error["code"], error["reason"]) == ("offer_closed", "declined")
    error = await near.request({"type": "accept", "offer_id": offer["offer_id"]}, "error")
    assert (error["code"], error["reason"]) == ("offer_closed", "declined")
    # Moving around does not bring the job back to the decliner.
    await near.send({"type": "location", "lat": PARIS[0], "lng": PARIS[1]})
    await near.assert_quiet()

    assigned = await nxt.request({"type": "accept", "offer_id": second["offer_id"]}, "assigned")
    assert assigned["job_id"] == job["id"]
    assert (await live.get_worker(org, nxt.worker_id))["status"] == "busy"
    # Going available with a job in hand, or skipping straight to completed, is refused.
    error = await nxt.request({"type": "status", "status": "available"}, "error")
    assert error["code"] == "not_eligible"
    error = await nxt.request(
        {"type": "progress", "job_id": job["id"], "state": "completed"}, "error"
    )
    assert error["code"] == "illegal_transition"
    for state in ("en_route", "on_site", "completed"):
        reply = await nxt.request(
            {"type": "progress", "job_id": job["id"], "state": state}, "progress"
        )
        assert reply == {"type": "progress", "job_id": job["id"], "state": state}
        assert (await live.get_job(org, job["id"]))["state"] == state
    # A finished job cannot move again, and the answer says so.
    error = await nxt.request(
        {"type": "progress", "job_id": job["id"], "state": "on_site"}, "error"
    )
    assert error["code"] == "illegal_transition"
    assert "completed" in error["message"]
    await near.assert_quiet()
    await nxt.assert_quiet()

    view = await live.get_job(org, job["id"])
    assert view["worker_id"] == nxt.worker_id
    assert [e["kind"] for e in view["history"]] == [
        "created",
        "wave",
        "declined",
        "wave",
        "assigned",
        "en_route",
        "on_site",
        "completed",
    ]
    assert (await live.get_worker(org, nxt.worker_id))["status"] == "available"

    # Available again: the next job at their door is offered to them.
    job2 = await live.post_job(org, *next_at, skills=[SKILL])
    offer2 = await nxt.recv_type("offer")
    assert offer2["job"]["id"] == job2["id"]
    await near.assert_quiet()


async def test_cancelling_closes_offers_and_frees_the_assigned_worker(
    start_server: StartServer,
) -> None:
    """Cancelling an open job closes its offers as cancelled; cancelling an assigned job
    tells the worker job_cancelled and makes them available again."""
    live = await start_server(DispatchConfig(wave_size=3, offer_timeout_s=600.0))
    org = await live.create_org()
    phones = await asyncio.gather(
        *(live.on_duty(org, f"t{i}", (SKILL,), offset(PARIS, 150.0 * (i + 1), 0)) for i in range(3))
    )

    open_job = await live.post_job(org, *PARIS, skills=[SKILL])
    offers = [await p.recv_type("offer") for p in phones]
    cancelled = await live.cancel_job(org, open_job["id"], "duplicate order")
    assert cancelled["state"] == "cancelled"
    for phone, offer, frames in zip(phones, offers, await pending_all(phones), strict=True):
        assert frames == [
            {
                "type": "offer_closed",
                "offer_id": offer["offer_id"],
                "job_id": open_job["id"],
                "reason": "cancelled",
                "seq": offer["seq"] + 1,
            }
        ], phone.worker_id
    r = await live.http.post(f"/v1/jobs/{open_job['id']}/cancel", headers=org.headers)
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "illegal_transition"
    error = await phones[0].request({"type": "accept", "offer_id": offers[0]["offer_id"]}, "error")
    assert (error["code"], error["reason"]) == ("offer_closed", "cancelled")

    job = await live.post_job(org, *PARIS, skills=[SKILL])
    offers = [await p.recv_type("offer") for p in phones]
    worker = phones[1]
    await worker.request({"type": "accept", "offer_id": offers[1]["offer_id"]}, "assigned")
    await worker.request({"type": "progress", "job_id": job["id"], "state": "en_route"}, "progress")
    for phone in (phones[0], phones[2]):
        assert types_of(await phone.pending()) == ["offer_closed"]

    await live.cancel_job(org, job["id"], "customer called off")
    frames = await worker.pending()
    assert [{k: f[k] for k in ("type", "job_id", "reason")} for f in frames] == [
        {"type": "job_cancelled", "job_id": job["id"], "reason": "customer called off"}
    ]
    for phone in (phones[0], phones[2]):
        await phone.assert_quiet()
    view = await live.get_job(org, job["id"])
    assert view["state"] == "cancelled"
    assert view["history"][-1]["kind"] == "cancelled"
    assert view["history"][-1]["data"] == {
        "reason": "customer called off",
        "by": {"role": "org", "id": org.id},
    }
    assert (await live.get_worker(org, worker.worker_id))["status"] == "available"
    # The cancelled job can no longer be worked.
    error = await worker.request(
        {"type": "progress", "job_id": job["id"], "state": "on_site"}, "error"
    )
    assert error["code"] in {"not_found", "illegal_transition"}


async def test_a_cancelled_assignee_hears_job_cancelled_before_any_new_offer(
    start_server: StartServer,
) -> None:
    """When an assigned job is cancelled and an open job waits nearby, the worker is told
    job_cancelled first and only then offered the open job (the log's causal order)."""
    live = await start_server(DispatchConfig(wave_size=3, offer_timeout_s=600.0))
    org = await live.create_org()
    phones = await asyncio.gather(
        *(
            live.on_duty(org, f"t{i}", (SKILL,), offset(PARIS, 150.0 * (i + 1), 90))
            for i in range(3)
        )
    )
    worker = phones[0]
    job = await live.post_job(org, *PARIS, skills=[SKILL])
    offer = await worker.recv_type("offer")
    await worker.request({"type": "accept", "offer_id": offer["offer_id"]}, "assigned")
    # A second job while the worker is busy: it goes to the two others only.
    waiting = await live.post_job(org, *PARIS, skills=[SKILL], title="Second lamp")
    await worker.assert_quiet()

    await live.cancel_job(org, job["id"], "called off")
    frames = await worker.pending()
    assert types_of(frames) == ["job_cancelled", "offer"], frames
    assert frames[0]["job_id"] == job["id"]
    assert frames[1]["job"]["id"] == waiting["id"]
    assert frames[0]["seq"] < frames[1]["seq"]


async def test_leaving_available_withdraws_offers_and_the_job_moves_on(
    start_server: StartServer,
) -> None:
    """A holder who goes off duty has the offer closed as withdrawn, the next wave goes to
    the next worker, and coming back does not bring the job back."""
    live = await start_server(DispatchConfig(wave_size=1, offer_timeout_s=600.0))
    org = await live.create_org()
    first = await live.on_duty(org, "first", (SKILL,), offset(PARIS, 100.0, 0))
    second = await live.on_duty(org, "second", (SKILL,), offset(PARIS, 400.0, 0))
    job = await live.post_job(org, *PARIS, skills=[SKILL])
    offer = await first.recv_type("offer")

    await first.send({"type": "status", "status": "off_duty"})
    frames = await first.pending()
    assert sorted(types_of(frames)) == ["offer_closed", "status"]
    closed = next(f for f in frames if f["type"] == "offer_closed")
    assert (closed["offer_id"], closed["reason"]) == (offer["offer_id"], "withdrawn")
    moved_on = await second.recv_type("offer")
    assert (moved_on["job"]["id"], moved_on["wave"]) == (job["id"], 2)

    await first.request({"type": "status", "status": "available"}, "status")
    await first.assert_quiet()
    await second.assert_quiet()
    assert (await live.get_worker(org, first.worker_id))["status"] == "available"
