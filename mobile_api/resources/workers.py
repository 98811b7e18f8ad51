"""``/v1/workers``: an organisation's technicians and their device tokens.

``GET /v1/workers/{id}`` adds ``connected``: whether the worker's phone holds a
socket right now (``status`` is the last availability it reported, which
stays as it was when the phone goes away).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..auth import Role
from ..errors import json_response
from ..schemas import CreateWorker
from ..views import worker_view
from .common import caller, decode_body, runtime


async def create_worker(request: Request) -> Response:
    """``POST /v1/workers`` (organisation key): a worker and its device token, shown once; 201."""
    rt = runtime(request)
    org_id = (await caller(request, Role.ORG)).tenant
    body = await decode_body(request, CreateWorker)
    worker, token = await rt.service.create_worker(org_id, body.name, body.kind, body.skills)
    return json_response({**worker_view(worker), "token": token}, 201)


async def get_worker(request: Request) -> Response:
    """``GET /v1/workers/{worker_id}`` (organisation key or dispatcher): status and last fix;
    404 if foreign."""
    rt = runtime(request)
    org_id = (await caller(request, Role.ORG, Role.DISPATCHER)).tenant
    worker = await rt.service.get_worker(org_id, request.path_params["worker_id"])
    return json_response({**worker_view(worker), "connected": await rt.connected(worker.id)})
