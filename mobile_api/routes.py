"""Every endpoint the server answers, in plain view.

``ROUTES`` is Starlette's list of HTTP routes (through its middleware and
exception handlers). ``SOCKETS`` maps each websocket path to a raw ASGI
endpoint that ``app.FieldcloudApp`` serves ahead of Starlette: sockets carry
the hot traffic (every location fix) and each connected client holds its
handler for as long as it stays, so they skip the routing and middleware
layers. A new socket is one line in ``SOCKETS``; its endpoint takes the
``Runtime`` and the ASGI ``scope, receive, send``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .open311 import config as open311_config
from .open311 import endpoints as open311
from .resources import actions, dispatchers, health, jobs, lists, metrics, orgs, workers
from .runtime import Runtime
from .sockets import worker

SocketEndpoint = Callable[[Runtime, Scope, Receive, Send], Awaitable[None]]

ROUTES = [
    Route("/healthz", health.healthz, methods=["GET"]),
    Route("/readyz", health.readyz, methods=["GET"]),
    Route("/metrics", metrics.metrics, methods=["GET"]),
    Route("/v1/orgs", orgs.create_org, methods=["POST"]),
    Route("/v1/workers", workers.create_worker, methods=["POST"]),
    Route("/v1/workers/{worker_id}", workers.get_worker, methods=["GET"]),
    Route("/v1/jobs", jobs.create_job, methods=["POST"]),
    Route("/v1/jobs/{job_id}", jobs.get_job, methods=["GET"]),
    Route("/v1/jobs/{job_id}/cancel", jobs.cancel_job, methods=["POST"]),
    Route("/v1/dispatchers", dispatchers.create_dispatcher, methods=["POST"]),
    Route("/v1/dispatchers", dispatchers.list_dispatchers, methods=["GET"]),
    Route("/v1/dispatchers/{dispatcher_id}", dispatchers.revoke_dispatcher, methods=["DELETE"]),
    Route("/v1/workers", lists.list_workers, methods=["GET"]),
    Route("/v1/workers/{worker_id}/status", actions.set_worker_status, methods=["POST"]),
    Route("/v1/jobs", lists.list_jobs, methods=["GET"]),
    Route("/v1/jobs/{job_id}/candidates", lists.job_candidates, methods=["GET"]),
    Route("/v1/jobs/{job_id}/assign", actions.assign_job, methods=["POST"]),
    Route("/v1/jobs/{job_id}/reoffer", actions.reoffer_job, methods=["POST"]),
    Route("/v1/services", open311_config.list_services, methods=["GET"]),
    Route("/v1/services/{service_code}", open311_config.put_service, methods=["PUT"]),
    Route("/v1/services/{service_code}", open311_config.delete_service, methods=["DELETE"]),
    Route("/v1/open311/keys", open311_config.create_key, methods=["POST"]),
    Route("/v1/open311/keys/{key_id}", open311_config.revoke_key, methods=["DELETE"]),
    Route("/open311/v2/discovery.{fmt}", open311.discovery, methods=["GET"]),
    Route("/open311/v2/services.{fmt}", open311.services, methods=["GET"]),
    Route("/open311/v2/services/{service_code}.{fmt}", open311.service_definition, methods=["GET"]),
    Route("/open311/v2/requests.{fmt}", open311.post_request, methods=["POST"]),
    Route("/open311/v2/requests.{fmt}", open311.list_requests, methods=["GET"]),
    Route("/open311/v2/requests/{service_request_id}.{fmt}", open311.get_request, methods=["GET"]),
    Route("/open311/v2/tokens/{token}.{fmt}", open311.get_token, methods=["GET"]),
]

SOCKETS: dict[str, SocketEndpoint] = {
    worker.PATH: worker.worker_socket,
}

SOCKET_ROLES: dict[str, str] = {worker.PATH: "worker"}
"""The role label of each socket path in the metrics (``fieldcloud_sockets_open``)."""
