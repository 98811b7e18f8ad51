"""Group-committed hot writes: last fixes and location-index moves, a pipeline per batch.

Location writes go through one ``RedisWriter`` per process: everything
submitted to a lane while its pipeline is in flight (or during the same
event-loop tick) goes out together as the lane's next pipeline, so Redis
round trips do not bound ingest. A write returns once its pipeline has
executed (a group commit), so a caller reads its own writes, and errors reach
the caller. Writes of one worker are applied in submission order. Worker ids
must not hold a tab or a newline (a batch travels as tab-separated lines;
such an id is refused with ``ValueError``). The script that applies a batch
is the location index's ``MOVE_SCRIPT`` (``index``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis import exceptions as rex

from ...errors import Unavailable
from ...models import Fix
from .client import redis_errors
from .fixes import encode_fix
from .index import MOVE_SCRIPT
from .keys import Keys

__all__ = ["RedisWriter"]


@dataclass(slots=True)
class _Op:
    """One buffered write: a last fix, or an index upsert/remove."""

    kind: str  # "f" (fix), "d" (forget the fix), "u" or "r" (index)
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

    def forget_fix(self, org_id: str, worker_id: str) -> asyncio.Future[None]:
        """Delete the worker's last fix, after every write of theirs queued before."""
        return self._enqueue(_Op("d", org_id, worker_id))

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
