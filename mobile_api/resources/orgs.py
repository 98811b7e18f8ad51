"""``/v1/orgs``: organisations, created with the bootstrap admin token."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..auth import Role
from ..errors import json_response
from ..schemas import CreateOrg
from ..views import org_view
from .common import caller, decode_body, runtime


async def create_org(request: Request) -> Response:
    """``POST /v1/orgs`` (admin token): a new organisation and its API key, shown once; 201."""
    rt = runtime(request)
    await caller(request, Role.ADMIN)
    body = await decode_body(request, CreateOrg)
    org, key = await rt.service.create_org(body.name)
    return json_response({**org_view(org), "api_key": key}, 201)
