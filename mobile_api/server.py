"""Run the app under uvicorn with the settings that matter for phones.

``build_server`` is the single place uvicorn is configured: uvloop and
httptools, the sans-I/O websockets protocol, the frame cap (1009 above it),
keepalive pings every 30 s (NAT-friendly on mobile networks, 333 pings/s
at 10k sockets), no per-message compression (phones send small JSON; the
CPU is better spent elsewhere), and the access log only when
``FIELDCLOUD_ACCESS_LOG`` asks for it.
"""

from __future__ import annotations

import logging
import signal
from types import FrameType

import uvicorn
from starlette.applications import Starlette

from .settings import Settings

GRACE_S = 5
"""How long, at shutdown, handlers still running may take before they are cancelled."""


def uvicorn_config(
    app: Starlette, settings: Settings, *, log_level: str = "info"
) -> uvicorn.Config:
    """The uvicorn configuration for ``app``."""
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        ws_max_size=settings.max_frame_bytes,
        ws_ping_interval=30.0,
        ws_ping_timeout=30.0,
        ws_per_message_deflate=False,
        lifespan="on",
        log_level=log_level,
        access_log=settings.access_log,
        server_header=False,
        timeout_graceful_shutdown=GRACE_S,
    )


class _RefusedHandshakeFilter(logging.Filter):
    """Drop uvicorn's false alarm after a refused websocket handshake.

    The sans-I/O websockets protocol of uvicorn logs "ASGI callable returned
    without completing handshake" at ERROR after the app answered the upgrade
    with an HTTP denial response (our 401/403), which is a normal outcome.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "returned without completing handshake" not in record.getMessage()


class _CredentialsFilter(logging.Filter):
    """Hide the ``Authorization`` header in uvicorn's DEBUG lines.

    At DEBUG, the websockets protocol under uvicorn logs every handshake header
    (``< authorization: Bearer fcw_…``): a device token in the log. The header's
    value is replaced by its scheme and ``***``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if (
            isinstance(args, tuple)
            and len(args) == 2
            and isinstance(args[0], str)
            and args[0].lower() in ("authorization", "proxy-authorization")
        ):
            scheme = str(args[1]).partition(" ")[0]
            record.args = (args[0], f"{scheme} ***")
        return True


_REFUSED_HANDSHAKE = _RefusedHandshakeFilter()
_CREDENTIALS = _CredentialsFilter()


def build_server(app: Starlette, settings: Settings, *, log_level: str = "info") -> uvicorn.Server:
    """A uvicorn server for ``app``, not yet started."""
    server = uvicorn.Server(uvicorn_config(app, settings, log_level=log_level))
    errors = logging.getLogger("uvicorn.error")
    errors.addFilter(_REFUSED_HANDSHAKE)  # once each: a set-like add
    errors.addFilter(_CREDENTIALS)
    return server


def run(server: uvicorn.Server) -> None:
    """Serve until SIGTERM or SIGINT, shut down gracefully, then return.

    uvicorn handles both signals itself (``mobile_api.shutdown`` lists the
    sequence), and afterwards raises the signal again against the handler
    that was in place before it started. For SIGTERM that handler is set
    here: it ends the process with exit status 0, which a supervisor reads
    as a clean stop (the default action would report death by SIGTERM). A
    SIGTERM before uvicorn took over ends the process the same way.
    """
    previous = signal.signal(signal.SIGTERM, _stopped)
    try:
        server.run()
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stopped(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)
