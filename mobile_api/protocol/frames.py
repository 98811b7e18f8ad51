"""What the socket protocols share on the wire: close codes, error frames, encoding.

An error is an ``{"type": "error", "code": …, "message": …}`` frame and the
socket stays up; ``error_for`` is the one mapping of ``dispatch`` errors to
websocket error frames (``mobile_api.errors`` maps them to HTTP statuses).
Close codes used by the server:

====  =====================================================================
1008  policy violation (the worker was deleted or its token revoked)
1009  frame larger than ``FIELDCLOUD_MAX_FRAME_BYTES``
1011  unexpected server error, or the client reads too slowly
1012  server restarting (graceful shutdown); reconnect with ``last_seq``
4001  superseded: the same worker connected again elsewhere
====  =====================================================================
"""

from __future__ import annotations

from typing import Any

from dispatch.errors import DispatchError, NotEligible, OfferClosed

from ..schemas import encoder

CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
CLOSE_RESTART = 1012
CLOSE_SUPERSEDED = 4001

Frame = dict[str, Any]
"""A JSON-ready frame (``type`` plus fields)."""


def encode(frame: Frame) -> str:
    """The text of a websocket text frame carrying ``frame``."""
    return encoder.encode(frame).decode()


def error(code: str, message: str, **extra: Any) -> Frame:
    """An error frame."""
    return {"type": "error", "code": code, "message": message, **extra}


def error_for(exc: DispatchError) -> Frame:
    """The error frame for a domain error raised while carrying out a client's message."""
    if isinstance(exc, OfferClosed):
        return error(exc.code, exc.message, offer_id=exc.offer_id, reason=exc.reason)
    if isinstance(exc, NotEligible) and exc.job_id is not None:
        return error(exc.code, exc.message, job_id=exc.job_id)
    return error(exc.code, exc.message)
