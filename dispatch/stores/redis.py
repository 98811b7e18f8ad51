"""Redis backend, shared part: error mapping, scripts, batched hot writes, fixes.

Redis holds the hot state (positions, the location index, per-worker notice
logs, presence). Every key comes from ``keys.Keys``. Rules for callers:

* Make the client with ``decode_responses=True``; the stores read strings.
* Location writes go through one ``RedisWriter`` per process: everything
  submitted to a lane while its pipeline is in flight (or during the same
  event-loop tick) goes out together as the lane's next pipeline, so Redis
  round trips do not bound ingest. A write returns once its pipeline has
  executed (a group commit), so a caller reads its own writes, and errors
  reach the caller. Writes of one worker are applied in submission order.
  Worker ids must not hold a tab or a newline (a batch travels as
  tab-separated lines; such an id is refused with ``ValueError``).
* Connection failures surface as ``dispatch.errors.Unavailable``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis import exceptions as rex

from ..errors import Unavailable
from ..models import Fix
from .keys import Keys

__all__ = [
    "GEO_MAX_LAT",
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


GEO_MAX_LAT = 85.05112878
"""A Redis geo set holds latitudes up to this; cells centred beyond go to ``polar``."""

MOVE_SCRIPT = Script(
    f"""
-- Write one organisation's batch of last fixes and index moves, atomically.
-- KEYS: where hash, populated-cells geo set, polar hash, reach string, fixes
-- hash, then the cell hashes written. ARGV[1] = the cell key prefix, ARGV[2]
-- = the writes, one line each of four tab-separated fields: op ('f' fix /
-- 'u' upsert / 'r' remove), worker id, the cell ('u': "hex lng lat reach",
-- its center and circumradius), value (the encoded fix for 'f', "lat,lng"
-- for 'u').
-- Old cells come from the where hash; they share the slot (org tag).
local where, geo, polar, reach_key, fixes = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local prefix = ARGV[1]
local reach = tonumber(redis.call('GET', reach_key) or '0')
local grown = false
local function leave(old, w)
  local key = prefix .. old
  redis.call('HDEL', key, w)
  if redis.call('HLEN', key) == 0 then
    redis.call('ZREM', geo, old)
    redis.call('HDEL', polar, old)
  end
end
local function enter(cell, lng, lat, r)
  if math.abs(tonumber(lat)) > {GEO_MAX_LAT} then
    redis.call('HSET', polar, cell, lat .. ',' .. lng)
  else
    redis.call('GEOADD', geo, lng, lat, cell)
  end
  r = tonumber(r)
  if r > reach then
    reach = r
    grown = true
  end
end
for op, w, place, value in string.gmatch(ARGV[2], '(%a)\\t([^\\t]*)\\t([^\\t]*)\\t([^\\n]*)\\n') do
  if op == 'f' then
    redis.call('HSET', fixes, w, value)
  else
    local old = redis.call('HGET', where, w)
    if op == 'u' then
      local cell, lng, lat, r = string.match(place, '^(%S+) (%S+) (%S+) (%S+)$')
      if old and old ~= cell then leave(old, w) end
      redis.call('HSET', prefix .. cell, w, value)
      if old ~= cell then
        redis.call('HSET', where, w, cell)
        enter(cell, lng, lat, r)
      end
    elseif old then
      leave(old, w)
      redis.call('HDEL', where, w)
    end
  end
end
if grown then redis.call('SET', reach_key, string.format('%.17g', reach)) end
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
    """One buffered write: a last fix, or an index upsert/remove."""

    kind: str  # "f", "u" or "r"
    org_id: str
    worker_id: str
    cell: str = ""  # "u": the cell hex
    place: str = ""  # "u": "hex lng lat reach" (see MOVE_SCRIPT)
    value: str = ""


class RedisWriter:
    """Group-commits hot writes: one pipeline per batch, one batch in flight per lane.

    Writes are spread over ``lanes`` lanes by worker id; each lane sends one
    pipeline at a time, so Redis executes one lane's batch while the server
    builds the next lane's. A batch is what was submitted to its lane while
    the lane's previous pipeline ran (at least one event-loop tick, plus
    ``delay_s`` if set), up to ``max_batch`` writes. The writes of one worker
    always take the same lane, so they are applied in submission order;
    writes of different workers may be applied in any order (every write
    this backend makes is correct in either order). Costs per location
    report, in Redis commands: a share of one ``EVALSHA`` per organisation
    per batch, which writes the batch's fixes and index moves (inside Redis:
    ``HSET`` for the fix, ``HGET`` + ``HSET`` for the move, plus
    ``HDEL``/``HLEN``/``ZREM``/``GEOADD``/``HSET`` when the worker changed cell).
    """

    def __init__(
        self,
        client: aioredis.Redis,
        keys: Keys,
        *,
        delay_s: float = 0.0,
        max_batch: int = 2_000,
        lanes: int = 2,
    ) -> None:
        if lanes < 1:
            raise ValueError(f"lanes must be >= 1, got {lanes}")
        self._redis = client
        self._keys = keys
        self._lanes = [_Lane(self._flush, delay_s, max_batch, n) for n in range(lanes)]
        self._closed = False

    def set_fix(self, org_id: str, worker_id: str, fix: Fix) -> asyncio.Future[None]:
        """Store the worker's last fix in its organisation's ``fixes`` hash.

        The write is queued when called (writes queued in the same tick share
        a pipeline); the returned future resolves once it has executed.
        """
        return self._enqueue(_Op("f", org_id, worker_id, value=encode_fix(fix)))

    async def upsert(
        self, org_id: str, worker_id: str, cell: str, place: str, lat: float, lng: float
    ) -> None:
        """Put the worker into cell ``cell`` (hex) of the organisation's index (moving it).

        ``place`` describes the cell as ``"hex lng lat reach"``: its center and
        circumradius in metres (with slack), exact ``repr`` floats.
        """
        pos = f"{float(lat)!r},{float(lng)!r}"
        await self._enqueue(_Op("u", org_id, worker_id, cell, place, pos))

    async def remove(self, org_id: str, worker_id: str) -> None:
        """Take the worker out of the organisation's index."""
        await self._enqueue(_Op("r", org_id, worker_id))

    def _enqueue(self, op: _Op) -> asyncio.Future[None]:
        if self._closed:
            raise Unavailable("the Redis writer is closed")
        if "\t" in op.worker_id or "\n" in op.worker_id:
            # A batch goes to Redis as tab-separated lines (see MOVE_SCRIPT).
            raise ValueError(f"worker id {op.worker_id!r} holds a tab or a newline")
        return self._lanes[hash(op.worker_id) % len(self._lanes)].enqueue(op)

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
            by_org.setdefault(op.org_id, []).append(op)
        for org_id, org_ops in by_org.items():
            prefix = keys.cell_prefix(org_id)
            written = dict.fromkeys(prefix + op.cell for op in org_ops if op.kind == "u")
            script_keys = [
                keys.where(org_id),
                keys.cell_geo(org_id),
                keys.polar(org_id),
                keys.reach(org_id),
                keys.fixes(org_id),
                *written,
            ]
            # One argument for the whole batch: redis-py packs each argument in
            # Python, a joined string in one C call.
            writes = "".join(
                [f"{op.kind}\t{op.worker_id}\t{op.place}\t{op.value}\n" for op in org_ops]
            )
            pipe.evalsha(MOVE_SCRIPT.sha, len(script_keys), *script_keys, prefix, writes)
        return pipe

    async def aclose(self) -> None:
        """Refuse new writes and wait for the ones already submitted."""
        self._closed = True
        tasks = [lane.task for lane in self._lanes if lane.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


class _Lane:
    """One queue of a :class:`RedisWriter` and the task that drains it, a pipeline at a time."""

    __slots__ = ("_delay_s", "_flush", "_max_batch", "_number", "_queue", "task")

    def __init__(
        self,
        flush: Callable[[Sequence[_Op]], Awaitable[None]],
        delay_s: float,
        max_batch: int,
        number: int,
    ) -> None:
        self._flush = flush
        self._delay_s = delay_s
        self._max_batch = max_batch
        self._number = number
        self._queue: list[tuple[_Op, asyncio.Future[None]]] = []
        self.task: asyncio.Task[None] | None = None

    def enqueue(self, op: _Op) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((op, done))
        if self.task is None:
            self.task = asyncio.create_task(
                self._run(), name=f"fieldcloud-redis-writer-{self._number}"
            )
        return done

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
            self.task = None


class RedisFixes:
    """The workers' last fixes (``keys.fixes``), written through the ``RedisWriter``.

    A worker's entry is replaced by its next fix and never expires by itself
    (one entry per worker; readers judge a fix's age by its timestamp).
    """

    def __init__(self, client: aioredis.Redis, keys: Keys, writer: RedisWriter) -> None:
        self._redis = client
        self._keys = keys
        self._writer = writer

    def set_fix(self, org_id: str, worker_id: str, fix: Fix) -> Awaitable[None]:
        return self._writer.set_fix(org_id, worker_id, fix)

    async def get_fixes(self, wanted: Mapping[str, Sequence[str]]) -> Mapping[str, Fix]:
        """The last fixes of ``{org id: worker ids}``, one pipeline for all orgs."""
        asked = [(org_id, list(ids)) for org_id, ids in wanted.items() if ids]
        if not asked:
            return {}
        with redis_errors():
            pipe = self._redis.pipeline(transaction=False)
            for org_id, ids in asked:
                pipe.hmget(self._keys.fixes(org_id), ids)
            replies = await pipe.execute()
        found: dict[str, Fix] = {}
        for (_, ids), values in zip(asked, replies, strict=True):
            for worker_id, value in zip(ids, values, strict=True):
                if not value:
                    continue
                try:
                    found[worker_id] = decode_fix(value)
                except ValueError:
                    log.warning("ignoring a malformed fix for worker %s", worker_id)
        return found
