"""The server's log says what happens: a start line, one INFO line per domain event, no secret."""

from __future__ import annotations

import logging

import pytest

from tests.mobile_api.live import ADMIN_TOKEN, PARIS, StartServer, offset, running_server


@pytest.fixture
def info_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """The ``fieldcloud`` loggers at INFO, captured."""
    caplog.set_level(logging.INFO, logger="fieldcloud")
    return caplog


def dispatch_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "fieldcloud.dispatch" and r.levelno == logging.INFO
    ]


async def test_an_instance_logs_its_mode_and_settings_once_at_start(
    info_logs: pytest.LogCaptureFixture, start_server: StartServer
) -> None:
    """The first INFO line names the instance, its mode and its settings, not the admin token."""
    server = await start_server()
    starts = [r.getMessage() for r in info_logs.records if "started" in r.getMessage()]
    assert len(starts) == 1
    line = starts[0]
    assert "mode in-process (memory stores" in line
    assert "waves of 5 over 2000/5000/15000/40000 m" in line
    assert server.settings.admin_token not in line  # type: ignore[operator]


async def test_a_jobs_life_is_one_info_line_per_event(
    info_logs: pytest.LogCaptureFixture, start_server: StartServer
) -> None:
    """Posted, wave sent, assigned, completed; a cancel and an unfilled job get a line each."""
    server = await start_server()
    org = await server.create_org()
    phone = await server.on_duty(org, "Ann", ["electrical"], offset(PARIS, 100, 0))
    job = await server.post_job(org, *PARIS, skills=["electrical"])
    offer = await phone.recv_type("offer")
    await phone.send({"type": "accept", "offer_id": offer["offer_id"]})
    await phone.recv_type("assigned")
    for state in ("en_route", "on_site", "completed"):
        step = {"type": "progress", "job_id": job["id"], "state": state}
        assert (await phone.request(step, "progress"))["state"] == state
    nobody = await server.post_job(org, *PARIS, skills=["plumbing"])  # nobody has the skill
    cancelled = await server.post_job(org, *offset(PARIS, 50, 90), skills=["electrical"])
    await phone.recv_type("offer")
    await server.cancel_job(org, cancelled["id"], "duplicate")

    lines = dispatch_lines(info_logs)
    mine = [line for line in lines if job["id"] in line]
    assert [line.split()[2] for line in mine] == ["posted", "wave", "assigned", "completed"]
    assert "wave 1 sent to 1 worker(s) within 2000 m" in mine[1]
    assert phone.worker_id in mine[2]
    assert f"job {nobody['id']} unfilled after 4 wave(s)" in lines
    assert f"job {cancelled['id']} cancelled (duplicate) by org {org.id}" in lines


async def test_no_token_or_key_reaches_any_log_even_with_the_access_log_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With FIELDCLOUD_ACCESS_LOG on and DEBUG logs, requests are logged and no secret is."""
    caplog.set_level(logging.DEBUG, logger="fieldcloud")
    access = _Collect()
    loggers = [logging.getLogger(name) for name in ("uvicorn.access", "uvicorn.error")]
    async with running_server(access_log=True, log_level="debug") as server:
        for logger in loggers:  # uvicorn's loggers do not propagate: listen to them directly
            logger.addHandler(access)
        try:
            org = await server.create_org()
            cred = await server.create_worker(org, "Ann", ["electrical"])
            phone = await server.connect_worker(cred.token)
            job = await server.post_job(org, *PARIS)
            missing = await server.http.get("/v1/jobs/job_missing", headers=org.headers)
            await phone.close()
        finally:
            for logger in loggers:
                logger.removeHandler(access)
    assert missing.status_code == 404
    assert any('"POST /v1/jobs HTTP/1.1" 201' in m for m in access.messages), access.messages
    everything = access.messages + [r.getMessage() for r in caplog.records]
    assert any(job["id"] in m for m in everything)  # the domain events are there
    leaks = [m for m in everything for s in (ADMIN_TOKEN, org.key, cred.token) if s in m]
    assert leaks == []


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
