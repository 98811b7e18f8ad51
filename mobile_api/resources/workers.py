"""``/v1/workers``: an organisation's technicians and their device tokens.

``GET /v1/workers/{id}`` adds ``connected``: whether the worker's phone holds a
socket right now (``status`` is the last availability it reported, which
stays as it was when the phone goes away).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..auth import require_org
from ..errors import json_response
from ..schemas import CreateWorker
from ..views import worker_view
from .common import decode_body, runtime


async def create_worker(request: Request) -> Response:
    rt = runtime(request)
    org = await require_org(request.headers, rt.service, rt.admin_token)
    body = await decode_body(request, CreateWorker)
    worker, token = await rt.service.create_worker(org.id, body.name, body.kind, body.skills)
    return json_response({**worker_view(worker), "token": token}, 201)


async def get_worker(request: Request) -> Response:
    rt = runtime(request)
    org = await require_org(request.headers, rt.service, rt.admin_token)
    worker = await rt.service.get_worker(org.id, request.path_params["worker_id"])
    return json_response({**worker_view(worker), "connected": await rt.connected(worker.id)})
