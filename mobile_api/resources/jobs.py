"""``/v1/jobs``: work orders; posting one sends its first wave of offers."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from dispatch.console import Console

from ..auth import Role
from ..errors import json_response
from ..schemas import CancelJob, CreateJob
from ..views import job_detail_view, job_view
from .common import caller, decode_body, runtime


async def create_job(request: Request) -> Response:
    """``POST /v1/jobs`` (organisation key): store the job and send its first wave; 201."""
    rt = runtime(request)
    org_id = (await caller(request, Role.ORG)).tenant
    body = await decode_body(request, CreateJob)
    job = await rt.service.post_job(
        org_id,
        body.title,
        body.lat,
        body.lng,
        body.skills,
        body.priority,
        body.description,
        body.external_ref,
    )
    return json_response(job_view(job), 201, {"Location": f"/v1/jobs/{job.id}"})


async def get_job(request: Request) -> Response:
    """``GET /v1/jobs/{job_id}`` (organisation key or dispatcher): job, history, every offer.

    404 if the job is another organisation's.
    """
    rt = runtime(request)
    org_id = (await caller(request, Role.ORG, Role.DISPATCHER)).tenant
    detail = await Console(rt.service).job(org_id, request.path_params["job_id"])
    return json_response(job_detail_view(detail.view.job, detail.view.history, detail.offers))


async def cancel_job(request: Request) -> Response:
    """``POST /v1/jobs/{job_id}/cancel`` (organisation key or dispatcher): offers close,
    the worker is freed; the ``cancelled`` event records who did it (``by``)."""
    rt = runtime(request)
    who = await caller(request, Role.ORG, Role.DISPATCHER)
    body = await decode_body(request, CancelJob, optional=True)
    job = await Console(rt.service).cancel(
        who.tenant, request.path_params["job_id"], who.actor, body.reason
    )
    return json_response(job_view(job))
