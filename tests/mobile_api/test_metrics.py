"""``GET /metrics`` on a real server: the counters move with what phones and jobs do."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from mobile_api.metrics import frame_type
from tests.mobile_api.live import PARIS, LiveServer, offset


async def scrape(server: LiveServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics``, by name and sorted labels."""
    r = await server.http.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def sample(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    """One sample's value (0 when it is absent)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_count_sockets_frames_locations_and_an_assignment(
    server: LiveServer,
) -> None:
    """After a phone connects, reports and wins a job, /metrics shows one open worker socket,
    the location frames, the offer sent and accepted, the job's transitions, a latency and
    a time to fill, and an empty outbox."""
    before = await scrape(server)
    org = await server.create_org()
    phone = await server.on_duty(org, "Ann", [], offset(PARIS, 100, 0))
    for metres in (110, 120):
        await phone.send({"type": "location", "lat": offset(PARIS, metres, 0)[0], "lng": PARIS[1]})
    job = await server.post_job(org, *PARIS)
    offer = await phone.recv_type("offer")
    assigned = await phone.request({"type": "accept", "offer_id": offer["offer_id"]}, "assigned")
    assert assigned["job_id"] == job["id"]
    after = await scrape(server)

    def moved(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert sample(after, "fieldcloud_sockets_open", role="worker") == 1
    assert moved("fieldcloud_location_updates_total") == 3
    assert moved("fieldcloud_ws_frames_received_total", type="location") == 3
    assert moved("fieldcloud_ws_frames_received_total", type="status") == 1
    assert moved("fieldcloud_ws_frames_received_total", type="accept") == 1
    assert moved("fieldcloud_ws_frames_sent_total", type="welcome") == 1
    assert moved("fieldcloud_ws_frames_sent_total", type="offer") == 1
    assert moved("fieldcloud_ws_frames_sent_total", type="assigned") == 1
    assert moved("fieldcloud_offers_total", outcome="sent") == 1
    assert moved("fieldcloud_offers_total", outcome="accepted") == 1
    for kind in ("created", "wave", "assigned"):
        assert moved("fieldcloud_job_events_total", kind=kind) == 1, kind
    assert moved("fieldcloud_offer_latency_seconds_count", answer="accept") == 1
    assert moved("fieldcloud_time_to_fill_seconds_count") == 1
    assert sample(after, "fieldcloud_outbox_backlog") == 0
    await phone.close()
    closed = await scrape(server)
    assert sample(closed, "fieldcloud_sockets_open", role="worker") == 0


async def test_a_frame_of_an_unknown_type_counts_as_other(server: LiveServer) -> None:
    """Whatever type a client makes up, the label stays ``other``: labels stay bounded."""
    org = await server.create_org()
    phone = await server.on_duty(org, "Ann", [], PARIS)
    before = await scrape(server)
    await phone.send({"type": "made-up-" + "x" * 40})
    await phone.pending()
    after = await scrape(server)
    received = "fieldcloud_ws_frames_received_total"
    # The made-up frame and the two pings of ``pending`` (pings have no call: other).
    assert sample(after, received, type="other") - sample(before, received, type="other") == 3
    assert not any("made-up" in str(labels) for _, labels in after)


def test_frame_type_reads_the_type_without_decoding() -> None:
    """The type value is found in compact and spaced JSON, and '' when there is none."""
    assert frame_type('{"type":"offer","seq":3}') == "offer"
    assert frame_type('{"seq": 3, "type": "pong"}') == "pong"
    assert frame_type('{"seq": 3}') == ""
    assert frame_type('{"type": 3}') == ""
    assert frame_type('{"type"') == ""
