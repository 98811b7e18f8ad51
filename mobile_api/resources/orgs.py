"""``/v1/orgs``: organisations, created with the bootstrap admin token."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..auth import require_admin
from ..errors import json_response
from ..schemas import CreateOrg
from ..views import org_view
from .common import decode_body, runtime


async def create_org(request: Request) -> Response:
    rt = runtime(request)
    await require_admin(request.headers, rt.admin_token, rt.service)
    body = await decode_body(request, CreateOrg)
    org, key = await rt.service.create_org(body.name)
    return json_response({**org_view(org), "api_key": key}, 201)
