"""End to end over real sockets: a technician hands an assigned job back."""

from __future__ import annotations

from dispatch.config import DispatchConfig
from tests.mobile_api.live import PARIS, StartServer, offset

SKILL = "electrical"


async def test_a_released_job_is_offered_to_another_phone_at_once(
    start_server: StartServer,
) -> None:
    """Off duty with a job is refused naming it; a release before arriving re-opens the job,
    another phone gets the offer, the releaser is not offered it again and may go off duty."""
    live = await start_server(DispatchConfig(wave_size=1, offer_timeout_s=600.0))
    org = await live.create_org()
    near = await live.on_duty(org, "near", (SKILL,), offset(PARIS, 200.0, 0.0))
    other = await live.on_duty(org, "other", (SKILL,), offset(PARIS, 600.0, 90.0))

    job = await live.post_job(org, *PARIS, skills=[SKILL])
    offer = await near.recv_type("offer")
    await near.request({"type": "accept", "offer_id": offer["offer_id"]}, "assigned")
    await near.request({"type": "progress", "job_id": job["id"], "state": "en_route"}, "progress")
    await other.assert_quiet()

    error = await near.request({"type": "status", "status": "off_duty"}, "error")
    assert error["code"] == "not_eligible"
    assert error["job_id"] == job["id"]
    assert job["id"] in error["message"]

    reply = await near.request(
        {"type": "release", "job_id": job["id"], "reason": "van broke down"}, "released"
    )
    assert reply == {"type": "released", "job_id": job["id"], "state": "open"}
    second = await other.recv_type("offer")
    assert second["job"]["id"] == job["id"]
    assert second["wave"] == 1
    await near.assert_quiet()

    view = await live.get_job(org, job["id"])
    assert (view["state"], view["worker_id"]) == ("open", None)
    released = [e for e in view["history"] if e["kind"] == "released"]
    assert [e["data"] for e in released] == [
        {"worker_id": near.worker_id, "reason": "van broke down", "was": "en_route"}
    ]
    assert (await live.get_worker(org, near.worker_id))["status"] == "available"
    reply = await near.request({"type": "status", "status": "off_duty"}, "status")
    assert reply["status"] == "off_duty"

    await other.request({"type": "accept", "offer_id": second["offer_id"]}, "assigned")
    assert (await live.get_job(org, job["id"]))["worker_id"] == other.worker_id
