"""Bearer-token authentication for HTTP requests and websocket handshakes.

Three kinds of caller, each with its own secret:

* the bootstrap **admin** (``FIELDCLOUD_ADMIN_TOKEN``): creates organisations;
* an **organisation** (its API key): manages its workers and jobs;
* a **worker device** (its device token): opens ``/v1/ws/worker``.

Secrets are compared by their digest via the stores (an index probe), and the
admin token with ``hmac.compare_digest``. A missing or malformed header and a
wrong secret both answer 401; a valid secret of the wrong kind answers 403.
"""

from __future__ import annotations

import hmac

from starlette.datastructures import Headers

from dispatch.models import Organisation, Worker
from dispatch.service import DispatchService

from .errors import ApiError


def bearer(headers: Headers) -> str:
    """The token of an ``Authorization: Bearer …`` header, or ``ApiError`` 401."""
    value = headers.get("authorization")
    if not value:
        raise ApiError(401, "unauthenticated", "missing Authorization: Bearer <token> header")
    scheme, _, token = value.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 512:
        raise ApiError(401, "unauthenticated", "Authorization must be 'Bearer <token>'")
    return token


async def require_admin(headers: Headers, admin_token: str, service: DispatchService) -> None:
    """Pass only the bootstrap admin token (an organisation's key gets 403)."""
    token = bearer(headers)
    if _is_admin(token, admin_token):
        return
    if await service.org_for_key(token) is not None:
        raise ApiError(403, "forbidden", "this call needs the admin token")
    raise ApiError(401, "unauthenticated", "unknown token")


async def require_org(headers: Headers, service: DispatchService, admin_token: str) -> Organisation:
    """The organisation whose API key is presented."""
    token = bearer(headers)
    org = await service.org_for_key(token)
    if org is not None:
        return org
    if _is_admin(token, admin_token) or await service.worker_for_token(token) is not None:
        raise ApiError(403, "forbidden", "this call needs an organisation API key")
    raise ApiError(401, "unauthenticated", "unknown API key")


async def require_worker(headers: Headers, service: DispatchService, admin_token: str) -> Worker:
    """The worker whose device token is presented."""
    token = bearer(headers)
    worker = await service.worker_for_token(token)
    if worker is not None:
        return worker
    if _is_admin(token, admin_token) or await service.org_for_key(token) is not None:
        raise ApiError(403, "forbidden", "this connection needs a worker device token")
    raise ApiError(401, "unauthenticated", "unknown device token")


def _is_admin(token: str, admin_token: str) -> bool:
    return hmac.compare_digest(token.encode(), admin_token.encode())
