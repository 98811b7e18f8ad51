"""``fieldcloud phone``: shorthands with defaults, usage lines, and a close seen at once."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import pytest

from mobile_api.demo.phone import PhoneState, UsageError, translate
from tests.mobile_api.live import PARIS, WAIT_S, LiveServer, offset, running_server


def test_accept_and_go_default_to_the_newest_offer_and_the_assigned_job() -> None:
    """Without ids, ``accept`` answers the newest open offer and ``go`` works the assigned job."""
    state = PhoneState()
    for frame in (
        {"type": "offer", "offer_id": "off_1", "seq": 1},
        {"type": "offer", "offer_id": "off_2", "seq": 2},
        {"type": "offer_closed", "offer_id": "off_2", "job_id": "job_2", "seq": 3},
    ):
        state.saw(frame)
    assert translate("accept", state) == {"type": "accept", "offer_id": "off_1"}
    assert translate("decline off_9", state) == {"type": "decline", "offer_id": "off_9"}
    state.saw({"type": "assigned", "offer_id": "off_1", "job_id": "job_1", "seq": 4})
    assert translate("go on_site", state) == {
        "type": "progress",
        "job_id": "job_1",
        "state": "on_site",
    }
    assert translate("go job_7 completed", state) == {
        "type": "progress",
        "job_id": "job_7",
        "state": "completed",
    }
    assert state.last_seq == 4


def test_release_hands_back_the_assigned_job_with_the_rest_of_the_line_as_reason() -> None:
    """``release`` names the job assigned to the phone; once released it is no longer theirs."""
    state = PhoneState()
    state.saw({"type": "assigned", "offer_id": "off_1", "job_id": "job_1", "seq": 1})
    assert translate("release van broke down", state) == {
        "type": "release",
        "job_id": "job_1",
        "reason": "van broke down",
    }
    state.saw({"type": "released", "job_id": "job_1", "state": "open"})
    assert state.job is None


@pytest.mark.parametrize(
    ("line", "usage"),
    [
        ("loc 45.7", "usage: loc LAT LNG (two numbers: latitude and longitude)"),
        ("loc north 4.8", "usage: loc LAT LNG (LAT and LNG are numbers in degrees)"),
        ("go somewhere", "usage: go [JOB] STATE (STATE is one of en_route, on_site, completed)"),
        ("go en_route", "usage: go [JOB] STATE (no job assigned yet; give a job id)"),
        ("accept", "usage: accept [OFFER] (no offer received yet; give an offer id)"),
        ("accept a b", "usage: accept [OFFER] (at most one offer id)"),
        ("available now", "usage: available (no argument)"),
        ("release", "usage: release [REASON] (no job assigned to you)"),
        (
            "hello",
            "not understood: 'hello'; type one of available, busy, off, loc, accept, decline,"
            " go, release, ping, or a JSON frame (fieldcloud phone --help)",
        ),
    ],
)
def test_a_bad_shorthand_gets_its_usage_line(line: str, usage: str) -> None:
    """A line that does not fit its shorthand is answered with that shorthand's usage."""
    with pytest.raises(UsageError) as caught:
        translate(line, PhoneState())
    assert str(caught.value) == usage


class PhoneProcess:
    """``fieldcloud phone`` as a subprocess: type lines, read what it prints."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.seen: list[str] = []

    @classmethod
    async def start(cls, server: LiveServer, token: str) -> PhoneProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "mobile_api.cli",
            "phone",
            "--url",
            f"{server.ws_url}/v1/ws/worker",
            "--token",
            token,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        return cls(proc)

    async def type(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()

    async def line_with(self, text: str) -> str:
        """The next printed line containing ``text``."""
        assert self.proc.stdout is not None
        async with asyncio.timeout(WAIT_S):
            while True:
                raw = await self.proc.stdout.readline()
                assert raw, f"the client exited; it printed {self.seen}"
                line = raw.decode().rstrip("\n")
                self.seen.append(line)
                if text in line:
                    return line

    async def frame(self, kind: str) -> dict[str, Any]:
        """The next received frame of type ``kind``."""
        line = await self.line_with(f'"type":"{kind}"')
        assert line.startswith("< ")
        frame: dict[str, Any] = json.loads(line[2:])
        return frame

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()


async def test_a_hand_driven_phone_wins_a_job_with_shorthands_alone(server: LiveServer) -> None:
    """available, loc, accept and go with no ids take a technician from offer to en_route;
    a malformed line gets a usage line and the session goes on."""
    org = await server.create_org()
    cred = await server.create_worker(org, "Ann", ["electrical"])
    phone = await PhoneProcess.start(server, cred.token)
    try:
        await phone.frame("welcome")
        await phone.type("available")
        await phone.frame("status")
        await phone.type("loc 48.85 here")
        assert (
            await phone.line_with("! ")
        ) == "! usage: loc LAT LNG (LAT and LNG are numbers in degrees)"
        await phone.type(f"loc {PARIS[0]} {PARIS[1]}")
        await phone.type("ping")
        await phone.frame("pong")  # the fix was handled before the ping
        job = await server.post_job(org, *offset(PARIS, 100, 45), skills=["electrical"])
        offer = await phone.frame("offer")
        await phone.type("accept")
        assigned = await phone.frame("assigned")
        await phone.type("go en_route")
        progress = await phone.frame("progress")
    finally:
        await phone.stop()
    assert offer["job"]["id"] == job["id"]
    assert (assigned["offer_id"], assigned["job_id"]) == (offer["offer_id"], job["id"])
    assert (progress["job_id"], progress["state"]) == (job["id"], "en_route")


async def test_a_close_by_the_server_is_shown_at_once_and_ends_the_client(
    server: LiveServer,
) -> None:
    """When the same worker connects elsewhere, the client prints the 4001 close and exits 1,
    with nothing more typed."""
    org = await server.create_org()
    cred = await server.create_worker(org, "Ann")
    phone = await PhoneProcess.start(server, cred.token)
    try:
        await phone.frame("welcome")
        await server.connect_worker(cred.token)  # supersedes the client's socket
        closed = await phone.line_with("closed by the server")
        async with asyncio.timeout(WAIT_S):
            code = await phone.proc.wait()
    finally:
        await phone.stop()
    assert closed.startswith("closed by the server: 4001 superseded")
    assert code == 1


async def test_a_server_restart_is_named_with_the_seq_to_resume_from() -> None:
    """When the server shuts down, the client says 1012 means a restart and which --last-seq
    resumes where it stopped."""
    async with running_server() as server:
        org = await server.create_org()
        cred = await server.create_worker(org, "Ann", ["electrical"])
        phone = await PhoneProcess.start(server, cred.token)
        try:
            await phone.frame("welcome")
            await phone.type("available")
            await phone.type(f"loc {PARIS[0]} {PARIS[1]}")
            await phone.type("ping")
            await phone.frame("pong")
            await server.post_job(org, *PARIS, skills=["electrical"])
            offer = await phone.frame("offer")
        except BaseException:
            await phone.stop()
            raise
    try:
        closed = await phone.line_with("closed by the server")
    finally:
        await phone.stop()
    resume = f"resume with --last-seq {offer['seq']}"
    assert closed == f"closed by the server: 1012 the server is restarting; {resume}"
