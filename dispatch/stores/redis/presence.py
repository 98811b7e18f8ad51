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

``claim_many`` and ``refresh_many`` do the same for many sockets at once: one
script call per ``BATCH`` claims, so an instance holding thousands of sockets
refreshes them with a handful of commands per period instead of one per
socket. The keys of one call lie in different hash slots:
one Redis serves that; on Redis Cluster the batches would have to be split by
slot.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio as aioredis

from .client import Script, redis_errors
from .keys import Keys

__all__ = ["BATCH", "RedisPresence"]

BATCH = 50
"""Claims per script call in ``claim_many``/``refresh_many``.

A script holds Redis for its whole run: 500 claims took 5-8 ms on the
benchmark machine, and ten in a row stalled every other client's commands
(offers included) for ~130 ms. At 50 a call holds Redis well under a
millisecond and other commands interleave between calls."""

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

_CLAIM_MANY = Script(
    """
-- KEYS = presence keys; ARGV = their holders, then the TTL (ms).
-- Returns each key's previous holder, or '' when it had none.
local ttl = ARGV[#KEYS + 1]
local previous = {}
for i, key in ipairs(KEYS) do
  previous[i] = redis.call('SET', key, ARGV[i], 'PX', ttl, 'GET') or ''
end
return previous
"""
)

_REFRESH_MANY = Script(
    """
-- KEYS = presence keys; ARGV = their holders, then the TTL (ms).
-- Per key: 1 extended, 2 expired and taken back, 0 held by another.
local ttl = ARGV[#KEYS + 1]
local done = {}
for i, key in ipairs(KEYS) do
  local holder = redis.call('GET', key)
  if holder == ARGV[i] then
    redis.call('PEXPIRE', key, ttl)
    done[i] = 1
  elseif not holder then
    redis.call('SET', key, ARGV[i], 'PX', ttl)
    done[i] = 2
  else
    done[i] = 0
  end
end
return done
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

    async def claim_many(self, claims: Sequence[tuple[str, str]], ttl_s: float) -> list[str | None]:
        """``claim`` for each ``(worker_id, instance_id)``; the previous holders, in order."""
        ms = _ms(ttl_s)
        found: list[str | None] = []
        for i in range(0, len(claims), BATCH):
            batch = claims[i : i + BATCH]
            keys = [self._keys.presence(worker_id) for worker_id, _ in batch]
            with redis_errors():
                previous = await _CLAIM_MANY(self._redis, keys, [*(h for _, h in batch), ms])
            found.extend(p if isinstance(p, str) and p else None for p in previous)
        return found

    async def refresh_many(self, claims: Sequence[tuple[str, str]], ttl_s: float) -> list[bool]:
        """``refresh`` for each ``(worker_id, instance_id)``; whether each is still held, in order.

        An expired claim is taken back (True); False means another holder has it.
        A failure part-way raises ``Unavailable``; the batches already run stay done.
        """
        ms = _ms(ttl_s)
        held: list[bool] = []
        for i in range(0, len(claims), BATCH):
            batch = claims[i : i + BATCH]
            keys = [self._keys.presence(worker_id) for worker_id, _ in batch]
            with redis_errors():
                done = await _REFRESH_MANY(self._redis, keys, [*(h for _, h in batch), ms])
            held.extend(bool(x) for x in done)
        return held

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
