"""Presence: which server instance holds a worker's socket, with a time to live.

One key per worker (``keys.presence``, in the worker's slot) holds the
instance id and expires unless refreshed. The newest connection wins:
``claim`` always takes the key and returns the previous holder, which the
caller tells to close its socket (``superseded``). ``refresh`` and
``release`` only act while the caller still holds the key (compare-and-set
scripts), so a superseded instance cannot extend or delete its successor's
claim.

Rules for callers: refresh well within the TTL (e.g. every TTL/3) while the
socket is open; when ``refresh`` returns False another instance has taken the
worker, so close the local socket. Release on a clean close; a crashed
instance's claims expire by themselves.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from .keys import Keys
from .redis import Script, redis_errors

__all__ = ["RedisPresence"]

_REFRESH = Script(
    """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if not holder then
  -- expired (e.g. while Redis was unreachable): nobody took it, take it back
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
)

_RELEASE = Script(
    """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
)


def _ms(ttl_s: float) -> int:
    if not ttl_s > 0:
        raise ValueError("a presence TTL must be positive")
    return max(1, int(ttl_s * 1000))


class RedisPresence:
    """Which instance holds which worker's socket; see the module docstring."""

    def __init__(self, client: aioredis.Redis, keys: Keys) -> None:
        self._redis = client
        self._keys = keys

    async def claim(self, worker_id: str, instance_id: str, ttl_s: float) -> str | None:
        """Take the worker for ``instance_id``; return the previous holder (if any, even self)."""
        with redis_errors():
            previous = await self._redis.set(
                self._keys.presence(worker_id), instance_id, px=_ms(ttl_s), get=True
            )
        return previous if isinstance(previous, str) else None

    async def refresh(self, worker_id: str, instance_id: str, ttl_s: float) -> bool:
        """Extend the claim (retaking it if it expired); False once another holder has it."""
        with redis_errors():
            done = await _REFRESH(
                self._redis, [self._keys.presence(worker_id)], [instance_id, _ms(ttl_s)]
            )
        return bool(done)

    async def release(self, worker_id: str, instance_id: str) -> bool:
        """Drop the claim if ``instance_id`` still holds it; return whether it did."""
        with redis_errors():
            done = await _RELEASE(self._redis, [self._keys.presence(worker_id)], [instance_id])
        return bool(done)

    async def holder(self, worker_id: str) -> str | None:
        """The instance holding the worker's socket, or None."""
        with redis_errors():
            found = await self._redis.get(self._keys.presence(worker_id))
        return found if isinstance(found, str) else None
