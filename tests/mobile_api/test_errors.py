"""Domain errors leave the edge with the status and body their class promises."""

from __future__ import annotations

import json

import pytest
from starlette.requests import Request

from dispatch.errors import (
    DispatchError,
    IllegalTransition,
    InvalidInput,
    NotEligible,
    NotFound,
    OfferClosed,
    Unavailable,
)
from mobile_api.errors import STATUS, handle_dispatch_error, status_of
from mobile_api.protocol.frames import error_for

EXAMPLES: list[DispatchError] = [
    NotFound("job", "job_x"),
    InvalidInput("bad skill"),
    IllegalTransition("job job_x", "open", "completed"),
    OfferClosed("off_x", "taken"),
    NotEligible("busy"),
    Unavailable("redis is away"),
]


def test_every_domain_error_has_a_status_of_its_own() -> None:
    """Each class of the dispatch error tree is mapped (and only those)."""
    assert set(STATUS) == {type(e) for e in EXAMPLES}
    assert [status_of(e) for e in EXAMPLES] == [404, 422, 409, 409, 409, 503]


def test_a_subclass_answers_as_its_parent_and_an_unmapped_error_as_500() -> None:
    """A new error below a mapped class gets that class's status; one below the root, 500."""

    class Gone(NotFound):
        pass

    class Surprise(DispatchError):
        pass

    assert status_of(Gone("job", "job_x")) == 404
    assert status_of(Surprise("?")) == 500


@pytest.mark.parametrize("exc", EXAMPLES, ids=lambda e: type(e).__name__)
async def test_an_http_error_body_names_the_code_and_a_closed_offer_its_reason(
    exc: DispatchError,
) -> None:
    """The JSON body carries the error's code and message; 503 says when to retry."""
    request = Request({"type": "http", "method": "GET", "path": "/", "headers": []})
    response = await handle_dispatch_error(request, exc)
    body = json.loads(bytes(response.body))["error"]
    assert (response.status_code, body["code"], body["message"]) == (
        status_of(exc),
        exc.code,
        exc.message,
    )
    assert body.get("reason") == (exc.reason if isinstance(exc, OfferClosed) else None)
    assert ("retry-after" in response.headers) == (response.status_code == 503)


def test_a_socket_error_frame_names_the_code_and_a_closed_offer_its_offer() -> None:
    """A phone's error frame has the code and message; a closed offer adds id and reason."""
    assert error_for(NotEligible("busy")) == {
        "type": "error",
        "code": "not_eligible",
        "message": "busy",
    }
    closed = error_for(OfferClosed("off_x", "expired"))
    assert (closed["offer_id"], closed["reason"]) == ("off_x", "expired")
