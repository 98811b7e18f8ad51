"""Redis plumbing: error mapping and Lua scripts run by SHA.

Rules for callers: make the client with ``decode_responses=True`` (the stores
read strings); wrap commands in ``redis_errors`` so connection failures
surface as ``dispatch.errors.Unavailable``; load every ``Script`` at start-up
(``Script.text``), though a script missing after a Redis restart is loaded
again on first use.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import redis.asyncio as aioredis
from redis import exceptions as rex

from ...errors import Unavailable

__all__ = ["Script", "redis_errors"]

_UNAVAILABLE: tuple[type[BaseException], ...] = (
    rex.ConnectionError,  # refused, reset, auth, loading, pool exhausted
    rex.TimeoutError,
    rex.ClusterDownError,
    rex.TryAgainError,
    rex.ReadOnlyError,  # a replica during failover
    OSError,
    TimeoutError,
)


@contextmanager
def redis_errors() -> Iterator[None]:
    """Turn Redis connection-level failures into ``Unavailable``."""
    try:
        yield
    except _UNAVAILABLE as exc:
        raise Unavailable(f"Redis unavailable: {type(exc).__name__}: {exc}") from exc


class Script:
    """A Lua script run by SHA, loaded on demand (``NOSCRIPT`` after a restart)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest()

    async def __call__(
        self, client: aioredis.Redis, keys: Sequence[str], args: Sequence[Any]
    ) -> Any:
        """Run the script once (not in a pipeline)."""
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except rex.NoScriptError:
            await client.script_load(self.text)
            return await client.evalsha(self.sha, len(keys), *keys, *args)
