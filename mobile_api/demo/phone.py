"""``fieldcloud phone``: drive one technician by hand from a terminal.

Connects to ``WS /v1/ws/worker`` with a device token, prints every frame it
receives (``<``) and sends what you type (``>``): raw JSON, sent as is, or one
of the ``SHORTHANDS`` (``fieldcloud phone --help`` lists them). ``accept`` and
``decline`` without an id answer the newest offer still open; ``go`` without a
job id works the job last assigned. A line that does not fit gets its usage
line and nothing is sent.

When the server closes the socket the client says so at once, with the close
code and reason (and the ``--last-seq`` to resume with), and exits: 0 after a
normal close (1000) or the end of input, 1 otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

SHORTHAND_STATUS = {"available": "available", "off": "off_duty", "busy": "busy"}
PROGRESS_STATES = ("en_route", "on_site", "completed")

SHORTHANDS: tuple[tuple[str, str], ...] = (
    ("available", "go available (status available): offers can come"),
    ("busy | off", "status busy / off_duty: pending offers are withdrawn"),
    ("loc LAT LNG", "report a position, e.g. loc 45.7640 4.8357"),
    ("accept [OFFER]", "take an offer (default: the newest offer still open)"),
    ("decline [OFFER]", "refuse an offer (default: the newest offer still open)"),
    ("go [JOB] STATE", "work a job: STATE is en_route, on_site or completed (default JOB: yours)"),
    ("release [REASON]", "hand your job back before arriving (it is offered to others)"),
    ("ping", "application ping, answered with pong"),
    ('{"type": ...}', "any JSON frame, sent as is (docs/protocol.md)"),
)
"""What a typed line may be: (usage, what it does). ``--help`` prints this table."""

USAGE = {
    "available": "available",
    "busy": "busy",
    "off": "off",
    "loc": "loc LAT LNG",
    "accept": "accept [OFFER]",
    "decline": "decline [OFFER]",
    "go": "go [JOB] STATE",
    "release": "release [REASON]",
    "ping": "ping",
}
"""Each shorthand's usage line, by its first word."""


CLOSE_MEANINGS = {
    1000: "normal closure",
    1001: "the server is going away",
    1009: "a frame was too large",
    1011: "the server could not keep up, or failed",
    1012: "the server is restarting",
    4001: "the same worker connected elsewhere",
}
"""What docs/protocol.md says a close code means, for a close that gives no reason."""


class UsageError(ValueError):
    """A typed line that is not a frame; the message is a usage line."""


def shorthand_help() -> str:
    """The shorthand table, as ``fieldcloud phone --help`` shows it."""
    width = max(len(usage) for usage, _ in SHORTHANDS)
    rows = [f"  {usage:<{width}}  {meaning}" for usage, meaning in SHORTHANDS]
    return "type one line per frame:\n" + "\n".join(rows)


@dataclass
class PhoneState:
    """What the client remembers from the frames it received."""

    open_offers: list[str] = field(default_factory=list)
    """Offers received and not yet closed, oldest first."""
    last_offer: str | None = None
    job: str | None = None
    """The job last assigned to this worker."""
    last_seq: int | None = None

    def saw(self, frame: dict[str, Any]) -> None:
        """Update from one received frame."""
        if isinstance(frame.get("seq"), int):
            self.last_seq = max(self.last_seq or 0, frame["seq"])
        kind = frame.get("type")
        if kind == "offer":
            self.last_offer = str(frame["offer_id"])
            self.open_offers.append(self.last_offer)
        elif kind in ("offer_closed", "assigned", "declined"):
            offer = frame.get("offer_id")
            if offer in self.open_offers:
                self.open_offers.remove(offer)
            if kind == "assigned":
                self.job = str(frame["job_id"])
        elif kind in ("job_cancelled", "released") and frame.get("job_id") == self.job:
            self.job = None

    def offer(self) -> str | None:
        """The offer ``accept``/``decline`` answer when no id is given."""
        return self.open_offers[-1] if self.open_offers else self.last_offer


def _usage(word: str, why: str = "") -> UsageError:
    return UsageError(f"usage: {USAGE[word]}{f' ({why})' if why else ''}")


def translate(line: str, state: PhoneState | None = None) -> dict[str, Any] | str | None:
    """The frame for one typed line (a dict), raw JSON text, or None to skip.

    Raises ``UsageError`` (its message a usage line) when the line does not fit.
    """
    state = PhoneState() if state is None else state
    line = line.strip()
    if not line:
        return None
    if line.startswith("{"):
        return line
    word, *args = line.split()
    if word in SHORTHAND_STATUS:
        if args:
            raise _usage(word, "no argument")
        return {"type": "status", "status": SHORTHAND_STATUS[word]}
    if word == "loc":
        if len(args) != 2:
            raise _usage(word, "two numbers: latitude and longitude")
        try:
            lat, lng = float(args[0]), float(args[1])
        except ValueError:
            raise _usage(word, "LAT and LNG are numbers in degrees") from None
        return {"type": "location", "lat": lat, "lng": lng}
    if word in ("accept", "decline"):
        if len(args) > 1:
            raise _usage(word, "at most one offer id")
        offer = args[0] if args else state.offer()
        if offer is None:
            raise _usage(word, "no offer received yet; give an offer id")
        return {"type": word, "offer_id": offer}
    if word == "go":
        if not 1 <= len(args) <= 2 or args[-1] not in PROGRESS_STATES:
            raise _usage(word, f"STATE is one of {', '.join(PROGRESS_STATES)}")
        job = args[0] if len(args) == 2 else state.job
        if job is None:
            raise _usage(word, "no job assigned yet; give a job id")
        return {"type": "progress", "job_id": job, "state": args[-1]}
    if word == "release":
        if state.job is None:
            raise _usage(word, "no job assigned to you")
        return {"type": "release", "job_id": state.job, "reason": " ".join(args)}
    if word == "ping":
        if args:
            raise _usage(word, "no argument")
        return {"type": "ping"}
    raise UsageError(
        f"not understood: {line!r}; type one of {', '.join(USAGE)}, or a JSON frame"
        " (fieldcloud phone --help)"
    )


def _read_lines(stdin: TextIO, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str]) -> None:
    """Feed typed lines to ``queue`` ("" at the end of input); runs in a daemon thread."""
    try:
        for line in stdin:
            loop.call_soon_threadsafe(queue.put_nowait, line)
    except (OSError, ValueError):
        pass
    finally:
        # A closed loop means the client is exiting anyway.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(queue.put_nowait, "")


async def run_phone(
    url: str,
    token: str,
    last_seq: int | None,
    *,
    stdin: TextIO | None = None,
    out: TextIO | None = None,
) -> int:
    """Connect and relay frames until the server closes or the input ends; the exit code."""
    stdin = sys.stdin if stdin is None else stdin
    out = sys.stdout if out is None else out

    def say(text: str) -> None:
        out.write(text + "\n")
        out.flush()

    if last_seq is not None:
        url = f"{url}{'&' if '?' in url else '?'}last_seq={last_seq}"
    headers = {"Authorization": f"Bearer {token}"}
    try:
        ws = await connect(url, additional_headers=headers, open_timeout=10)
    except InvalidStatus as exc:
        body = exc.response.body.decode(errors="replace").strip() if exc.response.body else ""
        say(f"! the server refused the connection: HTTP {exc.response.status_code} {body}")
        return 1
    except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
        say(f"! cannot connect to {url}: {exc}")
        return 1
    state = PhoneState()
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str] = asyncio.Queue()
    threading.Thread(
        target=_read_lines, args=(stdin, loop, lines), name="phone-stdin", daemon=True
    ).start()
    reader = asyncio.create_task(_receive(ws, state, say))
    we_closed = False
    try:
        while True:
            typed = asyncio.create_task(lines.get())
            await asyncio.wait({typed, reader}, return_when=asyncio.FIRST_COMPLETED)
            if not typed.done():
                typed.cancel()
                break  # the server closed the socket
            line = typed.result()
            if not line:
                break  # end of input
            try:
                frame = translate(line, state)
            except UsageError as exc:
                say(f"! {exc}")
                continue
            if frame is None:
                continue
            text = frame if isinstance(frame, str) else json.dumps(frame)
            say(f"> {text}")
            try:
                await ws.send(text)
            except ConnectionClosed:
                break
    finally:
        if not reader.done():
            we_closed = True
            await ws.close()
        await reader
    if we_closed:
        return 0
    resume = "" if state.last_seq is None else f"; resume with --last-seq {state.last_seq}"
    received = ws.protocol.close_rcvd
    if received is None:
        say(f"the connection dropped (no close frame){resume}")
        return 1
    code, reason = received.code, received.reason or CLOSE_MEANINGS.get(received.code, "")
    say(f"closed by the server: {code}{f' {reason}' if reason else ''}{resume}")
    return 0 if code == 1000 else 1


async def _receive(ws: ClientConnection, state: PhoneState, say: Callable[[str], None]) -> None:
    """Print every received frame until the connection ends."""
    try:
        async for raw in ws:
            say(f"< {raw!s}")
            try:
                frame = json.loads(raw)
            except ValueError:
                continue
            if isinstance(frame, dict):
                state.saw(frame)
    except ConnectionClosed:
        pass
