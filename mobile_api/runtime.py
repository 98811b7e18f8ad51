"""What one running server holds: the service, its mode and open sessions.

Built and torn down by the app's lifespan (``app.lifespan``); handlers reach
it as ``request.app.state.runtime``. Nothing here opens connections itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dispatch.errors import Unavailable
from dispatch.service import DispatchService
from dispatch.stores.ports import Presence

from .settings import Settings

if TYPE_CHECKING:
    from .presence import PresenceKeeper


class Session:
    """One connected phone; ``supersede`` closes it when the worker reconnects."""

    def __init__(self, worker_id: str, close: Callable[[int, str], Awaitable[None]]) -> None:
        self.worker_id = worker_id
        self._close = close
        self.open = True
        """False once the socket is closed by either side: nothing more is sent."""
        self.holder = ""
        """This socket's name in ``Presence`` (production only)."""
        self.claimed = False
        """Production only: the presence claim was made (``PresenceKeeper`` keeps it)."""

    async def supersede(self) -> None:
        from .errors import CLOSE_SUPERSEDED

        await self._close(CLOSE_SUPERSEDED, "superseded by a newer connection")


@dataclass
class Runtime:
    """The live objects of one server process."""

    settings: Settings
    service: DispatchService
    admin_token: str
    mode: str
    ping: Callable[[], Awaitable[None]] | None = None
    """Checks the backing services answer (raises ``Unavailable``); None in-process."""
    presence: Presence | None = None
    """Socket ownership across instances; None in-process (``sessions`` suffices)."""
    keeper: PresenceKeeper | None = None
    """Claims and refreshes ``presence`` for every open socket; None in-process."""
    instance_id: str = "local"
    sessions: dict[str, Session] = field(default_factory=dict)

    async def register(self, session: Session) -> None:
        """Make ``session`` the worker's only one here, closing an older one."""
        old = self.sessions.get(session.worker_id)
        self.sessions[session.worker_id] = session
        if old is not None:
            await old.supersede()

    async def connected(self, worker_id: str) -> bool | None:
        """Whether the worker's phone holds a socket now, on any instance (None: unknown).

        In-process the sessions say it; in production a socket elsewhere is
        seen through ``presence``, and None is the answer while Redis is away.
        """
        session = self.sessions.get(worker_id)
        if session is not None and session.open:
            return True
        if self.presence is None:
            return False
        try:
            return await self.presence.holder(worker_id) is not None
        except Unavailable:
            return None

    def unregister(self, session: Session) -> None:
        """Forget ``session`` if it is still the worker's current one."""
        if self.sessions.get(session.worker_id) is session:
            del self.sessions[session.worker_id]
