"""One shared pub/sub connection per process that feeds worker-feed listeners.

``FeedListeners`` is the listening half of ``feed.RedisWorkerFeed``.
Three background tasks, started by the first ``listen``:

* the *control* task subscribes and unsubscribes channels (in batches) and
  gives each new listener its starting point: the worker's seq read after the
  subscription was confirmed, so nothing published later can be missed;
* the *reader* task takes messages off the connection and marks workers dirty;
* the *drainer* reads the logs of dirty workers (one pipeline for all of
  them) from the lowest seq their listeners have seen and calls each
  listener's callback for every newer notice, in seq order. It also re-reads
  every listened-to log once per ``sweep_s`` and after a reconnect, so a lost
  message only delays a notice. The sweep is spread out: every
  ``SWEEP_TICK_S`` it reads the next slice of the listened-to logs, so that
  no single read of thousands of logs holds up the event loop (measured:
  one 5,000-log read every 5 s stalled an instance for ~100 ms).

Rules for callers: callbacks run on the event loop, must not block and must
not raise (an exception is logged and the notice counts as delivered). Call
``aclose`` at shutdown; listeners still registered stop receiving.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import redis.asyncio as aioredis

from ...errors import Unavailable
from ..ports import LoggedNotice
from .keys import Keys

__all__ = ["CONFIRM_TIMEOUT_S", "SWEEP_TICK_S", "FeedListeners", "after", "decode_log"]

log = logging.getLogger(__name__)

_BACKOFF_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0)
CONFIRM_TIMEOUT_S = 5.0
SWEEP_TICK_S = 0.25
"""How often the drainer reads the next slice of the periodic sweep."""
"""How long a subscription (or a replay waiting for one) waits to be confirmed."""


class _Listener:
    """One callback of one worker's notices; ``stop`` is what ``listen`` returns.

    Kept small (one per open phone socket): flags, no event of its own;
    ``FeedListeners.live`` waits on the process's one shared wake-up.
    """

    __slots__ = ("active", "callback", "cursor", "owner", "worker_id")

    def __init__(
        self, owner: FeedListeners, worker_id: str, callback: Callable[[LoggedNotice], None]
    ) -> None:
        self.owner = owner
        self.worker_id = worker_id
        self.callback = callback
        self.cursor: int | None = None  # last seq delivered (None: not live yet)
        self.active = True

    def stop(self) -> None:
        """Stop listening (idempotent)."""
        if self.active:
            self.active = False
            self.owner._remove(self)


class FeedListeners:
    """Listeners of worker logs in this process; see the module docstring."""

    def __init__(self, client: aioredis.Redis, keys: Keys, *, sweep_s: float = 15.0) -> None:
        self._redis = client
        self._keys = keys
        self._sweep_s = sweep_s
        self._sweep_left: list[str] = []
        """Workers the current sweep round has not read yet (taken from the end)."""
        self._listeners: dict[str, list[_Listener]] = {}
        head, _, tail = keys.feed_channel("\x00").partition("\x00")
        self._channel_head, self._channel_tail = head, tail
        self._subscribed: set[str] = set()
        self._unconfirmed: set[str] = set()
        """Channels of the subscription in flight not yet confirmed (one batch at a time)."""
        self._all_confirmed = asyncio.Event()
        self._went_live = asyncio.Event()
        """Set and cleared at once whenever listeners go live or stop: wakes ``live``."""
        self._control_queue: set[str] = set()
        self._control_wake = asyncio.Event()
        self._dirty: set[str] = set()
        self._drain_wake = asyncio.Event()
        self._connected = asyncio.Event()
        self._pubsub: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

    def listen(
        self, worker_id: str, callback: Callable[[LoggedNotice], None]
    ) -> Callable[[], None]:
        """Call ``callback`` for each notice of the worker published from now on."""
        if self._closed:
            raise Unavailable("the worker feed is closed")
        listener = _Listener(self, worker_id, callback)
        self._listeners.setdefault(worker_id, []).append(listener)
        self._start()
        self._control(worker_id)
        return listener.stop

    def _remove(self, listener: _Listener) -> None:
        worker_id = listener.worker_id
        found = self._listeners.get(worker_id)
        if found and listener in found:
            found.remove(listener)
            if not found:
                del self._listeners[worker_id]
                self._control(worker_id)
        if listener.cursor is None:
            self._wake_live()  # a replay waiting for it need not wait any longer

    def _pending(self, worker_id: str) -> bool:
        return any(x.cursor is None for x in self._listeners.get(worker_id, ()))

    def _wake_live(self) -> None:
        self._went_live.set()
        self._went_live.clear()  # the waiters already woken stay woken

    async def live(self, worker_id: str, timeout_s: float = CONFIRM_TIMEOUT_S) -> None:
        """Wait (at most ``timeout_s``) until the worker's listeners here are live."""
        if not self._pending(worker_id):
            return
        try:
            async with asyncio.timeout(timeout_s):
                while self._pending(worker_id) and not self._closed:
                    await self._went_live.wait()
        except TimeoutError:
            log.warning("worker feed: a listener of %s is not live yet", worker_id)

    def _worker_of(self, channel: str) -> str | None:
        """The worker whose feed channel this is (the inverse of ``keys.feed_channel``)."""
        head, tail = self._channel_head, self._channel_tail
        if len(channel) > len(head) + len(tail) and channel.startswith(head):
            worker_id = channel[len(head) : len(channel) - len(tail)]
            if self._keys.feed_channel(worker_id) == channel:
                return worker_id
        return None

    # -- background tasks ------------------------------------------------------

    def _stopping(self) -> bool:
        return self._closed

    def _start(self) -> None:
        if self._tasks:
            return
        self._pubsub = self._redis.pubsub()
        self._tasks = [
            asyncio.create_task(self._read_loop(), name="fieldcloud-feed-reader"),
            asyncio.create_task(self._control_loop(), name="fieldcloud-feed-control"),
            asyncio.create_task(self._drain_loop(), name="fieldcloud-feed-drainer"),
        ]

    def _control(self, worker_id: str) -> None:
        self._control_queue.add(worker_id)
        self._control_wake.set()

    def _mark_dirty(self, workers: Sequence[str] | set[str]) -> None:
        if workers:
            self._dirty.update(workers)
            self._drain_wake.set()

    async def _read_loop(self) -> None:
        failures = 0
        while not self._closed:
            try:
                if not self._connected.is_set():
                    await self._pubsub.connect()
                    self._connected.set()
                message = await self._pubsub.get_message(timeout=1.0)
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("worker feed: pub/sub connection failed (%s); retrying", exc)
                await asyncio.sleep(_BACKOFF_S[min(failures, len(_BACKOFF_S) - 1)])
                failures += 1
                self._mark_dirty(set(self._listeners))  # messages may have been lost
                continue
            if message is None:
                continue
            kind, channel = message.get("type"), message.get("channel")
            if not isinstance(channel, str):
                continue
            if kind == "subscribe":
                unconfirmed = self._unconfirmed
                if channel in unconfirmed:
                    unconfirmed.discard(channel)
                    if not unconfirmed:
                        self._all_confirmed.set()
            if kind == "subscribe" or kind == "message":
                # A subscribe also comes after a resubscribe on reconnect: read the log.
                worker_id = self._worker_of(channel)
                if worker_id is not None and worker_id in self._listeners:
                    self._mark_dirty([worker_id])

    async def _control_loop(self) -> None:
        failures = 0
        while not self._closed:
            await self._control_wake.wait()
            self._control_wake.clear()
            if self._stopping():
                return
            batch, self._control_queue = self._control_queue, set()
            try:
                await self._connected.wait()
                await self._sync(sorted(batch))
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("worker feed: subscribing failed (%s); retrying", exc)
                self._control_queue |= batch
                await asyncio.sleep(_BACKOFF_S[min(failures, len(_BACKOFF_S) - 1)])
                failures += 1
                self._control_wake.set()

    async def _sync(self, workers: Sequence[str]) -> None:
        keys = self._keys
        wanted = [w for w in workers if self._listeners.get(w)]
        unwanted = [w for w in workers if not self._listeners.get(w) and w in self._subscribed]
        if unwanted:
            await self._pubsub.unsubscribe(*(keys.feed_channel(w) for w in unwanted))
            self._subscribed.difference_update(unwanted)
        new = [w for w in wanted if w not in self._subscribed]
        if new:
            channels = [keys.feed_channel(w) for w in new]
            self._unconfirmed = set(channels)
            self._all_confirmed.clear()
            try:
                await self._pubsub.subscribe(*channels)
                await asyncio.wait_for(self._all_confirmed.wait(), CONFIRM_TIMEOUT_S)
            except TimeoutError:
                log.warning("worker feed: subscription not confirmed in time; sweeping")
            finally:
                self._unconfirmed = set()
            self._subscribed.update(new)
        fresh = [w for w in wanted if any(x.cursor is None for x in self._listeners.get(w, ()))]
        if not fresh:
            return
        pipe = self._redis.pipeline(transaction=False)
        for worker_id in fresh:
            pipe.get(keys.feed_seq(worker_id))
        seqs = await pipe.execute()
        for worker_id, seq in zip(fresh, seqs, strict=True):
            for listener in self._listeners.get(worker_id, ()):
                if listener.cursor is None:
                    listener.cursor = int(seq or 0)
        self._wake_live()
        self._mark_dirty(fresh)

    def _sweep_slice(self) -> list[str]:
        """The next workers of the rolling sweep: every one once per ``sweep_s``."""
        if not self._sweep_left:
            self._sweep_left = list(self._listeners)
        ticks = max(1.0, self._sweep_s / SWEEP_TICK_S)
        size = max(1, math.ceil(len(self._listeners) / ticks))
        taken = self._sweep_left[-size:]
        del self._sweep_left[-size:]
        return taken

    async def _drain_loop(self) -> None:
        failures = 0
        tick = min(SWEEP_TICK_S, self._sweep_s)
        loop = asyncio.get_running_loop()
        sweep_at = loop.time() + tick
        while not self._closed:
            wait_s = sweep_at - loop.time()
            if wait_s > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._drain_wake.wait(), wait_s)
            if loop.time() >= sweep_at:  # due even while wake-ups keep coming
                self._dirty.update(self._sweep_slice())
                sweep_at = loop.time() + tick
            self._drain_wake.clear()
            if self._stopping():
                return
            batch, self._dirty = self._dirty, set()
            starts: dict[str, int] = {}
            for worker_id in batch:
                cursors = [
                    x.cursor for x in self._listeners.get(worker_id, ()) if x.cursor is not None
                ]
                if cursors:
                    starts[worker_id] = min(cursors)
            if not starts:
                continue
            try:
                pipe = self._redis.pipeline(transaction=False)
                for worker_id, start in starts.items():
                    pipe.xrange(self._keys.feed_log(worker_id), min=after(start), max="+")
                logs = await pipe.execute()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("worker feed: reading logs failed (%s); retrying", exc)
                self._dirty.update(starts)
                await asyncio.sleep(_BACKOFF_S[min(failures, len(_BACKOFF_S) - 1)])
                failures += 1
                self._drain_wake.set()
                continue
            for (worker_id, start), entries in zip(starts.items(), logs, strict=True):
                self._deliver(worker_id, decode_log(entries, start))

    def _deliver(self, worker_id: str, entries: list[LoggedNotice]) -> None:
        for listener in list(self._listeners.get(worker_id, ())):
            for entry in entries:
                if not listener.active:
                    break
                if listener.cursor is None or entry.seq <= listener.cursor:
                    continue
                listener.cursor = entry.seq
                try:
                    listener.callback(entry)
                except Exception:
                    log.exception("worker feed: a listener of %s failed", worker_id)

    async def aclose(self) -> None:
        """Stop the background tasks and close the pub/sub connection."""
        # The loops also stop on the flag: a cancellation can be absorbed by a
        # client call in flight, and the wake-ups make waiting loops look again.
        self._closed = True
        self._control_wake.set()
        self._drain_wake.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for listeners in self._listeners.values():
            for listener in listeners:
                listener.active = False
        self._listeners.clear()
        self._wake_live()
        if self._pubsub is not None:
            await self._pubsub.aclose()
            self._pubsub = None


def after(seq: int) -> str:
    """The stream id range start for entries with a sequence number above ``seq``."""
    return "-" if seq < 0 else f"{seq + 1}-0"


def decode_log(entries: Sequence[Any], after_seq: int) -> list[LoggedNotice]:
    """Stream entries (``<seq>-0``, field ``n`` = JSON) above ``after_seq``, in order."""
    found = []
    for entry_id, fields in entries:
        seq = int(entry_id.split("-", 1)[0])
        if seq > after_seq:
            found.append(LoggedNotice(seq, json.loads(fields["n"])))
    return found
