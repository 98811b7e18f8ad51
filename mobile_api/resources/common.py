"""What every HTTP handler shares: the runtime, the caller and body decoding.

Handlers live in one module per resource (``orgs``, ``workers``, ``jobs``,
``health``); each names the roles it takes with ``caller`` first (see
``mobile_api.auth``), decodes its body with ``decode_body`` and a ``schemas``
class, calls the service scoped by the caller's ``tenant`` and answers JSON.
Errors propagate as ``ApiError`` / ``DispatchError`` and are rendered by
``mobile_api.errors``.

Handlers read a request body only through ``read_body`` (or ``decode_body``
on top of it), never ``request.body()``: it stops at ``MAX_BODY_BYTES`` as
the bytes arrive. A ``Content-Length`` over the cap is refused before
anything is read, and a chunked body, or one longer than its
``Content-Length`` claims (which a server in front may let through), is cut
off at the first chunk past the cap. Either answers 413, and the connection
is closed (``errors.error_response``) rather than read to its end.
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
"""The largest request body taken; a longer one answers 413."""


def runtime(request: Request) -> Runtime:
    """The running server's ``Runtime`` (built by the app's lifespan)."""
    rt: Runtime = request.app.state.runtime
    return rt


async def caller(request: Request, *roles: Role) -> Principal:
    """The authenticated caller, if its role is one of ``roles`` (else 401 or 403)."""
    rt = runtime(request)
    return await authorize(request.headers, rt.service, rt.admin_token, *roles)


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, read while it is at most ``limit`` bytes; ``ApiError`` 413 past it."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "too_large", f"body over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "too_large", f"body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def decode_body(request: Request, schema: type[B], *, optional: bool = False) -> B:
    """Decode a JSON body into ``schema`` or raise a 4xx ``ApiError``.

    ``optional``: an empty body stands for ``schema()`` (all defaults). The
    media type is checked before the body is read whenever one is announced.
    """
    if _announces_body(request) and not _is_json(request):
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    body = await read_body(request)
    if not body and optional:
        return schema()
    try:
        return msgspec.json.decode(body, type=schema)
    except msgspec.ValidationError as exc:
        raise ApiError(422, "invalid_body", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise ApiError(400, "invalid_json", f"body is not valid JSON: {exc}") from None


def _announces_body(request: Request) -> bool:
    """Whether the headers say a body follows (a length other than 0, or chunks)."""
    headers = request.headers
    return headers.get("content-length", "0") != "0" or "transfer-encoding" in headers


def _is_json(request: Request) -> bool:
    return request.headers.get("content-type", "").startswith("application/json")
