"""``fieldcloud phone``: drive one technician by hand from a terminal.

Connects to ``WS /v1/ws/worker`` with a device token, prints every frame it
receives, and sends what you type. A line is either raw JSON (sent as is) or
a shorthand:

====================  ==============================================
``available``         ``{"type":"status","status":"available"}``
``off`` / ``busy``    ``status`` off_duty / busy
``loc LAT LNG``       ``{"type":"location","lat":…,"lng":…}``
``accept OFFER``      ``{"type":"accept","offer_id":…}``
``decline OFFER``     ``{"type":"decline","offer_id":…}``
``go JOB STATE``      ``{"type":"progress","job_id":…,"state":…}``
``ping``              ``{"type":"ping"}``
====================  ==============================================

``accept`` and ``decline`` without an id use the last offer received.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

SHORTHAND_STATUS = {"available": "available", "off": "off_duty", "busy": "busy"}


def translate(line: str, last_offer: str | None) -> dict[str, Any] | str | None:
    """The frame for one typed line (a dict), raw JSON text, or None to skip."""
    line = line.strip()
    if not line:
        return None
    if line.startswith("{"):
        return line
    word, *args = line.split()
    if word in SHORTHAND_STATUS and not args:
        return {"type": "status", "status": SHORTHAND_STATUS[word]}
    if word == "loc" and len(args) == 2:
        return {"type": "location", "lat": float(args[0]), "lng": float(args[1])}
    if word in ("accept", "decline") and len(args) <= 1:
        offer = args[0] if args else last_offer
        if offer is None:
            raise ValueError("no offer received yet; give an offer id")
        return {"type": word, "offer_id": offer}
    if word == "go" and len(args) == 2:
        return {"type": "progress", "job_id": args[0], "state": args[1]}
    if word == "ping" and not args:
        return {"type": "ping"}
    raise ValueError(f"not understood: {line!r} (see `fieldcloud phone --help`)")


async def run_phone(url: str, token: str, last_seq: int | None) -> int:
    """Connect and relay frames until the server closes or stdin ends."""
    if last_seq is not None:
        url = f"{url}{'&' if '?' in url else '?'}last_seq={last_seq}"
    headers = {"Authorization": f"Bearer {token}"}
    last_offer: str | None = None
    loop = asyncio.get_running_loop()
    async with connect(url, additional_headers=headers) as ws:

        async def reader() -> None:
            nonlocal last_offer
            async for raw in ws:
                print(f"< {raw!s}", flush=True)
                frame = json.loads(raw)
                if frame.get("type") == "offer":
                    last_offer = frame["offer_id"]

        task = asyncio.create_task(reader())
        try:
            while not task.done():
                line = await loop.run_in_executor(None, sys.stdin.readline)
                if not line:
                    break
                try:
                    frame = translate(line, last_offer)
                except ValueError as exc:
                    print(f"! {exc}", flush=True)
                    continue
                if frame is not None:
                    text = frame if isinstance(frame, str) else json.dumps(frame)
                    print(f"> {text}", flush=True)
                    await ws.send(text)
        except ConnectionClosed:
            pass
        finally:
            task.cancel()
    if ws.close_code not in (None, 1000):
        print(f"closed: {ws.close_code} {ws.close_reason}", flush=True)
    return 0
