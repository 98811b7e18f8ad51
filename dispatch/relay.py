"""The relay: performs committed effects in order and forgets them (decision 0005).

``Relay.deliver`` is the one place that knows how effects go out: a run of
notices is published per worker in order (under the effect's id, so a repeat
is not appended again), the workers concurrently; any other effect is handed
to the service's ``perform`` callback and waits for everything before it; the
effects performed are deleted from the outbox in the background, one
``DELETE`` at a time for whatever was delivered meanwhile (a caller does not
wait for it, and under load many transactions share one), and until then
are not performed again by this relay. The service calls it right
after a commit (its own effects) and from ``sweep_outbox`` (what others left).

Rules for callers: pass one job's outstanding effects whole and in commit
order (``Outbox.of_job``), or one transaction's; ``perform`` must be safe to
run twice for one effect (delivery is at least once); ``await flush()``
before closing the stores (what is not yet deleted is otherwise delivered
once more by a sweeper, which is harmless).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from .effects import Effect, EffectKind
from .errors import DispatchError
from .stores.ports import Stores

__all__ = ["Relay"]

log = logging.getLogger("fieldcloud.dispatch")


class Relay:
    """Delivers effects through the stores, and ``perform`` for the non-notice kinds."""

    def __init__(self, stores: Stores, perform: Callable[[Effect], Awaitable[None]]) -> None:
        self._stores = stores
        self._perform = perform
        self._performed: set[str] = set()
        """Ids delivered here whose outbox rows are not deleted yet."""
        self._to_forget: list[str] = []
        self._forgetting: asyncio.Task[None] | None = None

    async def flush(self) -> None:
        """Wait until every effect delivered so far is deleted from the outbox."""
        while self._forgetting is not None:
            await self._forgetting

    def _forget(self, effect_ids: Sequence[str]) -> None:
        self._performed.update(effect_ids)
        self._to_forget.extend(effect_ids)
        if self._forgetting is None:
            self._forgetting = asyncio.get_running_loop().create_task(
                self._forget_all(), name="fieldcloud-outbox-forget"
            )

    async def _forget_all(self) -> None:
        try:
            while self._to_forget:
                batch, self._to_forget = self._to_forget, []
                try:
                    await self._stores.outbox.delivered(batch)
                except DispatchError as exc:  # delivered again later, which is harmless
                    log.warning("delivered effects not yet forgotten: %s", exc)
                except Exception:
                    log.exception("deleting delivered effects failed; they come again")
                self._performed.difference_update(batch)
        finally:
            self._forgetting = None

    async def deliver(self, effects: Sequence[Effect]) -> bool:
        """Perform ``effects`` in order and forget those performed. Never raises.

        At the first failure delivery stops: the rest stay in the outbox, and
        a sweeper delivers them (from the first one not performed) once their
        lease has passed. Returns False when a backing service was unavailable
        (so a sweep can stop), True otherwise — also when an effect failed for
        another reason (logged; it stays in the outbox).
        """
        effects = [e for e in effects if e.id not in self._performed]
        done: list[str] = []
        failure: Exception | None = None
        i = 0
        while i < len(effects) and failure is None:
            try:
                if effects[i].kind is EffectKind.NOTICE:
                    j = i
                    while j < len(effects) and effects[j].kind is EffectKind.NOTICE:
                        j += 1
                    sent, failure = await self._publish(effects[i:j])
                    done.extend(sent)
                    i = j
                else:
                    await self._perform(effects[i])
                    done.append(effects[i].id)
                    i += 1
            except Exception as exc:
                failure = exc
        if isinstance(failure, DispatchError):
            log.warning("effects not delivered yet: %s", failure)
        elif failure is not None:
            log.error("an effect failed; it stays in the outbox", exc_info=failure)
        if done:
            self._forget(done)
        return not isinstance(failure, DispatchError)

    async def _publish(self, notices: Sequence[Effect]) -> tuple[list[str], Exception | None]:
        """Publish notice effects, each worker's in order, the workers concurrently.

        Returns the ids published and the first failure, if any; a worker's
        notices after one that failed are not tried. A wave's offers go to
        different workers; with a shared backend each publish is a round
        trip, so they overlap.
        """
        feed = self._stores.feed
        by_worker: dict[str, list[Effect]] = {}
        for effect in notices:
            by_worker.setdefault(effect.target, []).append(effect)
        sent: list[str] = []
        failed: list[Exception] = []

        async def in_order(items: list[Effect]) -> None:
            for effect in items:
                try:
                    await feed.publish(effect.target, effect.payload, key=effect.id)
                except Exception as exc:
                    failed.append(exc)
                    return
                sent.append(effect.id)

        if len(by_worker) == 1:
            ((items),) = by_worker.values()
            await in_order(items)
        else:
            await asyncio.gather(*(in_order(items) for items in by_worker.values()))
        return sent, failed[0] if failed else None
