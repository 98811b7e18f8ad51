"""``GET /healthz`` and ``GET /readyz``: liveness and readiness, no authentication."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..errors import json_response
from .common import runtime


async def healthz(request: Request) -> Response:
    """Liveness: the process serves requests (says nothing of PostgreSQL/Redis)."""
    rt = runtime(request)
    return json_response({"status": "ok", "mode": rt.mode})


async def readyz(request: Request) -> Response:
    """Ready when every backing service answers; 503 (with the reason) otherwise."""
    rt = runtime(request)
    if rt.ping is not None:
        await rt.ping()  # raises Unavailable → 503
    return json_response({"status": "ready", "mode": rt.mode})
