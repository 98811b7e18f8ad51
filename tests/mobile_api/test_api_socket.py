"""The phone socket refuses bad input without dropping the phone (or anyone else)."""

from __future__ import annotations

import asyncio
import json

import msgspec
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.mobile_api.live import (
    ADMIN_TOKEN,
    PARIS,
    WAIT_S,
    LiveServer,
    StartServer,
    offset,
    types_of,
)

SKILL = "electrical"


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer nope", "Token abc", "Bearer fck_not_a_device_token"],
    ids=["missing", "empty", "unknown", "scheme", "made-up"],
)
async def test_a_handshake_without_a_valid_device_token_is_refused_401(
    server: LiveServer, authorization: str | None
) -> None:
    """The upgrade is refused with HTTP 401 and a JSON body; no socket opens."""
    url = server.ws_url + "/v1/ws/worker"
    headers = {} if authorization is None else {"Authorization": authorization}
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, additional_headers=headers, open_timeout=10):
            pass
    response = refused.value.response
    assert response.status_code == 401
    assert json.loads(response.body)["error"]["code"] == "unauthenticated"


async def test_other_credentials_do_not_open_a_phone_socket(server: LiveServer) -> None:
    """An organisation key or the admin token is not a device token: the upgrade is
    refused 403 with a JSON body."""
    org = await server.create_org()
    for token in (org.key, ADMIN_TOKEN):
        with pytest.raises(InvalidStatus) as refused:
            await server.connect_worker(token)
        assert refused.value.response.status_code == 403
        assert json.loads(refused.value.response.body)["error"]["code"] == "forbidden"


@pytest.mark.parametrize("last_seq", ["abc", "-1", "1.5", "9" * 30])
async def test_a_malformed_last_seq_is_refused_400(server: LiveServer, last_seq: str) -> None:
    """A last_seq that is not a non-negative integer refuses the upgrade with 400."""
    org = await server.create_org()
    cred = await server.create_worker(org, "Ann")
    with pytest.raises(InvalidStatus) as refused:
        await server.connect_worker(cred.token, last_seq=last_seq)
    assert refused.value.response.status_code == 400
    assert json.loads(refused.value.response.body)["error"]["code"] == "invalid_query"


BAD_FRAMES: list[tuple[str | bytes, str]] = [
    ("{broken", "invalid_json"),
    ("", "invalid_json"),
    ('{"type": "location", "lat": NaN, "lng": 2.35}', "invalid_json"),
    ('{"type": "location", "lng": 2.35}', "invalid_message"),
    ('{"type": "location", "lat": 91, "lng": 2.35}', "invalid_message"),
    ('{"type": "location", "lat": 48.8, "lng": 181}', "invalid_message"),
    ('{"type": "location", "lat": "48.8", "lng": 2.35}', "invalid_message"),
    ('{"type": "location", "lat": 48.8, "lng": 2.35, "accuracy_m": -1}', "invalid_message"),
    ('{"type": "location", "lat": 48.8, "lng": 2.35, "speed": 3}', "invalid_message"),
    (
        '{"type": "location", "lat": 48.8, "lng": 2.35, "ts": "2024-01-01T00:00:00"}',
        "invalid_message",
    ),
    ('{"type": "location", "lat": 48.8, "lng": 2.35, "ts": 99999999999}', "invalid_input"),
    ('{"type": "status", "status": "asleep"}', "invalid_message"),
    ('{"type": "accept"}', "invalid_message"),
    ('{"type": "accept", "offer_id": "off_nobody"}', "not_found"),
    ('{"type": "decline", "offer_id": "off_nobody"}', "not_found"),
    ('{"type": "progress", "job_id": "job_nobody", "state": "on_site"}', "not_found"),
    ('{"type": "progress", "job_id": "job_x", "state": "assigned"}', "invalid_message"),
    ('{"type": "teleport"}', "unknown_type"),
    ('{"lat": 48.8, "lng": 2.35}', "unknown_type"),
    ('{"type": 7}', "unknown_type"),
    ("[1, 2]", "invalid_message"),
    ('"ping"', "invalid_message"),
    (b'{"type": "ping"}', "invalid_message"),
    (b"\x00\xff", "invalid_message"),
]


async def test_bad_frames_get_error_frames_and_the_socket_stays_usable(
    server: LiveServer,
) -> None:
    """Each malformed, invalid, unknown or binary frame is answered by one error frame with
    the documented code, and the same socket keeps working."""
    org = await server.create_org()
    phone = await server.on_duty(org, "Ann", (SKILL,), PARIS)
    for frame, code in BAD_FRAMES:
        await phone.send_raw(frame)
        answers = await phone.pending()
        assert types_of(answers) == ["error"], (frame, answers)
        assert answers[0]["code"] == code, (frame, answers[0])
        assert answers[0]["message"]
    # Still a working phone: it is offered a job and can take it.
    job = await server.post_job(org, *PARIS, skills=[SKILL])
    offer = await phone.recv_type("offer")
    assigned = await phone.request({"type": "accept", "offer_id": offer["offer_id"]}, "assigned")
    assert assigned["job_id"] == job["id"]


@pytest.mark.parametrize(
    "frame", ['{"lat": 48.8, "lng": 2.35}', '{"type": null, "lat": 48.8}'], ids=["absent", "null"]
)
async def test_a_frame_without_a_type_is_told_the_field_is_missing(
    server: LiveServer, frame: str
) -> None:
    """The error names the missing ``type`` field (and the types there are), rather than
    calling the absent value an unknown type."""
    org = await server.create_org()
    phone = await server.on_duty(org, "Ann", (SKILL,), PARIS)
    await phone.send_raw(frame)
    [answer] = await phone.pending()
    assert answer["code"] == "unknown_type"
    assert "no `type`" in answer["message"]
    assert "None" not in answer["message"]
    assert "location" in answer["message"]


async def test_a_worker_cannot_answer_someone_elses_offer(server: LiveServer) -> None:
    """Accepting or declining another worker's offer answers not_found and changes nothing."""
    org = await server.create_org()
    ann = await server.on_duty(org, "Ann", (SKILL,), offset(PARIS, 100, 0))
    bob = await server.on_duty(org, "Bob", ("plumbing",), offset(PARIS, 50, 0))
    rival = await server.create_org("Rival")
    eve = await server.on_duty(rival, "Eve", (SKILL,), PARIS)
    job = await server.post_job(org, *PARIS, skills=[SKILL])
    offer = await ann.recv_type("offer")
    for intruder in (bob, eve):
        for kind in ("accept", "decline"):
            error = await intruder.request({"type": kind, "offer_id": offer["offer_id"]}, "error")
            assert error["code"] == "not_found"
        await intruder.assert_quiet()
    await ann.assert_quiet()
    assert (await server.get_job(org, job["id"]))["state"] == "open"
    await ann.request({"type": "accept", "offer_id": offer["offer_id"]}, "assigned")


async def test_an_oversized_frame_closes_1009_and_others_are_still_served(
    start_server: StartServer,
) -> None:
    """A frame over the cap closes that socket with 1009; the server keeps serving the
    other phones (which still get offers) and accepts new connections."""
    live = await start_server(max_frame_bytes=1024)
    org = await live.create_org()
    big = await live.on_duty(org, "Big", (SKILL,), offset(PARIS, 100, 0))
    other = await live.on_duty(org, "Other", (SKILL,), offset(PARIS, 200, 0))
    assert big.welcome["max_frame_bytes"] == 1024

    await big.send({"type": "location", "lat": PARIS[0], "lng": PARIS[1], "pad": "x" * 2000})
    assert await big.close_code() == 1009

    # A frame just under the cap is still fine for the other phone.
    filler = "y" * 900
    answer = await other.request({"type": "status", "status": filler}, "error")
    assert answer["code"] == "invalid_message"
    job = await live.post_job(org, *PARIS, skills=[SKILL])
    offers = [await other.recv_type("offer")]
    assert offers[0]["job"]["id"] == job["id"]
    cred = await live.create_worker(org, "New", (SKILL,))
    newcomer = await live.connect_worker(cred.token)
    await newcomer.request({"type": "status", "status": "available"}, "status")
    await newcomer.send({"type": "location", "lat": PARIS[0], "lng": PARIS[1]})
    late = await newcomer.recv_type("offer")
    assert late["job"]["id"] == job["id"]


async def read_to_the_close(ws: ClientConnection) -> None:
    """Read every frame that made it out, up to the close (which raises ``ConnectionClosed``)."""
    async with asyncio.timeout(WAIT_S):
        while True:
            await ws.recv()


async def test_a_phone_that_stops_reading_is_closed_1011_and_resumes_from_the_log(
    server: LiveServer,
) -> None:
    """Notices pile up for a phone that reads nothing: past the outbound limit its socket is
    closed with 1011 "too slow" while a bystander is still served, and reconnecting with
    last_seq replays what the log kept, in order."""
    runtime = server.runtime
    runtime.phone = msgspec.structs.replace(runtime.phone, outbound_limit=8)
    org = await server.create_org()
    bystander = await server.on_duty(org, "Bob", (SKILL,), PARIS)
    cred = await server.create_worker(org, "Slow", (SKILL,))
    slow = await server.connect_worker(cred.token)
    session = runtime.sessions[cred.id]
    feed = runtime.service.stores.feed
    pad = "x" * 4096  # fills the socket buffers sooner
    seqs: list[int] = []
    async with asyncio.timeout(WAIT_S):
        while session.open:  # until the server gives up on the phone
            notice = {"type": "offer_closed", "offer_id": f"off_{len(seqs)}", "pad": pad}
            seqs.append(await feed.publish(cred.id, notice))
            await asyncio.sleep(0)  # the socket's writer writes what the socket takes
    assert len(seqs) > server.settings.log_size  # it was the full socket, not a burst
    await bystander.assert_quiet()
    with pytest.raises(ConnectionClosed) as closed:
        await read_to_the_close(slow.ws)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1011, "too slow")

    back = await server.connect_worker(cred.token, last_seq=seqs[0])
    replayed = [f["seq"] for f in await back.pending()]
    assert replayed == seqs[-len(replayed) :]
    assert len(replayed) == server.settings.log_size
