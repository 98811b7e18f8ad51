"""The ASGI application: routes in plain view, resources in the lifespan.

``create_app(settings)`` builds a Starlette app; nothing connects until the
lifespan starts. The lifespan opens the stores (in-process, or PostgreSQL +
Redis in production), builds the ``DispatchService``, starts the deadline
ticker and the outbox sweeper, and on shutdown tears it all down in order
(the sequence is ``shutdown``'s module docstring).

The websocket endpoints (``routes.SOCKETS``: the phone socket
``WS /v1/ws/worker``) are served ahead of Starlette's routing and middleware
(``FieldcloudApp``): they carry every location fix, and each idle client holds
its handler's task for as long as it is connected.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from dispatch.errors import DispatchError
from dispatch.service import OUTBOX_SWEEP_S, Clock, CommitHook, DispatchService
from dispatch.stores.memory import MemoryPresence, memory_stores
from dispatch.stores.open311_memory import MemoryOpen311Store
from dispatch.stores.ports import Stores

from . import departures
from .errors import ApiError, error_response, handle_api_error, handle_dispatch_error
from .metrics import LOOP_LAG_EVERY_S, Metrics
from .routes import ROUTES, SOCKET_ROLES, SOCKETS
from .runtime import Runtime
from .settings import Settings
from .shutdown import Loops, shut_down

log = logging.getLogger("fieldcloud")

MODES = {
    "memory": "in-process (memory stores: one instance, nothing persists across restarts)",
    "production": "production (PostgreSQL + Redis: any number of instances)",
}
"""How the start-up line names each backend."""


class FieldcloudApp(Starlette):
    """Starlette, with the socket endpoints served as raw ASGI callables ahead of it.

    A websocket scope whose path is in ``routes.SOCKETS`` goes straight to its
    endpoint; everything else (HTTP, the lifespan, unknown websocket paths)
    goes through Starlette's middleware and routes.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            path = _route_path(scope)
            endpoint = SOCKETS.get(path)
            if endpoint is not None:
                runtime = self.state.runtime
                await self.state.metrics.serve_socket(
                    SOCKET_ROLES.get(path, "other"),
                    partial(endpoint, runtime, scope),
                    receive,
                    send,
                )
                return
        await super().__call__(scope, receive, send)


def _route_path(scope: Scope) -> str:
    """The path below the ``root_path`` the app is mounted at (as Starlette routes it)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own 404 and 405 (unknown route, wrong method) as JSON errors."""
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail))


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    """Any other exception: logged with its traceback, answered 500 without details."""
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal", "unexpected server error")


def create_app(
    settings: Settings,
    *,
    clock: Clock = time.time,
    stores_factory: Callable[[Settings], Stores] | None = None,
    after_commit: CommitHook | None = None,
) -> FieldcloudApp:
    """Build the app. ``stores_factory`` overrides the backend (tests).

    ``after_commit`` is the service's fault point between a job transaction's
    commit and the delivery of its effects; only the crash tests pass one
    (``tests/cluster/faulty_serve.py``), the ``fieldcloud`` command never does.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        # 1. Open the stores: in-process unless both service URLs are set.
        backend = None
        instance_id = secrets.token_hex(6)
        if stores_factory is not None:
            stores, mode = stores_factory(settings), "custom"
        elif settings.production:
            from dispatch.stores.production import open_production_stores

            assert settings.database_url is not None
            assert settings.redis_url is not None
            backend = await open_production_stores(
                database_url=settings.database_url,
                redis_url=settings.redis_url,
                resolution=settings.dispatch.resolution,
                key_prefix=settings.key_prefix,
                instance_id=instance_id,
                log_size=settings.log_size,
            )
            stores, mode = backend.stores, "production"
        else:
            stores, mode = memory_stores(settings.dispatch.resolution, settings.log_size), "memory"
        if stores.open311 is None:  # a test's backend without Open311 records
            stores = dataclasses.replace(stores, open311=MemoryOpen311Store())
        # 2. The service and the runtime the handlers see.
        service = DispatchService(stores, settings.dispatch, clock, after_commit=after_commit)
        admin_token = settings.admin_token or secrets.token_urlsafe(24)
        runtime = Runtime(
            settings,
            service,
            admin_token,
            mode,
            MemoryPresence() if backend is None else backend.presence,
            ping=None if backend is None else backend.ping,
            instance_id=instance_id,
        )
        app.state.runtime = runtime
        metrics = Metrics(runtime.received, stores.outbox, clock)
        service.observers.append(metrics.observe)
        app.state.metrics = metrics
        log.info(
            "instance %s started, mode %s; %s",
            instance_id,
            MODES.get(mode, mode),
            settings.summary(),
        )
        # 3. Background work: the deadline ticker, the outbox sweeper that
        #    delivers what an instance committed but did not deliver, the
        #    sweep that forgets the positions of phones gone too long, and
        #    the event-loop lag sampler.
        loops = Loops()
        loops.start("deadline ticker", service.run_due, settings.tick_s)
        loops.start("outbox sweeper", service.sweep_outbox, OUTBOX_SWEEP_S)
        loops.start("departed phones", runtime.forget_departed, departures.SWEEP_S)
        loops.start("event-loop lag", metrics.sample_loop_lag, LOOP_LAG_EVERY_S)
        try:
            yield {}
        finally:
            # The shutdown sequence, step by step: mobile_api/shutdown.py.
            await shut_down(runtime, loops, None if backend is None else backend.close)

    return FieldcloudApp(
        routes=ROUTES,
        lifespan=lifespan,
        exception_handlers={
            ApiError: handle_api_error,
            DispatchError: handle_dispatch_error,
            HTTPException: handle_http_exception,
            Exception: handle_unexpected,
        },
    )
