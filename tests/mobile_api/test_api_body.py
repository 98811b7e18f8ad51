"""A request body is capped while it is read: past the cap the server answers 413 and stops.

The HTTP cases talk to a real uvicorn server over a raw TCP connection, so that
the client can announce a length it never sends, stream chunks without an end,
or send more than it announced — what an HTTP library would not let it do.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
from starlette.requests import Request
from starlette.types import Message

from mobile_api.errors import ApiError
from mobile_api.resources.common import MAX_BODY_BYTES, read_body
from tests.mobile_api.live import PARIS, WAIT_S, LiveServer, Org

CHUNK = 8 * 1024
JOB = json.dumps({"title": "Fix lamp", "lat": PARIS[0], "lng": PARIS[1]}).encode()


@dataclass
class Answer:
    """An HTTP response read off a raw connection."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def code(self) -> str:
        code: str = json.loads(self.body)["error"]["code"]
        return code


class Raw:
    """One TCP connection to the server, written and read byte for byte."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, server: LiveServer) -> Raw:
        url = urlsplit(server.base_url)
        assert url.hostname is not None
        assert url.port is not None
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def head(self, org: Org, *lines: str) -> None:
        """Send a ``POST /v1/jobs`` request head with ``lines`` as extra header lines."""
        head = [
            "POST /v1/jobs HTTP/1.1",
            "Host: 127.0.0.1",
            f"Authorization: Bearer {org.key}",
            "Content-Type: application/json",
            *lines,
        ]
        await self.send(("\r\n".join(head) + "\r\n\r\n").encode())

    async def answer(self) -> Answer:
        """The next response (its body read by its ``Content-Length``)."""
        async with asyncio.timeout(WAIT_S):
            status_line, *lines = (await self.reader.readuntil(b"\r\n\r\n")).decode().split("\r\n")
            headers = {}
            for line in lines:
                if line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return Answer(int(status_line.split()[1]), headers, body)

    async def rest_until_closed(self) -> bytes:
        """Whatever the server still sends until it closes the connection (fails if it never
        does)."""
        async with asyncio.timeout(WAIT_S):
            return await self.reader.read()

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


@pytest.fixture
async def org(server: LiveServer) -> Org:
    return await server.create_org("Plant")


@pytest.fixture
async def raw(server: LiveServer) -> AsyncIterator[Raw]:
    conn = await Raw.open(server)
    try:
        yield conn
    finally:
        await conn.close()


def chunked(data: bytes) -> bytes:
    """``data`` as one HTTP/1.1 chunk."""
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


async def test_a_declared_length_over_the_cap_is_refused_before_the_body_is_sent(
    raw: Raw, org: Org
) -> None:
    """A Content-Length over the cap answers 413 at once and closes; no byte is awaited."""
    await raw.head(org, f"Content-Length: {MAX_BODY_BYTES + 1}")
    answer = await raw.answer()
    assert (answer.status, answer.code) == (413, "too_large")
    assert answer.headers["connection"] == "close"
    assert await raw.rest_until_closed() == b""


async def test_a_chunked_body_is_cut_off_at_the_cap_before_it_ends(raw: Raw, org: Org) -> None:
    """Chunks past the cap answer 413 although the body has not ended (no length, no last
    chunk), and the connection is closed."""
    await raw.head(org, "Transfer-Encoding: chunked")
    for _ in range(MAX_BODY_BYTES // CHUNK + 1):
        await raw.send(chunked(b" " * CHUNK))
    answer = await raw.answer()
    assert (answer.status, answer.code) == (413, "too_large")
    assert answer.headers["connection"] == "close"
    assert await raw.rest_until_closed() == b""


async def test_a_chunked_body_under_the_cap_is_read_whole(raw: Raw, org: Org) -> None:
    """A body in several chunks, under the cap, is read to its end and creates the job."""
    await raw.head(org, "Transfer-Encoding: chunked")
    padded = JOB + b" " * (MAX_BODY_BYTES - len(JOB))
    for start in range(0, len(padded), CHUNK):
        await raw.send(chunked(padded[start : start + CHUNK]))
    await raw.send(b"0\r\n\r\n")
    answer = await raw.answer()
    assert answer.status == 201, answer.body
    assert json.loads(answer.body)["title"] == "Fix lamp"


async def test_a_body_longer_than_its_content_length_is_not_read_past_it(
    server: LiveServer, raw: Raw, org: Org
) -> None:
    """Bytes beyond the declared length never reach the handler as body: they are a broken
    next request (400, connection closed), whether or not the handler judged the declared
    part first (not JSON: 400 too), and the server goes on serving."""
    await raw.head(org, "Content-Length: 16")
    await raw.send(JOB + b" " * (MAX_BODY_BYTES + CHUNK))
    assert (await raw.answer()).status == 400
    await raw.rest_until_closed()
    assert (await server.http.get("/healthz")).status_code == 200


class Endless:
    """An ASGI ``receive`` that hands out body chunks for ever, counting them."""

    def __init__(self) -> None:
        self.handed = 0

    async def __call__(self) -> Message:
        self.handed += 1
        return {"type": "http.request", "body": b"x" * CHUNK, "more_body": True}


def request_claiming(length: int, receive: Endless) -> Request:
    """A request whose headers claim ``length`` bytes, whatever ``receive`` delivers."""
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/jobs",
        "headers": [(b"content-length", str(length).encode())],
    }
    return Request(scope, receive)


@pytest.mark.parametrize("claimed", [10, MAX_BODY_BYTES])
async def test_reading_stops_at_the_first_chunk_past_the_cap_whatever_the_length_claims(
    claimed: int,
) -> None:
    """A body that outgrows the length its headers claim is cut off at the cap: 413, and not
    one chunk is read after the one that crossed it."""
    receive = Endless()
    with pytest.raises(ApiError) as raised:
        await read_body(request_claiming(claimed, receive))
    assert raised.value.status == 413
    assert receive.handed == MAX_BODY_BYTES // CHUNK + 1


async def test_a_claimed_length_over_the_cap_reads_nothing() -> None:
    """A claimed length over the cap is refused before the first chunk is asked for."""
    receive = Endless()
    with pytest.raises(ApiError) as raised:
        await read_body(request_claiming(MAX_BODY_BYTES + 1, receive))
    assert raised.value.status == 413
    assert receive.handed == 0
