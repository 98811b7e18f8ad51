"""What every HTTP handler shares: the runtime, the caller and body decoding.

Handlers live in one module per resource (``orgs``, ``workers``, ``jobs``,
``health``); each names the roles it takes with ``caller`` first (see
``mobile_api.auth``), decodes its body with ``decode_body`` and a ``schemas``
class, calls the service scoped by the caller's ``tenant`` and answers JSON.
Errors propagate as ``ApiError`` / ``DispatchError`` and are rendered by
``mobile_api.errors``.
"""

from __future__ import annotations

from typing import TypeVar

import msgspec
from starlette.requests import Request

from ..auth import Principal, Role, authorize
from ..errors import ApiError
from ..runtime import Runtime

B = TypeVar("B", bound=msgspec.Struct)

MAX_BODY_BYTES = 64 * 1024


def runtime(request: Request) -> Runtime:
    """The running server's ``Runtime`` (built by the app's lifespan)."""
    rt: Runtime = request.app.state.runtime
    return rt


async def caller(request: Request, *roles: Role) -> Principal:
    """The authenticated caller, if its role is one of ``roles`` (else 401 or 403)."""
    rt = runtime(request)
    return await authorize(request.headers, rt.service, rt.admin_token, *roles)


async def decode_body(request: Request, schema: type[B], *, optional: bool = False) -> B:
    """Decode a JSON body into ``schema`` or raise a 4xx ``ApiError``."""
    body = await request.body()
    if not body and optional:
        return schema()
    ctype = request.headers.get("content-type", "")
    if body and not ctype.startswith("application/json"):
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    if len(body) > MAX_BODY_BYTES:
        raise ApiError(413, "too_large", f"body over {MAX_BODY_BYTES} bytes")
    try:
        return msgspec.json.decode(body, type=schema)
    except msgspec.ValidationError as exc:
        raise ApiError(422, "invalid_body", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise ApiError(400, "invalid_json", f"body is not valid JSON: {exc}") from None
