"""``/v1/dispatchers``: an organisation's control-room people and their tokens.

Only the organisation's key manages dispatchers (a dispatcher cannot mint
another). A token is shown once, at creation; ``DELETE`` revokes it for good
and answers the dispatcher with ``revoked_at`` set (again on a repeat).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from dispatch.console import Console

from ..auth import Role
from ..errors import json_response
from ..schemas import CreateDispatcher
from ..views import dispatcher_view
from .common import caller, decode_body, runtime


async def create_dispatcher(request: Request) -> Response:
    """``POST /v1/dispatchers`` (organisation key): a dispatcher and their token; 201."""
    rt = runtime(request)
    org_id = (await caller(request, Role.ORG)).tenant
    body = await decode_body(request, CreateDispatcher)
    dispatcher, token = await Console(rt.service).create_dispatcher(org_id, body.name)
    return json_response(
        {**dispatcher_view(dispatcher), "token": token},
        201,
        {"Location": f"/v1/dispatchers/{dispatcher.id}"},
    )


async def list_dispatchers(request: Request) -> Response:
    """``GET /v1/dispatchers`` (organisation key): every dispatcher, revoked ones too."""
    rt = runtime(request)
    org_id = (await caller(request, Role.ORG)).tenant
    found = await Console(rt.service).dispatchers(org_id)
    return json_response({"items": [dispatcher_view(d) for d in found]})


async def revoke_dispatcher(request: Request) -> Response:
    """``DELETE /v1/dispatchers/{dispatcher_id}`` (organisation key): revoke; 404 if foreign."""
    rt = runtime(request)
    org_id = (await caller(request, Role.ORG)).tenant
    console = Console(rt.service)
    revoked = await console.revoke_dispatcher(org_id, request.path_params["dispatcher_id"])
    return json_response(dispatcher_view(revoked))
