"""Redis worker feed: durable, ordered, capped per-worker notice logs, plus wake-ups.

``publish`` runs one script on the worker's slot: for a keyed notice, look
the key up among the worker's recent keys (a sorted set scored by seq, capped
at ``log_size``) and answer its seq if it is there; else ``INCR`` the sequence
counter, ``XADD`` the notice to a stream with entry id ``<seq>-0`` and an exact
``MAXLEN`` cap, record the key, refresh the expiries and ``PUBLISH`` the seq
on the worker's channel. The log is the record; the message is only a hint.
``replay`` reads the stream. ``listen`` is served by ``listener``: one
shared pub/sub connection per process, callbacks in seq order, none missing.

Rules for callers:

* Call ``listen`` first, then ``replay`` for the backlog, and drop entries
  whose seq was already sent (the callback and the replay may overlap). In
  this backend ``replay`` waits until this process's pending listeners of the
  worker are live, so that order leaves no gap.
* A listener that falls more than ``log_size`` notices behind (the drainer
  reads right after each wake-up, so in practice it does not) skips what was
  trimmed; a phone's replay after a reconnect has the same limit.
* Call ``aclose`` at shutdown.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import redis.asyncio as aioredis

from ..ports import LoggedNotice, Notice
from .client import Script, redis_errors
from .keys import Keys
from .listener import FeedListeners, after, decode_log

__all__ = ["PUBLISH_SCRIPT", "RedisWorkerFeed"]

PUBLISH_SCRIPT = Script(
    """
-- KEYS[1] = seq counter, KEYS[2] = log stream, KEYS[3] = recent keys (zset)
-- ARGV[1] = notice JSON, ARGV[2] = cap, ARGV[3] = wake channel, ARGV[4] = log ttl (ms),
-- ARGV[5] = the notice's de-duplication key ('' for none)
local dedupe = ARGV[5] ~= ''
if dedupe then
  local earlier = redis.call('ZSCORE', KEYS[3], ARGV[5])
  if earlier then return tonumber(earlier) end
end
local seq
if redis.call('EXISTS', KEYS[1]) == 1 then
  seq = redis.call('INCR', KEYS[1])
else
  -- A new (or lost) log starts from the clock in microseconds, so its numbers
  -- exceed any a lost log handed out and a resuming phone never skips one.
  local now = redis.call('TIME')
  seq = tonumber(now[1]) * 1000000 + tonumber(now[2])
  redis.call('SET', KEYS[1], string.format('%d', seq))
end
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)[1]
if last then
  local top = tonumber(string.match(last[1], '^(%d+)'))
  if top >= seq then
    seq = top + 1
    redis.call('SET', KEYS[1], string.format('%d', seq))
  end
end
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[2], string.format('%d', seq) .. '-0', 'n', ARGV[1])
if tonumber(ARGV[4]) > 0 then redis.call('PEXPIRE', KEYS[2], ARGV[4]) end
if dedupe then
  redis.call('ZADD', KEYS[3], seq, ARGV[5])
  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -tonumber(ARGV[2]) - 1)
  if tonumber(ARGV[4]) > 0 then redis.call('PEXPIRE', KEYS[3], ARGV[4]) end
end
redis.call('PUBLISH', ARGV[3], string.format('%d', seq))
return seq
"""
)


class RedisWorkerFeed:
    """``WorkerFeed`` in Redis; see the module docstring."""

    def __init__(
        self,
        client: aioredis.Redis,
        keys: Keys,
        *,
        log_size: int = 256,
        log_ttl_s: float = 86_400.0,
        sweep_s: float = 15.0,
    ) -> None:
        if log_size < 1:
            raise ValueError("log_size must be at least 1")
        self._redis = client
        self._keys = keys
        self._log_size = log_size
        self._log_ttl_ms = int(log_ttl_s * 1000)
        self._listeners = FeedListeners(client, keys, sweep_s=sweep_s)

    async def publish(self, worker_id: str, notice: Notice, key: str | None = None) -> int:
        keys = self._keys
        payload = json.dumps(notice, separators=(",", ":"))
        with redis_errors():
            seq = await PUBLISH_SCRIPT(
                self._redis,
                [keys.feed_seq(worker_id), keys.feed_log(worker_id), keys.feed_keys(worker_id)],
                [
                    payload,
                    self._log_size,
                    keys.feed_channel(worker_id),
                    self._log_ttl_ms,
                    key or "",
                ],
            )
        return int(seq)

    async def replay(self, worker_id: str, after_seq: int) -> list[LoggedNotice]:
        await self._listeners.live(worker_id)
        with redis_errors():
            entries = await self._redis.xrange(
                self._keys.feed_log(worker_id), min=after(after_seq), max="+"
            )
        return decode_log(entries or [], after_seq)

    def listen(
        self, worker_id: str, callback: Callable[[LoggedNotice], None]
    ) -> Callable[[], None]:
        return self._listeners.listen(worker_id, callback)

    async def aclose(self) -> None:
        """Stop the listeners' background tasks and close their connection."""
        await self._listeners.aclose()
