"""``GET /metrics``: this instance's Prometheus metrics, no authentication.

Scraped by Prometheus on the private network, one target per instance; the
figures name no organisation, worker or job (labels are frame types, event
kinds and socket roles only). Put it behind the load balancer's deny list if
the port is public. The names are in docs/operations.md.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..metrics import CONTENT_TYPE, Metrics


async def metrics(request: Request) -> Response:
    """The exposition text, with the outbox figures read at this moment."""
    meter: Metrics = request.app.state.metrics
    await meter.collect_async()
    return Response(meter.render(), media_type=CONTENT_TYPE)
