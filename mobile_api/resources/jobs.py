"""``/v1/jobs``: work orders; posting one sends its first wave of offers."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..auth import require_org
from ..errors import json_response
from ..schemas import CancelJob, CreateJob
from ..views import job_view
from .common import decode_body, runtime


async def create_job(request: Request) -> Response:
    rt = runtime(request)
    org = await require_org(request.headers, rt.service, rt.admin_token)
    body = await decode_body(request, CreateJob)
    job = await rt.service.post_job(
        org.id,
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
    rt = runtime(request)
    org = await require_org(request.headers, rt.service, rt.admin_token)
    view = await rt.service.get_job(org.id, request.path_params["job_id"])
    return json_response(job_view(view.job, view.history))


async def cancel_job(request: Request) -> Response:
    rt = runtime(request)
    org = await require_org(request.headers, rt.service, rt.admin_token)
    body = await decode_body(request, CancelJob, optional=True)
    job = await rt.service.cancel_job(org.id, request.path_params["job_id"], body.reason)
    return json_response(job_view(job))
