"""Background loops that stop between rounds, and the shutdown sequence.

A server stops in this order (SIGTERM or Ctrl-C; uvicorn does steps 1 to 3 in
``Server.shutdown``, the app's lifespan calls ``shut_down`` for 4 to 7):

1. stop accepting: the listening sockets close, a new connection is refused
   (a load balancer sends it to another instance);
2. close every websocket with 1012 ("service restart"): a phone reconnects,
   to any instance, with ``last_seq`` and is replayed what it missed. HTTP
   requests in flight are answered, their connections then closed;
3. wait for the handlers still running (an accept in its transaction, the
   delivery after a commit) up to ``server.GRACE_S``; past it they are
   cancelled, and what they committed but did not deliver stays in the
   outbox, for any instance's sweeper;
4. stop the background loops (deadline ticker, outbox sweeper, departed
   phones, loop-lag sampler) *between* rounds, so that none is cut off
   between a commit and its delivery; one still busy after
   ``LOOPS_GRACE_S`` is cancelled (the outbox again);
5. drain the relay: wait until what was delivered is deleted from the
   outbox (otherwise a sweeper delivers it once more, which is harmless);
6. stop the presence keeper (each socket released its own claim in steps 2 and 3;
   one left behind expires with its TTL);
7. close the pools (PostgreSQL, Redis).

Nothing committed is lost at any step: a committed effect leaves the outbox
only once delivered, and a phone's notices stay in its replay log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from dispatch.errors import DispatchError

from .runtime import Runtime

__all__ = ["LOOPS_GRACE_S", "Loops", "shut_down"]

log = logging.getLogger("fieldcloud")

LOOPS_GRACE_S = 5.0
"""How long a background loop may take to finish its round at shutdown."""


class Loops:
    """Named background loops: ``call`` every ``every_s``, until ``stop``.

    Errors of one round are logged and the loop goes on. ``stop`` lets each
    loop finish the round it is in (bounded by ``grace_s``, then cancelled);
    a loop never starts a round once asked to stop.
    """

    def __init__(self) -> None:
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, name: str, call: Callable[[], Awaitable[object]], every_s: float) -> None:
        """Run ``call`` now and then every ``every_s`` until ``stop``."""
        self._tasks.append(asyncio.create_task(self._repeat(name, call, every_s), name=name))

    async def _repeat(
        self, name: str, call: Callable[[], Awaitable[object]], every_s: float
    ) -> None:
        while not self._stopping.is_set():
            try:
                await call()
            except DispatchError as exc:
                log.warning("%s: %s", name, exc)
            except Exception:
                log.exception("%s failed; retrying", name)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(every_s):
                    await self._stopping.wait()

    async def stop(self, grace_s: float = LOOPS_GRACE_S) -> None:
        """Stop every loop after its current round; cancel those still busy after ``grace_s``."""
        self._stopping.set()
        if not self._tasks:
            return
        _, late = await asyncio.wait(self._tasks, timeout=grace_s)
        for task in late:
            log.warning("%s still busy after %g s at shutdown; cancelled", task.get_name(), grace_s)
            task.cancel()
        for task in late:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()


async def shut_down(
    runtime: Runtime, loops: Loops, close_stores: Callable[[], Awaitable[None]] | None
) -> None:
    """Steps 4 to 7 of the module docstring, in order; uvicorn has done 1 to 3."""
    # 4. Background loops stop between rounds: no commit is left undelivered by them.
    await loops.stop()
    # 5. Drain the relay: what was delivered is deleted from the outbox.
    await runtime.service.relay.flush()
    # 6. The presence keeper stops (the sockets released their claims when they closed).
    await runtime.keeper.aclose()
    # 7. Close the pools.
    if close_stores is not None:
        await close_stores()
    log.info("instance %s stopped", runtime.instance_id)
