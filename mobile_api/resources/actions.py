"""A dispatcher steps in: assign or re-offer a job; set a worker's status.

Cancelling is ``jobs.cancel_job``, which takes the same callers.

Dispatcher tokens and the organisation's key may call them; each change is
recorded in the job's event log with ``by`` (the caller's role and id; see
``auth.Principal.actor``) and reaches phones through the outbox like any
other job change (``dispatch.console``). A refused assignment is 409
``not_eligible`` with the matching rule's ``reason``; ``"override": true``
assigns anyway and the event records the reason overridden.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from dispatch.console import Console

from ..auth import Role
from ..errors import json_response
from ..schemas import AssignJob, ReofferJob, SetWorkerStatus
from ..views import job_view, worker_view
from .common import caller, decode_body, runtime

ACTORS = (Role.ORG, Role.DISPATCHER)
"""Who may change jobs and workers by hand."""


async def assign_job(request: Request) -> Response:
    """``POST /v1/jobs/{job_id}/assign`` ``{"worker_id", "override"?}``: the job is theirs now."""
    rt = runtime(request)
    who = await caller(request, *ACTORS)
    body = await decode_body(request, AssignJob)
    job = await Console(rt.service).assign(
        who.tenant, request.path_params["job_id"], body.worker_id, who.actor, override=body.override
    )
    return json_response(job_view(job))


async def reoffer_job(request: Request) -> Response:
    """``POST /v1/jobs/{job_id}/reoffer`` ``{"radius_m"?}``: a new wave now, wider."""
    rt = runtime(request)
    who = await caller(request, *ACTORS)
    body = await decode_body(request, ReofferJob, optional=True)
    job = await Console(rt.service).reoffer(
        who.tenant, request.path_params["job_id"], who.actor, body.radius_m
    )
    return json_response(job_view(job))


async def set_worker_status(request: Request) -> Response:
    """``POST /v1/workers/{worker_id}/status`` ``{"status"}``: as if the phone had said it."""
    rt = runtime(request)
    who = await caller(request, *ACTORS)
    body = await decode_body(request, SetWorkerStatus)
    worker = await Console(rt.service).set_worker_status(
        who.tenant, request.path_params["worker_id"], body.status, who.actor
    )
    return json_response({**worker_view(worker), "connected": await rt.connected(worker.id)})
