"""The ceiling: a bare websocket server on the same stack as fieldcloud.

A tiny Starlette app under *the same* uvicorn configuration
(:func:`mobile_api.server.uvicorn_config`: uvloop, httptools, websockets-sansio,
the same frame cap and keepalive). Its ``/v1/ws/worker`` accepts anyone, decodes
every frame with the phone decoder (msgspec, the same schema validation) and
answers ``ping`` with ``pong``; nothing else. What fieldcloud does per frame
beyond that is what the ingest ratio measures. ``/healthz`` answers 200.

Run by the bench as ``python -m bench.bare --port N``.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Sequence

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from dispatch.notices import iso
from mobile_api.schemas import PingMsg, encoder, phone_decoder
from mobile_api.server import build_server
from mobile_api.settings import Settings


async def healthz(request: Request) -> Response:
    return Response(b'{"status":"ok","mode":"bare"}', media_type="application/json")


async def bare_socket(ws: WebSocket) -> None:
    """Decode each frame; answer pings; nothing else."""
    await ws.accept()
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is None:
            continue
        try:
            msg = phone_decoder.decode(text)
        except msgspec.DecodeError:
            continue
        if isinstance(msg, PingMsg):
            pong = {"type": "pong", "server_time": iso(time.time())}
            await ws.send_text(encoder.encode(pong).decode())


def create_bare_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            WebSocketRoute("/v1/ws/worker", bare_socket),
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bare")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    settings = Settings(host="127.0.0.1", port=args.port)
    with contextlib.suppress(KeyboardInterrupt):
        build_server(create_bare_app(), settings).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
