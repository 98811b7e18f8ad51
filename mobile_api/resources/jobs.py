"""``/v1/jobs``: work orders; posting one sends its first wave of offers."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..auth import Role
from ..errors import json_response
from ..schemas import CancelJob, CreateJob
from ..views import job_view
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
    """``GET /v1/jobs/{job_id}`` (organisation key): the job and its history; 404 if foreign."""
    rt = runtime(request)
    org_id = (await caller(request, Role.ORG)).tenant
    view = await rt.service.get_job(org_id, request.path_params["job_id"])
    return json_response(job_view(view.job, view.history))


async def cancel_job(request: Request) -> Response:
    """``POST /v1/jobs/{job_id}/cancel`` (organisation key): offers close, the worker is freed."""
    rt = runtime(request)
    org_id = (await caller(request, Role.ORG)).tenant
    body = await decode_body(request, CancelJob, optional=True)
    job = await rt.service.cancel_job(org_id, request.path_params["job_id"], body.reason)
    return json_response(job_view(job))
