"""Redis backend, shared part: error mapping, scripts, batched hot writes, fixes.

Redis holds the hot state (positions, the location index, per-worker notice
logs, presence). Every key comes from ``keys.Keys``. Rules for callers:

* Make the client with ``decode_responses=True``; the stores read strings.
* Location writes go through one ``RedisWriter`` per process: everything
  submitted while a pipeline is in flight (or during the same event-loop
  tick) goes out together as the next pipeline, so Redis round trips do not
  bound ingest. A write returns once its pipeline has executed (a group
  commit), so a caller reads its own writes, and errors reach the caller.
  Writes of one process are applied in submission order.
* Connection failures surface as ``dispatch.errors.Unavailable``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis import exceptions as rex

from ..errors import Unavailable
from ..models import Fix
from .keys import Keys

__all__ = [
    "MOVE_SCRIPT",
    "RedisFixes",
    "RedisWriter",
    "Script",
    "decode_fix",
    "encode_fix",
    "redis_errors",
]

log = logging.getLogger(__name__)

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


MOVE_SCRIPT = Script(
    """
-- Move or remove workers in one organisation's location index, atomically.
-- KEYS[1] = where hash, KEYS[2] = populated-cells set, KEYS[3..] = cell hashes
-- written; ARGV[1] = the cell key prefix; then groups of four:
-- op ('u' upsert / 'r' remove), worker id, cell hex, "lat,lng".
-- Old cells are derived from the where hash; they share the slot (org tag).
local where, cells, prefix = KEYS[1], KEYS[2], ARGV[1]
local function leave(old, w)
  local key = prefix .. old
  redis.call('HDEL', key, w)
  if redis.call('HLEN', key) == 0 then redis.call('SREM', cells, old) end
end
for i = 2, #ARGV, 4 do
  local op, w, cell = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local old = redis.call('HGET', where, w)
  if op == 'u' then
    if old and old ~= cell then leave(old, w) end
    redis.call('HSET', prefix .. cell, w, ARGV[i + 3])
    if old ~= cell then
      redis.call('HSET', where, w, cell)
      redis.call('SADD', cells, cell)
    end
  elseif old then
    leave(old, w)
    redis.call('HDEL', where, w)
  end
end
return 0
"""
)


def encode_fix(fix: Fix) -> str:
    """``"lat,lng,accuracy,at"`` with exact float round trips (empty accuracy: None)."""
    acc = "" if fix.accuracy_m is None else repr(float(fix.accuracy_m))
    return f"{float(fix.lat)!r},{float(fix.lng)!r},{acc},{float(fix.at)!r}"


def decode_fix(text: str) -> Fix:
    """The inverse of ``encode_fix``."""
    lat, lng, acc, at = text.split(",")
    return Fix(float(lat), float(lng), None if acc == "" else float(acc), float(at))


@dataclass(slots=True)
class _Op:
    """One buffered write: a fix (``org_id`` None) or an index upsert/remove."""

    kind: str  # "fix", "u" or "r"
    worker_id: str
    org_id: str | None = None
    cell: str = ""
    value: str = ""


class RedisWriter:
    """Group-commits hot writes: one pipeline per batch, one batch in flight.

    A batch is what was submitted while the previous pipeline ran (at least
    one event-loop tick, plus ``delay_s`` if set), up to ``max_batch`` writes.
    Costs per location report, in Redis commands: one ``SET`` (the fix, with
    its expiry) and a share of one ``EVALSHA`` per organisation per batch
    (the index move; inside Redis: ``HGET`` + ``HSET``, plus ``HDEL``/
    ``HLEN``/``SREM``/``SADD``/``HSET`` when the worker changed cell).
    """

    def __init__(
        self,
        client: aioredis.Redis,
        keys: Keys,
        *,
        fix_ttl_s: float = 86_400.0,
        delay_s: float = 0.0,
        max_batch: int = 2_000,
    ) -> None:
        self._redis = client
        self._keys = keys
        self._fix_ttl_ms = max(1, int(fix_ttl_s * 1000))
        self._delay_s = delay_s
        self._max_batch = max_batch
        self._queue: list[tuple[_Op, asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    async def set_fix(self, worker_id: str, fix: Fix) -> None:
        """Store the worker's last fix (expires after ``fix_ttl_s``)."""
        await self._submit(_Op("fix", worker_id, value=encode_fix(fix)))

    async def upsert(self, org_id: str, worker_id: str, cell: int, lat: float, lng: float) -> None:
        """Put the worker into ``cell`` of the organisation's index (moving it)."""
        pos = f"{float(lat)!r},{float(lng)!r}"
        await self._submit(_Op("u", worker_id, org_id, Keys.cell_name(cell), pos))

    async def remove(self, org_id: str, worker_id: str) -> None:
        """Take the worker out of the organisation's index."""
        await self._submit(_Op("r", worker_id, org_id))

    async def _submit(self, op: _Op) -> None:
        if self._closed:
            raise Unavailable("the Redis writer is closed")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((op, done))
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="fieldcloud-redis-writer")
        await done

    async def _run(self) -> None:
        try:
            while self._queue:
                if self._delay_s > 0:
                    await asyncio.sleep(self._delay_s)
                else:
                    await asyncio.sleep(0)  # let this tick's writers join the batch
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                try:
                    await self._flush([op for op, _ in batch])
                except BaseException as exc:
                    error = exc if isinstance(exc, Exception) else Unavailable("writer stopped")
                    for _, done in batch:
                        if not done.done():
                            done.set_exception(error)
                    if not isinstance(exc, Exception):
                        raise
                else:
                    for _, done in batch:
                        if not done.done():
                            done.set_result(None)
        finally:
            self._task = None

    async def _flush(self, ops: Sequence[_Op]) -> None:
        with redis_errors():
            results = await self._pipeline(ops).execute(raise_on_error=False)
            if any(isinstance(r, rex.NoScriptError) for r in results):
                await self._redis.script_load(MOVE_SCRIPT.text)
                results = await self._pipeline(ops).execute(raise_on_error=False)
        for result in results:
            if isinstance(result, Exception):
                with redis_errors():
                    raise result

    def _pipeline(self, ops: Sequence[_Op]) -> Any:
        keys = self._keys
        pipe = self._redis.pipeline(transaction=False)
        by_org: dict[str, list[_Op]] = {}
        for op in ops:
            if op.org_id is None:
                pipe.set(keys.fix(op.worker_id), op.value, px=self._fix_ttl_ms)
            else:
                by_org.setdefault(op.org_id, []).append(op)
        for org_id, org_ops in by_org.items():
            prefix = keys.cell_prefix(org_id)
            written = dict.fromkeys(prefix + op.cell for op in org_ops if op.kind == "u")
            script_keys = [keys.where(org_id), keys.cells(org_id), *written]
            args: list[str] = [prefix]
            for op in org_ops:
                args += (op.kind, op.worker_id, op.cell, op.value)
            pipe.evalsha(MOVE_SCRIPT.sha, len(script_keys), *script_keys, *args)
        return pipe

    async def aclose(self) -> None:
        """Refuse new writes and wait for the ones already submitted."""
        self._closed = True
        task = self._task
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)


class RedisFixes:
    """The workers' last fixes (``keys.fix``), written through the ``RedisWriter``."""

    def __init__(self, client: aioredis.Redis, keys: Keys, writer: RedisWriter) -> None:
        self._redis = client
        self._keys = keys
        self._writer = writer

    async def set_fix(self, worker_id: str, fix: Fix) -> None:
        await self._writer.set_fix(worker_id, fix)

    async def get_fixes(self, worker_ids: Sequence[str]) -> Mapping[str, Fix]:
        if not worker_ids:
            return {}
        with redis_errors():
            pipe = self._redis.pipeline(transaction=False)
            for worker_id in worker_ids:
                pipe.get(self._keys.fix(worker_id))
            values = await pipe.execute()
        found: dict[str, Fix] = {}
        for worker_id, value in zip(worker_ids, values, strict=True):
            if value:
                try:
                    found[worker_id] = decode_fix(value)
                except ValueError:
                    log.warning("ignoring a malformed fix for worker %s", worker_id)
        return found
