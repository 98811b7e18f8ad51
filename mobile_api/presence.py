"""Holding this instance's presence claims: one loop per process.

Each phone socket claims its worker in ``Presence`` under a name of its own
(instance id plus a nonce), so the newest socket of a worker, on any instance,
takes the claim over. A claim lives three refresh periods. ``PresenceKeeper``
holds the claims of every open socket of the process:

* a new socket is queued (``hold``) and claimed with the others that arrived
  meanwhile, in one batch (``Presence.claim_many``);
* every ``every_s`` all held claims are refreshed in one batch
  (``Presence.refresh_many``). A claim found with another holder means a newer
  socket took the worker: the local socket is closed with 4001 (superseded),
  ``every_s`` after the takeover at most. A claim that expired (Redis was
  away for longer than its TTL) is taken back;
* when Redis does not answer, nothing is closed: claims that could not be
  made are tried again, and refreshes run again, one period later.

Per socket the keeper keeps nothing: it walks the runtime's sessions. Sockets
release their own claim when they close; a socket that closes while its claim
or a refresh is in flight is released again by the keeper once the batch is
back (the batch may have re-created its claim).

Both modes run the same loop: on ``RedisPresence`` in production, on
``MemoryPresence`` in process (one instance, where it never fails).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from dispatch.errors import DispatchError
from dispatch.stores.ports import Presence

if TYPE_CHECKING:
    from .runtime import Session

__all__ = ["PresenceKeeper"]

log = logging.getLogger("fieldcloud")


class PresenceKeeper:
    """Claims and refreshes the presence of every open socket; see the module docstring."""

    def __init__(self, presence: Presence, sessions: Mapping[str, Session], every_s: float) -> None:
        if not every_s > 0:
            raise ValueError("the presence refresh period must be positive")
        self.presence = presence
        self.every_s = every_s
        self.ttl_s = 3 * every_s
        """How long a claim lives without a refresh: three periods."""
        self._sessions = sessions
        self._new: list[Session] = []
        """Sockets waiting for their first claim."""
        self._retry: list[Session] = []
        """Sockets whose claim failed (Redis away): claimed again at the next period."""
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._failing = False
        self._closed = False

    def hold(self, session: Session) -> None:
        """Claim the worker for ``session`` soon, then keep the claim while it is open."""
        self._new.append(session)
        self._wake.set()
        if self._task is None and not self._closed:
            self._task = asyncio.create_task(self._run(), name="fieldcloud-presence")

    async def aclose(self) -> None:
        """Stop the loop (claims are left to expire, or to the sockets' own release)."""
        # The loop also stops on the flag: a cancellation can be absorbed by a
        # client call in flight, and the wake-up makes a waiting loop look again.
        self._closed = True
        self._wake.set()
        task, self._task = self._task, None
        for pending in (task, *self._closing):
            if pending is not None:
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pending

    def _stopping(self) -> bool:
        return self._closed

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + self.every_s
        while not self._closed:
            wait = due - loop.time()
            if wait > 0 and not self._new:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._wake.wait()
            self._wake.clear()
            if self._stopping():
                return
            try:
                if loop.time() >= due:
                    due = loop.time() + self.every_s
                    await self.refresh()
                    self._new.extend(self._retry)
                    self._retry = []
                if self._new:
                    await self.claim()
            except asyncio.CancelledError:
                raise
            except Exception:  # never let one bad batch stop the keeping
                log.exception("presence: unexpected error")

    async def claim(self) -> None:
        """Claim every queued socket that is still open, in one batch."""
        batch = [s for s in self._new if s.open]
        self._new = []
        if not batch:
            return
        try:
            await self.presence.claim_many([(s.worker_id, s.holder) for s in batch], self.ttl_s)
        except DispatchError as exc:
            self._retry.extend(batch)
            self._warn(f"claiming {len(batch)} sockets failed ({exc})")
            return
        self._recovered()
        for session in batch:
            session.claimed = True
        await self._release_closed(batch)

    async def refresh(self) -> None:
        """Refresh every held claim, in one batch; close the sockets whose claim was taken."""
        held = [s for s in self._sessions.values() if s.claimed and s.open]
        if not held:
            return
        try:
            found = await self.presence.refresh_many(
                [(s.worker_id, s.holder) for s in held], self.ttl_s
            )
        except DispatchError as exc:
            self._warn(f"refreshing {len(held)} claims failed ({exc})")
            return
        self._recovered()
        for session, still_held in zip(held, found, strict=True):
            if not still_held and session.open:
                # A newer socket of the worker holds it now, here or on another instance.
                session.claimed = False
                task = asyncio.create_task(session.supersede())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
        await self._release_closed(held)

    async def _release_closed(self, batch: list[Session]) -> None:
        """Release again the claims of sockets that closed while their batch was in flight."""
        for session in batch:
            if not session.open and session.claimed:
                session.claimed = False
                with contextlib.suppress(DispatchError):
                    await self.presence.release(session.worker_id, session.holder)

    def _warn(self, what: str) -> None:
        if not self._failing:
            log.warning("presence: %s; sockets stay open, trying again in %g s", what, self.every_s)
        self._failing = True

    def _recovered(self) -> None:
        if self._failing:
            log.info("presence: Redis answers again")
        self._failing = False
