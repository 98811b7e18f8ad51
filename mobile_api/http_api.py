"""HTTP endpoints: organisations, workers, jobs, health.

Every handler authenticates first (``auth``), decodes its body with a
``schemas`` class, calls the service and answers JSON. Errors propagate as
``ApiError`` / ``DispatchError`` and are rendered by ``errors``.
"""

from __future__ import annotations

from typing import TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from .auth import require_admin, require_org
from .errors import ApiError, json_response
from .runtime import Runtime
from .schemas import CancelJob, CreateJob, CreateOrg, CreateWorker
from .views import job_view, org_view, worker_view

B = TypeVar("B", bound=msgspec.Struct)

MAX_BODY_BYTES = 64 * 1024


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


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


async def healthz(request: Request) -> Response:
    """Liveness: the process serves requests (says nothing of PostgreSQL/Redis)."""
    rt = runtime(request)
    return json_response({"status": "ok", "mode": rt.mode})


async def readyz(request: Request) -> Response:
    """Ready when every backing service answers; 503 (with the reason) otherwise."""
    rt = runtime(request)
    if rt.ping is not None:
        await rt.ping()  # raises Unavailable → 503
    return json_response({"status": "ready", "mode": rt.mode})


async def create_org(request: Request) -> Response:
    rt = runtime(request)
    await require_admin(request.headers, rt.admin_token, rt.service)
    body = await decode_body(request, CreateOrg)
    org, key = await rt.service.create_org(body.name)
    return json_response({**org_view(org), "api_key": key}, 201)


async def create_worker(request: Request) -> Response:
    rt = runtime(request)
    org = await require_org(request.headers, rt.service, rt.admin_token)
    body = await decode_body(request, CreateWorker)
    worker, token = await rt.service.create_worker(org.id, body.name, body.kind, body.skills)
    return json_response({**worker_view(worker), "token": token}, 201)


async def get_worker(request: Request) -> Response:
    rt = runtime(request)
    org = await require_org(request.headers, rt.service, rt.admin_token)
    worker = await rt.service.get_worker(org.id, request.path_params["worker_id"])
    return json_response(worker_view(worker))


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
