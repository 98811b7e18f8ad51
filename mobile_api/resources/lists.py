"""The dispatcher's reads: ``GET /v1/workers``, ``GET /v1/jobs`` and a job's candidates.

Dispatcher tokens and the organisation's key may call them; every list is
scoped by the caller's organisation (another's records are never in it).
Lists are pages in id order: ``{"items": […], "next_cursor": …}``; pass
``next_cursor`` as ``cursor`` for the next page (``mobile_api.queries``).
"""

from __future__ import annotations

import math

from starlette.requests import Request
from starlette.responses import Response

from dispatch.console import Console

from ..auth import Role
from ..errors import ApiError, json_response
from ..queries import encode_cursor, job_query, worker_query
from ..views import candidate_view, job_item, page_view, worker_item
from .common import caller, runtime

READERS = (Role.ORG, Role.DISPATCHER)
"""Who may read the lists."""

MAX_CANDIDATES = 200
MAX_CANDIDATE_RADIUS_M = 200_000.0


async def list_workers(request: Request) -> Response:
    """``GET /v1/workers``: a page of the organisation's workers, filtered."""
    rt = runtime(request)
    org_id = (await caller(request, *READERS)).tenant
    page = await Console(rt.service).workers(org_id, worker_query(request.query_params))
    return json_response(page_view([worker_item(w) for w in page.items], encode_cursor(page.last)))


async def list_jobs(request: Request) -> Response:
    """``GET /v1/jobs``: a page of the organisation's jobs with their pending offers."""
    rt = runtime(request)
    org_id = (await caller(request, *READERS)).tenant
    page = await Console(rt.service).jobs(org_id, job_query(request.query_params))
    return json_response(page_view([job_item(j) for j in page.items], encode_cursor(page.last)))


async def job_candidates(request: Request) -> Response:
    """``GET /v1/jobs/{job_id}/candidates``: nearby workers, ranked or with the reason out.

    ``radius_m`` (default: what a re-offer would reach; 1 m to 200 km) and
    ``limit`` (default 50, at most 200) are optional.
    """
    rt = runtime(request)
    org_id = (await caller(request, *READERS)).tenant
    params = request.query_params
    unknown = sorted(set(params.keys()) - {"radius_m", "limit"})
    if unknown:
        raise ApiError(400, "invalid_query", f"unknown parameter {unknown[0]!r}")
    radius = _number(params.get("radius_m"), "radius_m", 1.0, MAX_CANDIDATE_RADIUS_M)
    limit = _number(params.get("limit"), "limit", 1, MAX_CANDIDATES)
    found = await Console(rt.service).candidates(
        org_id,
        request.path_params["job_id"],
        radius,
        50 if limit is None else int(limit),
    )
    return json_response({"items": [candidate_view(c) for c in found]})


def _number(text: str | None, name: str, low: float, high: float) -> float | None:
    """An optional numeric query parameter within ``[low, high]``; 400 otherwise."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not low <= value <= high:
        raise ApiError(400, "invalid_query", f"{name} must be a number from {low:g} to {high:g}")
    return value
