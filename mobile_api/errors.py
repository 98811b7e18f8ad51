"""How errors leave the server over HTTP: statuses and JSON error bodies.

This module maps ``dispatch`` errors to HTTP statuses; an HTTP error body is
always ``{"error": {"code": …, "message": …}}``. Websocket error frames and
close codes belong to the socket protocols (``protocol.frames``, re-exported
here for the edge's HTTP side).
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from dispatch.errors import (
    DispatchError,
    IllegalTransition,
    InvalidInput,
    NotEligible,
    NotFound,
    OfferClosed,
    Unavailable,
)

from .protocol.frames import (
    CLOSE_INTERNAL,
    CLOSE_POLICY,
    CLOSE_RESTART,
    CLOSE_SUPERSEDED,
    CLOSE_TOO_BIG,
)
from .schemas import encoder

__all__ = [
    "CLOSE_INTERNAL",
    "CLOSE_POLICY",
    "CLOSE_RESTART",
    "CLOSE_SUPERSEDED",
    "CLOSE_TOO_BIG",
    "STATUS",
    "ApiError",
    "describe_validation",
    "error_body",
    "error_response",
    "handle_api_error",
    "handle_dispatch_error",
    "json_response",
    "status_of",
]


class ApiError(Exception):
    """An error raised by the edge itself (auth, body decoding, media type)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


STATUS: dict[type[DispatchError], int] = {
    NotFound: 404,
    InvalidInput: 422,
    IllegalTransition: 409,
    OfferClosed: 409,
    NotEligible: 409,
    Unavailable: 503,
}


def status_of(exc: DispatchError) -> int:
    """The HTTP status for a domain error (500 for an unmapped one)."""
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The JSON body of an HTTP error."""
    return {"error": {"code": code, "message": message, **extra}}


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A JSON response encoded with the shared msgspec encoder."""
    return Response(
        encoder.encode(payload), status_code=status, media_type="application/json", headers=headers
    )


RESPONSE_HEADERS: dict[int, dict[str, str]] = {
    401: {"WWW-Authenticate": 'Bearer realm="fieldcloud"'},
    # The rest of an oversized body is never read, so the connection cannot
    # carry another request: the server closes it after the answer.
    413: {"Connection": "close"},
    503: {"Retry-After": "1"},
}
"""Headers that an error response of each status carries."""


def error_response(status: int, code: str, message: str, **extra: Any) -> Response:
    """A JSON error response, with its status's ``RESPONSE_HEADERS``."""
    return json_response(error_body(code, message, **extra), status, RESPONSE_HEADERS.get(status))


async def handle_api_error(request: Request, exc: Exception) -> Response:
    """An ``ApiError`` raised by the edge, with its own status and code."""
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message)


async def handle_dispatch_error(request: Request, exc: Exception) -> Response:
    """A domain error with the status ``STATUS`` gives its class (an offer's close reason too)."""
    assert isinstance(exc, DispatchError)
    extra: dict[str, Any] = {}
    reason = exc.reason if isinstance(exc, OfferClosed | NotEligible) else None
    if reason is not None:
        extra["reason"] = reason
    return error_response(status_of(exc), exc.code, exc.message, **extra)


def describe_validation(exc: msgspec.ValidationError | msgspec.DecodeError) -> str:
    """msgspec's message, which names the offending path (``$.lat``)."""
    return str(exc)
