"""End to end: a citizen's Open311 request dispatched to a technician's phone, read back
live as it goes to closed; an address geocoded through a real geocoder on loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from dispatch.config import DispatchConfig
from tests.mobile_api.live import PARIS, StartServer, offset, running_server
from tests.mobile_api.open311_client import city, post_report

SKILL = "asphalt"


async def test_a_request_is_dispatched_and_its_status_followed_to_closed(
    start_server: StartServer,
) -> None:
    """The nearest technician is offered the job over the socket; each step changes the
    GeoReport status notes; the ETA appears on accept; no response names the technician."""
    live = await start_server(DispatchConfig(wave_size=1, offer_timeout_s=600.0))
    c = await city(live)
    at = offset(PARIS, 900.0, 45.0)
    phone = await live.on_duty(c.org, "Homer Technician", (SKILL,), at)
    seen: list[httpx.Response] = []

    async def view(fmt: str = "json") -> dict[str, Any]:
        r = await live.http.get(f"/open311/v2/requests/{request_id}.{fmt}", params=c.jurisdiction)
        assert r.status_code == 200, r.text
        seen.append(r)
        if fmt == "xml":
            return {}
        (body,) = r.json()
        assert isinstance(body, dict)
        return body

    posted = await post_report(live, c, lat=str(PARIS[0]), long=str(PARIS[1]))
    assert posted.status_code == 201, posted.text
    seen.append(posted)
    request_id = posted.json()[0]["service_request_id"]
    offer = await phone.recv_type("offer")
    # The dispatcher goes from the job to the request by its external_ref.
    assert (await live.get_job(c.org, offer["job"]["id"]))["external_ref"] == request_id
    waiting = await view()
    assert (waiting["status"], waiting["status_notes"]) == ("open", "awaiting a crew")
    assert waiting["expected_datetime"] is None

    await phone.request({"type": "accept", "offer_id": offer["offer_id"]}, "assigned")
    assigned = await view()
    assert (assigned["status"], assigned["status_notes"]) == ("open", "crew assigned")
    assert assigned["expected_datetime"] is not None
    assert assigned["expected_datetime"] >= assigned["requested_datetime"]
    notes = [waiting["status_notes"], assigned["status_notes"]]
    job_id = offer["job"]["id"]
    for state, status in (("en_route", "open"), ("on_site", "open"), ("completed", "closed")):
        await phone.request({"type": "progress", "job_id": job_id, "state": state}, "progress")
        now = await view()
        await view("xml")
        assert now["status"] == status
        notes.append(now["status_notes"])
    assert notes == [
        "awaiting a crew",
        "crew assigned",
        "crew on the way",
        "crew on site",
        "completed",
    ]
    listed = await live.http.get("/open311/v2/requests.json", params=c.jurisdiction)
    seen.append(listed)
    assert [v["status"] for v in listed.json()] == ["closed"]
    # Nothing the citizen side was answered names or places the technician.
    for r in seen:
        for secret in (phone.worker_id, "Homer", f"{at[0]:.4f}", f"{at[1]:.4f}", "wrk_"):
            assert secret not in r.text, (secret, r.text)


async def test_a_request_nobody_can_take_stays_open_awaiting_a_crew(
    start_server: StartServer,
) -> None:
    """With no technician in reach the job goes unfilled; the request stays open until the
    city cancels the job, which closes it."""
    live = await start_server()
    c = await city(live)
    request_id = (await post_report(live, c)).json()[0]["service_request_id"]
    r = await live.http.get(f"/open311/v2/requests/{request_id}.json", params=c.jurisdiction)
    (view,) = r.json()
    assert (view["status"], view["status_notes"]) == ("open", "awaiting a crew")
    (item,) = (await live.http.get("/v1/jobs", headers=c.org.headers)).json()["items"]
    job = await live.get_job(c.org, item["id"])
    assert (job["state"], job["external_ref"]) == ("unfilled", request_id)
    assert (await live.cancel_job(c.org, job["id"], "no crew this week"))["state"] == "cancelled"
    r = await live.http.get(f"/open311/v2/requests/{request_id}.json", params=c.jurisdiction)
    (view,) = r.json()
    assert (view["status"], view["status_notes"]) == ("closed", "cancelled")


class _Nominatim(BaseHTTPRequestHandler):
    """Answers Nominatim's /search like the real one, for one known address."""

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query).get("q", [""])[0]
        places = (
            [{"lat": "48.8606", "lon": "2.3376", "display_name": "Louvre, Paris"}]
            if url.path == "/search" and "Louvre" in query
            else []
        )
        body = json.dumps(places).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def nominatim() -> Iterator[str]:
    """A Nominatim-speaking HTTP server on a loopback port; yields its host:port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Nominatim)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_an_address_is_geocoded_by_the_configured_geocoder(nominatim: str) -> None:
    """With FIELDCLOUD_GEOCODER=nominatim an address becomes the job's place; an unknown
    address is a 400 saying it could not be located."""
    extra = {"geocoder": "nominatim", "geocoder_domain": nominatim, "geocoder_scheme": "http"}
    async with running_server(extra=extra) as live:
        c = await city(live)
        r = await post_report(live, c, lat=None, long=None, address_string="Louvre, Paris")
        assert r.status_code == 201, r.text
        request_id = r.json()[0]["service_request_id"]
        r = await live.http.get(f"/open311/v2/requests/{request_id}.json", params=c.jurisdiction)
        (view,) = r.json()
        assert (view["lat"], view["long"]) == (48.8606, 2.3376)
        assert view["address"] == "Louvre, Paris"
        r = await post_report(live, c, lat=None, long=None, address_string="Atlantis")
        assert r.status_code == 400
        assert r.json()[0]["description"] == "address_string could not be located"
