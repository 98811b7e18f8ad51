"""Where the server's log lines go, and at what level.

``configure_logging(level)`` sends the ``fieldcloud`` loggers to stderr, one
line per record (time, level, logger, message); uvicorn's own loggers are set
to the same level by ``server.build_server``. Loggers:

* ``fieldcloud``: the edge (start-up, sockets, presence, unexpected errors);
  at INFO one line when an instance starts, with its mode and a summary of
  its settings (``Settings.summary``: no secret, no password);
* ``fieldcloud.dispatch``: one INFO line per domain event worth knowing (a job
  posted, a wave sent, assigned, completed, unfilled, cancelled) and DEBUG
  lines for the rest (declines, expiries, withdrawals, progress);
* ``uvicorn.access``: one line per HTTP request, only when
  ``FIELDCLOUD_ACCESS_LOG`` is on (off by default: the hot path is the
  sockets, and a busy server's access log is mostly noise).

No line carries a token or an API key: they travel only in ``Authorization``
headers, which are never logged, and service URLs are logged without their
passwords.
"""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The one stderr handler ``configure_logging`` installs (found again by its class)."""


def configure_logging(level: str) -> None:
    """Log the ``fieldcloud`` loggers to stderr at ``level`` (idempotent)."""
    logger = logging.getLogger("fieldcloud")
    logger.setLevel(level.upper())
    if not any(isinstance(h, _Handler) for h in logger.handlers):
        handler = _Handler(sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT))
        logger.addHandler(handler)
